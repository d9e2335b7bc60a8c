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
# # 6. DGDM: both attentions, trained, and the paper's ablation
#
# Chapters 03 to 05 built the erasing modules one at a time: ADL drops the hottest *pixels*, CAGD
# drops unimportant *channels*, SAGD drops *blocks* around the most discriminative region and the
# background. The paper's **Dual-attention Guided Dropblock Module (DGDM)** chains CAGD and SAGD.
# This chapter trains it, repeats the paper's ablation (its Table 1) on beetles, and looks at the
# maps the way the paper's Fig. 5 does: ground-truth boxes red, predicted boxes green.
#
# First, the problem once more. A plain CAM network, trained in chapter 02, at the paper's
# threshold `tau = 0.2`: its boxes sit on the coloured head, which is all it needs to classify.

# %%
import torch
from IPython.display import display

from dgdm_lib.config import (
    env_report,
    get_device,
    mode_name,
    quick_mode,
    seed_everything,
)
from dgdm_lib.experiments import (
    BeetleRun,
    format_table,
    measure,
    measure_many,
    summarize,
    test_batch,
    test_camset,
    trained_model,
)
from dgdm_lib.models import METHODS
from dgdm_lib.modules import ABLATION_ROWS, DGDM
from dgdm_lib.views.cams import comparison_figure
from dgdm_lib.views.comparison import cam_montage_view, metric_bars_view
from dgdm_lib.widgets import check_redraw, float_slider, int_slider, slider_view

print(env_report())

# %%
cam_run = BeetleRun.of("cam")
cam_montage_view({"CAM": test_camset(cam_run)}, tau=0.2, n=8)

# %% [markdown]
# ## The idea in a sentence and a formula
#
# DGDM erases twice during training: first the channels that matter least (so the network cannot
# lean on a few generic ones), then the spatial blocks that matter most and the background blocks
# (so it must find the rest of the object). With the feature map $F$ of shape (B, C, H, W):
#
# $$F_1 = F \odot M_{drop1}, \qquad M_{drop1}[c] = \begin{cases}1 & |S_c| \ge \beta \min_{c'} |S_{c'}| \\ \text{Bernoulli}(1-\alpha) & \text{otherwise}\end{cases}, \qquad S = \mathrm{GAP}(F)$$
#
# $$A = \tfrac1C \textstyle\sum_c F_1[c],\quad A_n = \dfrac{A - \min A}{\max A - \min A},\quad I = \sigma(A)$$
#
# $$D = \mathbb 1[A_n > \delta_h] \lor \mathbb 1[A_n < \delta_l],\qquad M_{drop2} = 1 - \mathrm{maxpool}_{b \times b}(D)$$
#
# $$\text{output} = F_1 \odot \begin{cases} M_{drop2} & \text{with probability } p_{drop} \\ I & \text{otherwise}\end{cases}$$
#
# with $\beta = 3$, $\alpha = 0.5$, $\delta_h = 0.8$, $\delta_l = 0.1$, block size $b = 3$ and
# $p_{drop} = 0.75$. The paper gives no values for $\delta_l, \delta_h$: these are this book's choice
# (chapter 05 sweeps them). At test time the module is the identity, and it adds no parameters.

# %% [markdown]
# ## Build it
#
# `dgdm_lib.modules.DGDM` is that formula as an `nn.Module`. Its `masks(F)` returns every
# intermediate map, so we can look at what it *would* erase from the CAM network's last feature
# map on 64 test beetles (16 x 16 positions, 64 channels).

# %%
dgdm = DGDM(generator=seed_everything(0))
print(dgdm)
cam_model = trained_model(cam_run)
images, targets = test_batch(cam_run, 64)
with torch.no_grad():
    features = cam_model.forward_features(images)
maps = dgdm.masks(features)
print({name: tuple(m.shape) for name, m in maps.items()})

# %%
assert sum(p.numel() for p in dgdm.parameters()) == 0, "DGDM adds no parameters"
assert torch.equal(dgdm.eval()(features), features), "at test time DGDM is the identity"
assert set(maps["drop_mask"].unique().tolist()) <= {0.0, 1.0}, "Mdrop2 is binary"

# %% [markdown]
# How much does each part erase? Below, per image on average: the channels Mdrop1 keeps, and the
# share of the 16 x 16 positions Mdrop2 zeroes with stage 1 alone and with stages 1 and 2.

# %%
stage1 = DGDM.ablation("stage1", generator=seed_everything(0)).masks(features)
kept = maps["channel_mask"].sum(1).mean().item()
dead = (maps["channel_score"].abs().min(1).values < 1e-3).float().mean().item()
erased_1 = 1 - stage1["drop_mask"].float().mean().item()
erased_12 = 1 - maps["drop_mask"].float().mean().item()
print(f"Mdrop1 keeps {kept:.1f} of {features.shape[1]} channels "
      f"({100 * dead:.0f}% of images have a channel with |S| ~ 0, where the beta rule keeps everything)")
print(f"Mdrop2 zeroes {100 * erased_1:.0f}% of positions with stage 1, {100 * erased_12:.0f}% with stages 1 + 2")
assert erased_12 > 2 * erased_1, "the background stage erases far more than the discriminative stage"

# %% [markdown]
# Two things to remember for the results. CAGD's `beta` rule keeps almost every channel of this
# network: after a ReLU some channel is often (nearly) dead, so `beta * min |S|` is ~0 (chapter 04
# offers `keep_ratio` for that case). And stage 2 with `delta_l = 0.1` plus 3 x 3 blocks erases most
# of the map: on beetles the background is ~85% of the image, so "drop the background" leaves little.

# %% [markdown]
# ## The ablation of the paper's Table 1
#
# The paper grows the module row by row: SAGD stage 1 (drop the discriminative blocks), stages 1+2
# (also the background blocks), and stages 1+2 with Mdrop1 (CAGD in front: the full DGDM). In the
# library these rows are methods of `build_model`:

# %%
for method in ("sagd", "sagd12", "dgdm"):
    print(f"{method:7s} {METHODS[method].description}")
print("DGDM.ablation rows:", ABLATION_ROWS)

# %% [markdown]
# Each row is trained with the book's recipe (AdamW, one-cycle, 6 epochs on 4000 beetles, in
# both modes; quick mode measures on 300 test images instead of 500), next to CAM and ADL. Runs are cached, so the CAM,
# ADL and SAGD runs of chapters 02, 03 and 05 are reused. One seed here, to stay within a few
# minutes on a CPU; `SEEDS = (0, 1, 2)` gives the three-seed table (five more runs per seed, about
# four minutes on two free cores), which the benchmark (`make bench`, written to `docs/results.md`)
# also reports. Seeds matter here: between seeds 0 and 1 of this schedule we saw CAM move from
# 21 to 27 points of GT-known Loc at `tau = 0.2` and SAGD stage 1 from 53 to 76
# (`DGDM_SEED_OFFSET=1 make book` re-runs the whole book on the next seed).

# %%
SEEDS = (0,)
ROWS = {"cam": "CAM", "adl": "ADL", "sagd": "stage 1", "sagd12": "stage 1+2", "dgdm": "stage 1+2+Mdrop1 (DGDM)"}
runs = [BeetleRun.of(method, seed=seed) for method in ROWS for seed in SEEDS]
rows = [{**r, "label": ROWS[r["method"]]} for r in measure_many(runs)]
KEYS = ["top1_clas", "gt_known_loc@0.2", "gt_known_loc@tau_val", "maxboxacc_v2", "pxap"]
summary = summarize(rows, KEYS)
print(f"mode {mode_name()}, seeds {sorted({run.seed for run in runs})}, {runs[0].schedule.test_size} test images")
print(format_table(summary, KEYS))

# %%
metric_bars_view(summary, ["gt_known_loc@0.2", "gt_known_loc@tau_val", "maxboxacc_v2", "pxap"],
                 labels=["GT-known Loc, tau 0.2", "GT-known Loc, tau from val", "MaxBoxAccV2", "PxAP"],
                 title=f"Beetles test split, seed {runs[0].seed}: the paper's ablation rows next to CAM and ADL")

# %% [markdown]
# What holds, and what does not. The next cell asserts the first two points (they held on every
# seed we tried) and *prints* the third:
#
# * **Stage 1 is the paper's lesson, and it holds.** Dropping blocks around the most
#   discriminative region lifts GT-known Loc at `tau = 0.2` far above CAM, and above ADL, which
#   drops pixels rather than blocks.
# * **The paper's last row does not.** Putting CAGD (Mdrop1) in front of stages 1+2, the full
#   DGDM, *lowers* GT-known Loc at `tau = 0.2`, below stages 1+2 and below stage 1 alone. The
#   paper reports every row improving (VGG16 with ImageNet weights on CUB); here, trained from
#   scratch for a few epochs on beetles, it does not.
# * **Stage 2 helps, by an amount that moves with the seed.** Erasing the background as well lifted
#   GT-known Loc at `tau = 0.2` over stage 1 alone on each of our seeds 0, 1 and 2 (by 27, 9 and
#   8 points, 300 test images), although it erases about 90% of the positions it sees. With gains
#   that uneven we print it rather than assert it; the three-seed benchmark (`docs/results.md`)
#   gives the mean and spread. It is the full DGDM whose classification suffers: Top-1 Clas
#   99.7%, 89% and 82% on seeds 0, 1 and 2.

# %%
by = {r["method"]: r for r in rows if r["seed"] == runs[0].seed}
at02 = {m: by[m]["gt_known_loc@0.2"] for m in ROWS}
print("GT-known Loc @0.2:", {ROWS[m]: round(v, 1) for m, v in at02.items()})
assert at02["cam"] < 30, "CAM at tau 0.2 boxes the head, not the beetle"
assert at02["sagd"] > at02["cam"] + 20, "stage 1 beats CAM at tau 0.2 by a wide margin"
assert at02["sagd"] > at02["adl"], "blocks (stage 1) beat pixels (ADL) at tau 0.2"
assert at02["dgdm"] < min(at02["sagd"], at02["sagd12"]), "adding Mdrop1 lowers GT-known Loc at tau 0.2"
stage2 = at02["sagd12"] - at02["sagd"]
print(f"{mode_name()} mode: the background stage {'helps' if stage2 > 0 else 'does not help'} at tau 0.2 "
      f"({stage2:+.1f} points); Top-1 Clas of the rows:", {ROWS[m]: round(by[m]["top1_clas"], 1) for m in ROWS})

# %% [markdown]
# ## The paper's Fig. 5, on beetles
#
# The same eight test beetles through CAM, ADL, SAGD stage 1 and the full DGDM: each method's
# GT-class CAM over the image, the GT box in red and the box at `tau = 0.2` in green, titled with
# its IoU and predicted class (`p=`).

# %%
FIGURE_RUNS = {"CAM": cam_run, "ADL": BeetleRun.of("adl"), "SAGD": BeetleRun.of("sagd"), "DGDM": BeetleRun.of("dgdm")}
camsets = {name: test_camset(run) for name, run in FIGURE_RUNS.items()}
comparison_figure(camsets, n=8, tau=0.2, title=f"Test beetles, seed {cam_run.seed}: GT boxes red, boxes at tau = 0.2 green")

# %% [markdown]
# ## One more choice that moves the numbers: BatchNorm statistics
#
# During training, 75% of the forward passes see the erased map and the others see it scaled by
# `I = sigmoid(A)`, so the BatchNorm layer after the first module (in block 5) learns the
# statistics of *erased, shrunk* features. At test time the modules are the identity, and that
# layer sees inputs it was not normalised for. One remedy: after training, re-estimate the
# BatchNorm statistics with the modules switched off (`BeetleRun` field `bn_recalibrate=True`: one
# pass over the training images, no gradient step; the weights are the same as before the pass).
# Does it help DGDM? The answer, measured:

# %%
recal = measure(BeetleRun.of("dgdm", bn_recalibrate=True))
plain = by["dgdm"]
for key in KEYS:
    print(f"{key:21s} DGDM {plain[key]:5.1f}   DGDM + BN re-estimated {recal[key]:5.1f}   ({recal[key] - plain[key]:+.1f})")
biggest = max(KEYS, key=lambda k: abs(recal[k] - plain[k]))
print(f"largest change: {biggest}, {recal[biggest] - plain[biggest]:+.1f} points")
assert abs(recal[biggest] - plain[biggest]) > 5, "the BatchNorm statistics move DGDM's numbers by several points"
moved_02 = recal["gt_known_loc@0.2"] - plain["gt_known_loc@0.2"]
moved_v2 = recal["maxboxacc_v2"] - plain["maxboxacc_v2"]
assert abs(moved_v2) < abs(moved_02) / 2, "the fixed-tau number moves far more than the threshold-free one"

# %% [markdown]
# The change is large where the paper measures, and small elsewhere. In our runs re-estimation
# raised GT-known Loc at `tau = 0.2` by 11, 9 and 12 points (seeds 0, 1 and 2, 300 test images),
# but MaxBoxAccV2 by only 1.4, 0.8 and 1.1 points and PxAP not at all; on seed 2 it also won back
# 6 points of Top-1 Clas. So it mostly changes the *scale* of DGDM's maps, and with it where the
# fixed threshold cuts them, not where the maps point (chapter 07 takes this up). A choice with
# that much effect on the paper's own metric must be reported with the numbers: this book's
# tables use the plain statistics unless they say otherwise.

# %% [markdown]
# ## On a GPU: VGG16-GAP at 224 px
#
# The paper's network is VGG16-GAP (`build_model("vgg16", ...)`: VGG16 without pool5, plus conv6
# with 1024 channels, GAP and one linear layer), with DGDM after pool3, pool4 and conv5_3, on
# 224 x 224 images. On a GPU in classroom mode the next cell trains CAM, ADL and DGDM that way on
# the beetles resized to 224 px (boxes and masks follow the resize), from torchvision's ImageNet
# weights when they are in the local cache (chapter 08), else from scratch. On a CPU it would take
# hours, so there it only says so. Its numbers were not measured by this book's authors: treat
# them as your experiment.

# %%
BIG = get_device().type == "cuda" and not quick_mode()
if BIG:
    from dgdm_lib.data import BeetlesDataset, make_loader, standard_transforms
    from dgdm_lib.evaluation import evaluate_val_test
    from dgdm_lib.models import (
        PretrainedWeightsError,
        build_model,
        torchvision_cache_file,
    )
    from dgdm_lib.training import train

    try:
        weights = torchvision_cache_file("vgg16")
    except PretrainedWeightsError as error:
        weights = None
        print("training VGG16-GAP from scratch:", error)
    data = {split: make_loader(BeetlesDataset(split, transform=standard_transforms(split == "train", 256, 224)),
                               batch_size=64, shuffle=split == "train", num_workers=4,
                               generator=torch.Generator().manual_seed(0)) for split in ("train", "val", "test")}
    big_rows = []
    for method in ("cam", "adl", "dgdm"):
        seed_everything(0)
        model = build_model("vgg16", method, num_classes=8, pretrained=weights)
        train(model, data["train"], epochs=10, optimizer="sgd", lr=1e-3 if weights else 1e-2, schedule="cosine")
        big_rows.append({**evaluate_val_test(model, data["val"], data["test"]), "label": f"vgg16 {method}"})
    print(format_table(summarize(big_rows, KEYS), KEYS))
else:
    print(f"Skipped: VGG16-GAP at 224 px needs a GPU and classroom mode (device {get_device()}, mode {mode_name()}). "
          "The small network above is the CPU version of the same experiment.")

# %% [markdown]
# ## Explore: the boxes behind the numbers
#
# Move `tau` and the first test image shown. Each row is a method; the label says how many of the
# shown beetles are hits (IoU >= 0.5). Try `tau` around 0.1, where CAM does best (chapter 07 says
# why that matters), and around 0.4.

# %% tags=["nbval-ignore-output"]
def draw_boxes_at(tau: float, start: int):
    return cam_montage_view(camsets, tau=tau, start=start, n=6)


view = slider_view(draw_boxes_at, tau=float_slider("tau", 0.2, 0.0, 0.95, 0.01),
                   start=int_slider("first image", 0, 0, 10))
display(view)

# %%
check_redraw(draw_boxes_at, tau=0.35, start=3);

# %% [markdown]
# ## Summary
#
# * DGDM = CAGD (channel dropout guided by `GAP(F)`) then SAGD (block dropout guided by the mean
#   feature map, on the most discriminative region and the background); identity at test time.
# * On beetles the paper's first ablation row holds clearly: dropping *blocks* around the
#   discriminative region beats CAM and ADL at the paper's `tau = 0.2`.
# * The paper's last row does not: with CAGD in front of stages 1+2 (the full DGDM), GT-known Loc
#   at `tau = 0.2` falls below stage 1+2 and stage 1. Whether the background stage helps depends
#   on the training schedule; it erases most of a 16 x 16 map.
# * Re-estimating BatchNorm statistics after erasing moves GT-known Loc at `tau = 0.2` by about
#   ten points and the threshold-free MaxBoxAccV2 by about one: report which statistics you used.
# * These are single-seed numbers at a fixed threshold; chapter 07 asks how much of each gain
#   survives a fair threshold.
#
# ## Exercises
#
# 1. Set `SEEDS = (0, 1, 2)` and re-run the ablation. Is the gap between stage 1 and the full DGDM
#    larger than the spread over seeds? *Hint:* the table shows mean ± sd.
# 2. Train stages 1+2 with a milder background stage: `BeetleRun.of("sagd12", delta_l=0.02)`. How
#    much of the map does it erase now, and does it catch up with stage 1? *Hint:* recompute
#    `erased_12` with `DGDM(delta_l=0.02)`.
# 3. Replace CAGD's `beta` rule by `keep_ratio=0.5` (`BeetleRun.of("dgdm", keep_ratio=0.5)`). Does
#    the full module change at all? *Hint:* compare `kept` above with 32.
# 4. The paper's best block size on 14 x 14 maps is 2 for stage 1. Try `block_size=2` and
#    `block_size="adaptive"` for `sagd`. *Hint:* `adaptive` is `ceil(H / 7)`, 3 on a 16 x 16 map.
