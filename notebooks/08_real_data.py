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
from torch.utils.data import Subset

from dgdm_lib.cli import run_configs
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
from dgdm_lib.photos import cub_root, imagenet_class_names, imagenet_root
from dgdm_lib.plotting import show_samples
from dgdm_lib.runs import make_data
from dgdm_lib.views.attention import features_at_positions

print(env_report())

# %% [markdown]
# ## Where the book looks
#
# Everything lives under one data folder: `DGDM_DATA` if you set that environment variable before
# starting Jupyter, else `data/` in the repository. Two datasets can also live elsewhere, as in
# chapter 09: `DGDM_CUB_ROOT` names a CUB-200-2011 folder and `DGDM_IMAGENET_ROOT` a folder of
# ILSVRC validation images in wsolevaluation's layout (`images/` and `metadata/test/`). Change the
# paths in the next cell if your copies live somewhere else again (for example on a shared disk of
# a GPU server).

# %%
DATA_ROOT = data_dir()
CUB_ROOT = cub_root() or DATA_ROOT / "CUB_200_2011"
CARS_ROOT = DATA_ROOT / "stanford_cars"
ILSVRC_ROOT = imagenet_root()
ILSVRC_IMAGES = ILSVRC_ROOT / "images" if ILSVRC_ROOT else DATA_ROOT / "wsolevaluation" / "dataset" / "ILSVRC"
ILSVRC_METADATA = ILSVRC_ROOT / "metadata" if ILSVRC_ROOT else DATA_ROOT / "wsolevaluation" / "metadata" / "ILSVRC"
print("data folder:", DATA_ROOT)
print("CUB-200-2011:", CUB_ROOT)
print("ILSVRC:       images", ILSVRC_IMAGES, "| metadata", ILSVRC_METADATA)

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
# | CUB-200-2011 | `DATA_ROOT/CUB_200_2011/`, or `DGDM_CUB_ROOT` | `images.txt`, `image_class_labels.txt`, `train_test_split.txt`, `bounding_boxes.txt`, `classes.txt`, `images/` | `CUB_200_2011.tgz`, extracted as is |
# | Stanford Cars | `DATA_ROOT/stanford_cars/` | `devkit/cars_meta.mat`, `devkit/cars_train_annos.mat`, `cars_train/`, `cars_test_annos_withlabels.mat`, `cars_test/` | the devkit and images (or a mirror) |
# | ILSVRC | images in `DATA_ROOT/wsolevaluation/dataset/ILSVRC/`, metadata in `DATA_ROOT/wsolevaluation/metadata/ILSVRC/{train,val,test}/`; or `DGDM_IMAGENET_ROOT` with `images/` and `metadata/test/` | `image_ids.txt`, `class_labels.txt`, `localization.txt` per split | images from ImageNet; metadata from the wsolevaluation repository |
#
# The wsolevaluation metadata layout also exists for CUB (with a separate *validation* split with
# boxes, which the threshold should be chosen on: chapter 07); use it with `WSOLMetadataDataset(...,
# dataset="CUB")` or `--dataset wsol --wsol-name CUB` on the command line.

# %% [markdown]
# ## Look at the data (only when it is here)
#
# The batch format is the one the beetles used: normalised images (B, 3, 224, 224) and targets with
# labels and boxes in the frame of the resized image (the transform moved them). Red boxes are the
# ground truth, as everywhere in this book. The eight images are spread over the test split, so
# that they show several classes (a test split lists its images class by class).

# %%
CLASS_NAMES = {"ILSVRC": imagenet_class_names()}  # ImageNet's names ship with torchvision
for name in available:
    dataset = found[name]
    spread = Subset(dataset, list(range(0, len(dataset), max(1, len(dataset) // 8)))[:8])
    images, targets = next(iter(make_loader(spread, batch_size=8)))
    boxes = targets["boxes"]
    assert images.shape[-2:] == (224, 224)
    assert all(float(b.min()) >= 0 and float(b[:, 2:].max()) <= 224 for b in boxes), "boxes left the image"
    class_names = getattr(dataset, "classes", None) or CLASS_NAMES.get(name)
    display(show_samples(images, boxes, labels=targets["label"], class_names=class_names,
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
# (the CAM head). Where DGDM goes differs from the paper. The paper inserts a DGDM after every
# pooling layer that VGG16-GAP keeps (pool1 to pool4) and after conv5_3; this book's default
# (`dgdm_lib/models.py`, `ARCHS["vgg16"]`) keeps only the last three of those positions, pool3,
# pool4 and conv5_3, and leaves the two high-resolution maps after pool1 and pool2 alone. At 224 px
# the last feature map `F` is 14 x 14: the map CAM is read from. The forward pass below runs on one
# blank image, so it is cheap on a CPU too; with the weights present it loads them first.

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
# The paper's placement is one argument away: `positions=` (or `--positions` on the command line)
# takes the insertion points by name. The modules have no parameters, so the count does not change;
# what changes is which maps get erased, printed below with their sizes.

# %%
PAPER_POSITIONS = ("pool1", "pool2", "pool3", "pool4", "conv5_3")
paper_vgg = build_model("vgg16", "dgdm", num_classes=200, positions=PAPER_POSITIONS)
with torch.no_grad():
    maps = features_at_positions(paper_vgg, torch.zeros(1, 3, 224, 224), PAPER_POSITIONS)
for name, F in maps.items():
    default = "book default too" if name in ("pool3", "pool4", "conv5_3") else "paper only"
    print(f"{name:8s} F {F.shape[1]:4d} x {F.shape[2]:3d} x {F.shape[3]:3d}  ({default})")
assert list(paper_vgg.attention_modules()) == list(PAPER_POSITIONS)
del paper_vgg

# %% [markdown]
# ## Training from the command line
#
# Real datasets need hours of GPU time, so runs on them belong in a terminal (or a batch job), not
# in a notebook cell. The command line `python -m dgdm_lib` does what the notebooks do: `train` one
# method, `compare` several with the same data and seeds, `evaluate` a run folder. Its `--help`
# documents every option; that is a long page, so the cell below prints only the options the
# command further down uses (run `python -m dgdm_lib train --help` in a terminal for the rest).

# %%
help_text = subprocess.run([sys.executable, "-m", "dgdm_lib", "train", "--help"], capture_output=True, text=True,
                           cwd=repo_root(), check=True).stdout


def option_help(text, option):
    """The lines of an argparse help text that document ``option``: its own line and the indented ones under it."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().split(" ")[0] == option)
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith(" " * 8) or not line.strip():
            break
        block.append(line)
    return "\n".join(block)


print(f"`train --help`: {len(help_text.splitlines())} lines; the options used below:\n")
for option in ("--dataset", "--data-root", "--pretrained", "--val-per-class", "--tau", "--seeds"):
    print(option_help(help_text, option))
assert "--pretrained" in help_text and "--data-root" in help_text and "--val-per-class" in help_text

# %% [markdown]
# The comparison of this book's chapter 06 on CUB, fine-tuning the ImageNet VGG16 (a starting point
# for your own runs, not the paper's exact schedule, which it does not fully give: choose learning
# rate and epochs on a validation split). CUB has no validation split of its own, so
# `--val-per-class 5` (the default, written out here) holds out 5 training images per species as
# one; every run reports GT-known Loc at the paper's fixed tau 0.2 *and* at the tau chosen on those
# held-out images, never on test (docs/methods.md, "Validation split"; `--val-per-class 0` would
# choose it on test, and the run says so). Each method writes a run folder with `config.json`,
# `checkpoint.pt` (resumable with `--resume`), `metrics.json` and `cams.png`; `compare` adds one
# table, `summary.md`. On a machine with several GPUs, start the same command with
# `torchrun --nproc_per_node=N -m dgdm_lib ...`.

# %%
RUN_DIR = repo_root() / "runs" / "cub-vgg16"
EPOCHS = 5  # a short demonstration in the notebook; run ~50 epochs from a terminal
command = [
    sys.executable, "-m", "dgdm_lib", "compare", "--dataset", "cub", "--data-root", str(CUB_ROOT),
    "--arch", "vgg16", "--pretrained", str(WEIGHTS) if HAVE_WEIGHTS else "torchvision",
    "--methods", "cam,adl,dgdm", "--val-per-class", "5", "--optimizer", "sgd", "--lr", "0.001",
    "--schedule", "cosine", "--batch-size", "32", "--epochs", str(EPOCHS), "--workers", "4", "--out", str(RUN_DIR),
]
print(" ".join(["python", *command[1:]]))

# %% [markdown]
# ## The same runs, from Python
#
# The command line is a thin layer over the library. It turns its options into one `RunConfig` per
# method and seed (`dgdm_lib.runs`), the value each run folder's `config.json` records, and
# `make_data(config)` builds a run's train, val and test loaders in one call, for the beetles or a
# real dataset, after checking that every image file is on disk. `run_configs` reads a command line
# into its configurations without training anything, so you can look at (or change) a run before
# you start it, or drive the library from your own script:

# %%
configs = run_configs(command[3:])  # the words after "python -m dgdm_lib"
for config in configs:
    print(f"{config.method:5s} seed {config.seed}: {config.dataset}, {config.arch}, {config.recipe.optimizer} lr {config.recipe.lr}, "
          f"{config.epochs} epochs, tau chosen with {config.val_per_class} held-out images per class -> {config.out}")
assert [c.method for c in configs] == ["cam", "adl", "dgdm"]
if HAVE_CUB:
    data = make_data(configs[-1].replace(workers=0))  # no loader processes: here we only count the images
    sizes = {split: len(getattr(data, split).dataset) for split in ("train", "val", "test")}
    print(f"\nCUB in one call: {sizes} images, {data.num_classes} classes; tau is chosen on {data.tau_split}")
    assert data.tau_split == "val" and min(sizes.values()) > 0
else:
    print("\nCUB is not here, so there are no loaders to build (the table above says what to get).")

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
# * `build_model("vgg16", "dgdm")` is the paper's VGG16-GAP with DGDM after pool3, pool4 and conv5_3
#   (the paper also puts it after pool1 and pool2: `positions=`); the training loop, the CAMs and the
#   metrics are the ones the beetles used.
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

# %% [markdown]
# ## Solutions
#
# ### Exercise 1: which cells start doing work?
#
# Each heavy cell of this chapter is guarded by a flag. The cell below lists them with what each
# one needs and whether your machine has it now; put CUB in place (or set `DGDM_CUB_ROOT`) and run
# the chapter again to see the first two lines change.

# %%
HAVE_GPU = get_device().type == "cuda"
guards = [
    ("look at the data", "any dataset", bool(available)),
    ("VGG16 loads ImageNet weights", "the weight file", HAVE_WEIGHTS),
    ("the CUB training run", "CUB, the weights, a GPU, classroom mode",
     HAVE_CUB and HAVE_WEIGHTS and HAVE_GPU and not quick_mode()),
]
for cell, needs, ready in guards:
    print(f"{cell:30s} needs {needs:42s} -> {'does its work' if ready else 'skips'}")
print("datasets found:", available or "none")

# %% [markdown]
# With CUB alone, only the look at the data changes: the training run also needs the weights, a GPU
# and classroom mode, and says which of them is missing.
#
# ### Exercise 2: a damaged annotation file
#
# A copy of CUB needs no images to be opened: the dataset reads its five text files when it is
# built and decodes an image only when you index it. So the cell copies the text files of your CUB
# (or, without CUB, writes a miniature one: two species, four images) into a temporary folder with
# an empty `images/`, deletes the box line of the first test image, and builds the test split.

# %%
import shutil
import tempfile
from pathlib import Path

from dgdm_lib.data import AnnotationError

TEXT_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt", "classes.txt")


def write_tiny_cub(folder):
    """A CUB_200_2011 folder in miniature: 2 species x (1 train + 1 test) images, boxes, no pixels."""
    rows = [(1, "001.Tiny_Albatross/a.jpg", 1, 1), (2, "001.Tiny_Albatross/b.jpg", 1, 0),
            (3, "002.Tiny_Auklet/c.jpg", 2, 1), (4, "002.Tiny_Auklet/d.jpg", 2, 0)]
    files = {
        "classes.txt": ["1 001.Tiny_Albatross", "2 002.Tiny_Auklet"],
        "images.txt": [f"{i} {path}" for i, path, _, _ in rows],
        "image_class_labels.txt": [f"{i} {label}" for i, _, label, _ in rows],
        "train_test_split.txt": [f"{i} {train}" for i, _, _, train in rows],
        "bounding_boxes.txt": [f"{i} 10.0 20.0 100.0 80.0" for i, _, _, _ in rows],
    }
    for name, lines in files.items():
        (folder / name).write_text("\n".join(lines) + "\n")


def damaged_copy_error(folder):
    """Copy CUB's text files (or write a tiny CUB), drop the first test image's box, build the test split."""
    copy = Path(folder) / "CUB_200_2011"
    (copy / "images").mkdir(parents=True)
    if HAVE_CUB:
        for name in TEXT_FILES:
            shutil.copy(CUB_ROOT / name, copy / name)
    else:
        write_tiny_cub(copy)
    first_test = next(line.split()[0] for line in (copy / "train_test_split.txt").read_text().splitlines()
                      if line.split()[1:] == ["0"])
    boxes = (copy / "bounding_boxes.txt").read_text().splitlines()
    (copy / "bounding_boxes.txt").write_text("\n".join(b for b in boxes if b.split()[0] != first_test) + "\n")
    try:
        CUB200(copy, "test")
    except (AnnotationError, DatasetLayoutError) as error:
        return error
    return None


with tempfile.TemporaryDirectory() as scratch:
    error = damaged_copy_error(scratch)
print(f"{type(error).__name__}: {error}")
assert isinstance(error, AnnotationError) and not isinstance(error, DatasetLayoutError)

# %% [markdown]
# The error names the file, the image id and what is wrong with it; a missing *file* would have
# been a `DatasetLayoutError` instead, which `find` above turns into "not available". A broken line
# is different: the data is there but wrong, and a training run on it must stop rather than skip
# the image.
#
# ### Exercise 3: is DGDM's gain larger than the spread between seeds?
#
# Three seeds per method give three numbers each. The question is whether the difference of the
# means could be seed noise: the mean difference with a 95% interval (Welch's t, which does not
# assume equal spreads), and the gain is shown when the whole interval lies above 0. In a few lines:

# %%
import json
import math

import numpy as np
from scipy import stats


def welch_interval(a, b):
    """mean(a) - mean(b) and the half-width of its 95% Welch t interval."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return a.mean() - b.mean(), stats.t.ppf(0.975, dof) * math.sqrt(va + vb)


def seed_values(run_dir, method, key, seeds=(0, 1, 2)):
    """``key`` of each seed's ``metrics.json`` in a `compare` folder, or None when a run is missing."""
    files = [run_dir / f"{method}-s{seed}" / "metrics.json" for seed in seeds]
    if not all(f.is_file() for f in files):
        return None
    return [json.loads(f.read_text())["metrics"][key] for f in files]


def beetle_values(name, key, path=None):
    """The benchmark's per-seed values of one beetles row (chapter 06's three-seed table)."""
    path = path or repo_root() / "docs" / "results.json"
    rows = json.loads(path.read_text())["accuracy"]["tables"]["methods"]
    return next(row[key]["values"] for row in rows if row["row"] == name)


KEY = "gt_known_loc@tau_val"
dgdm, cam = seed_values(RUN_DIR, "dgdm", KEY), seed_values(RUN_DIR, "cam", KEY)
if dgdm and cam:
    source = f"your CUB runs in {RUN_DIR}"
else:
    print(f"No three-seed CUB comparison in {RUN_DIR} (that needs a GPU); the same test on the beetles' "
          "three seeds from docs/results.json instead.")
    dgdm, cam = beetle_values("DGDM (stage 1+2 + CAGD)", KEY), beetle_values("CAM", KEY)
    source = "the beetles benchmark"
diff, half = welch_interval(dgdm, cam)
print(f"{source}: DGDM {np.round(dgdm, 1).tolist()} vs CAM {np.round(cam, 1).tolist()} (GT-known Loc, val tau)")
print(f"DGDM - CAM = {diff:+.1f} points, 95% interval [{diff - half:+.1f}, {diff + half:+.1f}]: "
      + ("shown" if diff - half > 0 else "reversed" if diff + half < 0 else "not shown (the interval contains 0)"))

# %% [markdown]
# On the beetles the same test is one of the claims of docs/results.md; the cell below checks the
# few lines above against the benchmark's own computation of it.

# %%
claim = next((c for c in json.loads((repo_root() / "docs" / "results.json").read_text())["accuracy"]["claims"]
              if c["claim"].startswith("DGDM localises better than CAM")), None)
if claim is None or KEY not in claim["metrics"]:
    print("docs/results.json has no DGDM-versus-CAM claim to compare with")
else:
    stored = claim["metrics"][KEY]
    mine = welch_interval(beetle_values("DGDM (stage 1+2 + CAGD)", KEY), beetle_values("CAM", KEY))
    print(f"benchmark: {stored['diff']:+.1f} [{stored['ci95'][0]:+.1f}, {stored['ci95'][1]:+.1f}] {stored['verdict']}; "
          f"these lines: {mine[0]:+.1f} [{mine[0] - mine[1]:+.1f}, {mine[0] + mine[1]:+.1f}]")
    assert abs(mine[0] - stored["diff"]) < 0.05 and abs(mine[0] - mine[1] - stored["ci95"][0]) < 0.05

# %% [markdown]
# With three seeds the interval is wide: a gain has to be large *and* steady to be shown. `mean ±
# sd` in `summary.md` gives a first impression (two means whose sd bands overlap widely are not
# told apart), but only the interval of the difference answers the question.
#
# ### Exercise 4: the threshold chosen on wsolevaluation's validation split
#
# Two things change at once. The validation images are no longer taken out of the training set (the
# network trains on all of CUB's training images), and tau is chosen on a separate set of images
# with boxes rather than on 5 training images per species. So the test numbers can move for two
# reasons: another tau applied to the test CAMs, and a network trained on more images. The cell
# compares two finished runs when you have them and otherwise prints the two commands.

# %%
WSOL_RUN_DIR = repo_root() / "runs" / "cub-vgg16-wsol"
finished = [RUN_DIR / "dgdm-s0" / "metrics.json", WSOL_RUN_DIR / "dgdm-s0" / "metrics.json"]
if all(f.is_file() for f in finished):
    for name, f in zip(("--dataset cub (5 per species)", "--dataset wsol (wsolevaluation val)"), finished):
        m = json.loads(f.read_text())["metrics"]
        print(f"{name:38s} val tau {m['tau_val']:.2f} | GT-k@val tau {m['gt_known_loc@tau_val']:.1f} | "
              f"MaxBoxAccV2 {m['maxboxacc_v2']:.1f}")
else:
    at = command.index("--dataset")
    wsol_command = [*command[:at], "--dataset", "wsol", "--wsol-name", "CUB",
                    "--data-root", str(DATA_ROOT / "wsolevaluation" / "dataset" / "CUB"),
                    "--metadata-root", str(DATA_ROOT / "wsolevaluation" / "metadata" / "CUB"),
                    *command[command.index("--arch"):command.index("--val-per-class")],
                    *command[command.index("--val-per-class") + 2:command.index("--out")], "--out", str(WSOL_RUN_DIR)]
    print("Run both on a GPU, then run this cell again:")
    print("  python " + " ".join(command[1:]))
    print("  python " + " ".join(wsol_command[1:]))

# %% [markdown]
# MaxBoxAccV2 does not choose a tau at all, so it moves only with the network (the extra training
# images, and the noise of a single run): if it stays put while GT-known Loc at the val tau moves,
# the threshold made the difference.
#
# ### Exercise 5: no GPU
#
# Chapter 09 is the answer: a small ImageNet network (`--arch lite0`) fine-tuned on a few species
# runs on a laptop CPU. The command line does the same as its cells, with the validation split of
# this chapter:

# %%
lite0_command = ["python", "-m", "dgdm_lib", "compare", "--dataset", "cub", "--data-root", str(CUB_ROOT),
                 "--classes", "10", "--arch", "lite0", "--methods", "cam,adl,dgdm", "--val-per-class", "5",
                 "--epochs", "6", "--out", "runs/cub10-lite0"]
print(" ".join(lite0_command))
