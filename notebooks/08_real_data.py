# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 8. Real data: CUB-200-2011, Stanford Cars and ILSVRC from a local folder
#
# The beetles made WSOL's problem visible on a CPU in seconds. The paper's numbers, though, come
# from **CUB-200-2011** (200 bird species, one box per image) and **ILSVRC** (ImageNet, 1000
# classes), and cars are a classic third benchmark. This chapter runs the *same* pipeline on them:
# the same datasets interface, the same `build_model`, the same training loop, the same metrics.
#
# Two things are different, and this book never downloads either:
#
# 1. **the images and their boxes** must be on this machine, in the layout each dataset ships with;
# 2. **ImageNet-pretrained weights** for the backbone (VGG16-GAP in the paper) must be a local file.
#
# When one is missing, the cells below say exactly what to put where and skip the heavy work, so the
# chapter still runs top to bottom everywhere.

# %%
import subprocess
import sys

import torch
from IPython.display import Image, display

from dgdm_lib.config import data_dir, env_report, get_device, quick_mode, repo_root
from dgdm_lib.data import (
    CUB200,
    DatasetLayoutError,
    StanfordCars,
    WSOLMetadataDataset,
    make_loader,
    standard_transforms,
)
from dgdm_lib.models import PretrainedWeightsError, build_model, torchvision_cache_file
from dgdm_lib.plotting import show_samples

print(env_report())

# %% [markdown]
# ## Where the book looks
#
# Everything lives under one data folder: `DGDM_DATA` if you set that environment variable before
# starting Jupyter, else `data/` in the repository. Change the paths in the next cell if your copies
# live elsewhere (for example on a shared disk of a GPU server).

# %%
DATA_ROOT = data_dir()
CUB_ROOT = DATA_ROOT / "CUB_200_2011"
CARS_ROOT = DATA_ROOT / "stanford_cars"
ILSVRC_IMAGES = DATA_ROOT / "wsolevaluation" / "dataset" / "ILSVRC"
ILSVRC_METADATA = DATA_ROOT / "wsolevaluation" / "metadata" / "ILSVRC"
print("data folder:", DATA_ROOT)

# %% [markdown]
# ## Is the data here?
#
# Each dataset class checks its folder when it is built and raises `DatasetLayoutError` when a file
# is missing. The error is written for a person: it names the folder it looked at, the files it
# expected, what is missing, and where the data comes from. The helper below catches only that
# error (a *malformed* annotation is a different error, `AnnotationError`, naming the file and line:
# that one should stop you) and prints the message.

# %%
def find(name, make):
    """``make()`` the dataset, or print why it is not here and return None."""
    try:
        dataset = make()
    except DatasetLayoutError as error:
        print(f"{name}: not available.\n  {error}\n")
        return None
    print(f"{name}: {dataset}\n")
    return dataset


test_transform = standard_transforms(train=False)  # resize to 224 x 224; boxes follow the resize
found = {
    "CUB-200-2011": find("CUB-200-2011", lambda: CUB200(CUB_ROOT, "test", test_transform)),
    "Stanford Cars": find("Stanford Cars", lambda: StanfordCars(CARS_ROOT, "test", test_transform)),
    "ILSVRC": find("ILSVRC", lambda: WSOLMetadataDataset(ILSVRC_IMAGES, ILSVRC_METADATA, "test", test_transform,
                                                         dataset="ILSVRC")),
}
HAVE_CUB = found["CUB-200-2011"] is not None
available = [name for name, dataset in found.items() if dataset is not None]
print("available:", available or "none (the heavy cells below will skip)")

# %% [markdown]
# What to put where, in one place (the messages above say the same for your paths):
#
# | dataset | folder | what it must hold | source |
# |---|---|---|---|
# | CUB-200-2011 | `DATA_ROOT/CUB_200_2011/` | `images.txt`, `image_class_labels.txt`, `train_test_split.txt`, `bounding_boxes.txt`, `classes.txt`, `images/` | `CUB_200_2011.tgz`, extracted as is |
# | Stanford Cars | `DATA_ROOT/stanford_cars/` | `devkit/cars_meta.mat`, `devkit/cars_train_annos.mat`, `cars_train/`, `cars_test_annos_withlabels.mat`, `cars_test/` | the devkit and images (or a mirror) |
# | ILSVRC | images in `DATA_ROOT/wsolevaluation/dataset/ILSVRC/`, metadata in `DATA_ROOT/wsolevaluation/metadata/ILSVRC/{train,val,test}/` | `image_ids.txt`, `class_labels.txt`, `localization.txt` per split | images from ImageNet; metadata from the wsolevaluation repository |
#
# The wsolevaluation metadata layout also exists for CUB (with a separate *validation* split with
# boxes, which the threshold should be chosen on: chapter 07); use it with `WSOLMetadataDataset(...,
# dataset="CUB")` or `--dataset wsol --wsol-name CUB` on the command line.

# %% [markdown]
# ## Look at the data (only when it is here)
#
# The batch format is the one the beetles used: normalised images (B, 3, 224, 224) and targets with
# labels and boxes in the frame of the resized image (the transform moved them). Red boxes are the
# ground truth, as everywhere in this book.

# %%
for name in available:
    images, targets = next(iter(make_loader(found[name], batch_size=8)))
    boxes = targets["boxes"]
    assert images.shape[-2:] == (224, 224)
    assert all(float(b.min()) >= 0 and float(b[:, 2:].max()) <= 224 for b in boxes), "boxes left the image"
    display(show_samples(images, boxes, labels=targets["label"], class_names=getattr(found[name], "classes", None),
                         normalized=True, title=f"{name}: test images resized to 224 px, GT boxes red"))
if not available:
    print("No real dataset found: nothing to show. Put one in place (table above) and re-run this notebook.")

# %% [markdown]
# ## Pretrained weights: a local file, never a download
#
# The paper fine-tunes an ImageNet-pretrained VGG16. `torchvision_cache_file("vgg16")` looks for
# torchvision's weight file in torch.hub's local cache (`~/.cache/torch/hub/checkpoints`, or
# `$TORCH_HOME/hub/checkpoints`) and raises `PretrainedWeightsError`, naming the file it wants, when
# it is not there. Any other local state dict with torchvision's parameter names works too:
# `build_model(..., pretrained="/path/to/vgg16.pth")`, or `--pretrained PATH` on the command line.

# %%
try:
    WEIGHTS = torchvision_cache_file("vgg16")
    print("VGG16 ImageNet weights found:", WEIGHTS)
except PretrainedWeightsError as error:
    WEIGHTS = None
    print("VGG16 ImageNet weights not available.\n ", error)
HAVE_WEIGHTS = WEIGHTS is not None

# %% [markdown]
# ## The same model, at full size
#
# `build_model("vgg16", "dgdm", num_classes=200)` is the paper's network: VGG16 without its last
# pooling layer, plus a 3x3 conv6 with 1024 channels, global average pooling and one linear layer
# (the CAM head). DGDM sits after pool3, pool4 and conv5_3, as in the paper's ablation. At 224 px
# the last feature map `F` is 14 x 14: the map CAM is read from. The forward pass below runs on one
# random image, so it is cheap on a CPU too; with the weights present it loads them first.

# %%
vgg = build_model("vgg16", "dgdm", num_classes=200, pretrained=WEIGHTS)
print(vgg.attention_modules()["conv5_3"])
with torch.no_grad():
    features = vgg.eval().forward_features(torch.zeros(1, 3, 224, 224))
print("F:", tuple(features.shape), "| DGDM modules at:", list(vgg.attention_modules()))
print(f"parameters: {sum(p.numel() for p in vgg.parameters()) / 1e6:.1f} M; "
      f"loaded from ImageNet: {len(vgg.pretrained_keys)} tensors")
assert features.shape[1:] == (1024, 14, 14)
assert list(vgg.attention_modules()) == ["pool3", "pool4", "conv5_3"]
del vgg, features

# %% [markdown]
# ## Training from the command line
#
# Real datasets need hours of GPU time, so runs on them belong in a terminal (or a batch job), not
# in a notebook cell. The command line `python -m dgdm_lib` does what the notebooks do: `train` one
# method, `compare` several with the same data and seeds, `evaluate` a run folder. Its `--help`
# documents every option:

# %%
help_text = subprocess.run([sys.executable, "-m", "dgdm_lib", "train", "--help"], capture_output=True, text=True,
                           cwd=repo_root(), check=True).stdout
print(help_text)
assert "--pretrained" in help_text and "--data-root" in help_text

# %% [markdown]
# The comparison of this book's chapter 06 on CUB, fine-tuning the ImageNet VGG16 (a starting point
# for your own runs, not the paper's exact schedule, which it does not fully give: choose learning
# rate and epochs on a validation split). Each method writes a run folder with `config.json`,
# `checkpoint.pt` (resumable with `--resume`), `metrics.json` and `cams.png`; `compare` adds one
# table, `summary.md`. On a machine with several GPUs, start the same command with
# `torchrun --nproc_per_node=N -m dgdm_lib ...`.

# %%
RUN_DIR = repo_root() / "runs" / "cub-vgg16"
EPOCHS = 5  # a short demonstration in the notebook; run ~50 epochs from a terminal
command = [
    sys.executable, "-m", "dgdm_lib", "compare", "--dataset", "cub", "--data-root", str(CUB_ROOT),
    "--arch", "vgg16", "--pretrained", str(WEIGHTS) if HAVE_WEIGHTS else "torchvision",
    "--methods", "cam,adl,dgdm", "--optimizer", "sgd", "--lr", "0.001", "--schedule", "cosine",
    "--batch-size", "32", "--epochs", str(EPOCHS), "--workers", "4", "--out", str(RUN_DIR),
]
print(" ".join(["python", *command[1:]]))

# %% [markdown]
# The next cell runs that command, but only where it makes sense: CUB and the weights present, a GPU,
# and classroom mode. Everywhere else it prints what is missing.

# %%
missing = [why for ok, why in [
    (HAVE_CUB, "CUB-200-2011 (see the table above)"),
    (HAVE_WEIGHTS, "VGG16 ImageNet weights (see above)"),
    (get_device().type == "cuda", "a GPU (this is a CPU machine)"),
    (not quick_mode(), "classroom mode (DGDM_QUICK is set)"),
] if not ok]
if missing:
    print("Skipping the CUB training run; missing:", "; ".join(missing))
else:
    subprocess.run(command, check=True, cwd=repo_root())

# %% [markdown]
# ## Reading a finished run
#
# Whether it came from the cell above or from a terminal, a finished comparison leaves its table in
# `RUN_DIR/summary.md`: Top-1 Clas, GT-known Loc at the paper's tau = 0.2 and at the tau chosen on
# the validation split, MaxBoxAcc, MaxBoxAccV2 (chapter 07 says why to prefer those), with CAMs in
# `cams.png` (GT red, predicted green).

# %%
summary = RUN_DIR / "summary.md"
if summary.is_file():
    print(summary.read_text())
    display(Image(filename=str(RUN_DIR / "cams.png")))
else:
    print(f"No finished comparison in {RUN_DIR} yet. To evaluate a run folder later:\n"
          f"  python -m dgdm_lib evaluate --run {RUN_DIR}/dgdm-s0")

# %% [markdown]
# ## Summary
#
# * The real datasets are read from local folders in their own layouts (CUB's text files, the
#   Stanford Cars devkit, wsolevaluation's metadata for ILSVRC and CUB); a missing file is an error
#   that says what to put where.
# * Pretrained weights are local files too: torchvision's cache, or any state dict with
#   torchvision's names (`--pretrained PATH`).
# * `build_model("vgg16", "dgdm")` is the paper's VGG16-GAP with DGDM after pool3, pool4 and conv5_3;
#   the training loop, the CAMs and the metrics are the ones the beetles used.
# * Long runs go through `python -m dgdm_lib train | compare | evaluate`, resumable and multi-GPU.
#
# ## Exercises
#
# 1. Put CUB-200-2011 in place and re-run this notebook. Which cells changed from "skipping" to
#    doing work? *Hint:* the flags `HAVE_CUB` and `HAVE_WEIGHTS`.
# 2. Break the data on purpose: delete a line of `bounding_boxes.txt` in a *copy* of CUB and point
#    `CUB_ROOT` at it. What does the error say? *Hint:* it is an `AnnotationError`, not a layout error.
# 3. On a GPU, run the comparison for `cam` and `dgdm` with three seeds (`--seeds 0,1,2`). Is DGDM's
#    gain over CAM larger than the spread between seeds? *Hint:* `summary.md` shows mean ± sd.
# 4. `--dataset cub` chooses tau on 5 training images per species held out as a validation split
#    (`--val-per-class`). Use `--dataset wsol --wsol-name CUB` with wsolevaluation's metadata
#    instead, whose validation split is a separate set of images with boxes. How much do the test
#    numbers move? *Hint:* chapter 07.
# 5. No GPU? Chapter 09 fine-tunes a small pretrained network (`--arch lite0`) on a few species
#    on the CPU.
