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
# # 2. Class activation maps: where does the classifier look?
#
# We train a small classifier on the beetles with **labels only**: no boxes, no masks. Then
# we ask it where the beetle is. The answer comes from its last convolutional layer, and it
# will be half right: it points at the beetle, but mostly at its head.

# %%
import numpy as np
import torch
from IPython.display import display

import dgdm_lib
from dgdm_lib.cam import class_activation_maps
from dgdm_lib.evaluation import evaluate
from dgdm_lib.experiments import BeetleRun, schedule, test_batch, test_camset, trained_model
from dgdm_lib.views.cams import box_coverage, cam_figure, cam_threshold_view, coverage_histogram
from dgdm_lib.widgets import check_redraw, float_slider, int_slider, slider_view

print(dgdm_lib.env_report())

# %% [markdown]
# ## The idea in one formula
# The network ends with convolutional features $F \in \mathbb{R}^{C\times h\times w}$, global
# average pooling (GAP) and a linear layer $W \in \mathbb{R}^{K\times C}$. The score of class
# $k$ is
# $$ s_k = \sum_c W_{k,c}\, \frac{1}{hw}\sum_{x,y} F_c(x,y) + b_k
#        = \frac{1}{hw}\sum_{x,y} \underbrace{\sum_c W_{k,c} F_c(x,y)}_{\mathrm{CAM}_k(x,y)} + b_k .$$
# Because pooling and the linear layer commute, the class score is the *average of a map*:
# the **class activation map** $\mathrm{CAM}_k$ says how much each location adds to class
# $k$'s score (Zhou et al., 2016). Upsample it to the image, normalise it to [0, 1], threshold
# it at $\tau$, box the largest region: that is a localizer trained without a single box.

# %% [markdown]
# ## Train the classifier
# The network of the book: five conv3×3-BN-ReLU blocks (16-32-64-64-64 channels, max-pool
# after the first two, so a 16×16 map at 64 px), GAP and a linear layer: about 0.1 M
# parameters. AdamW, one-cycle learning rate, batch 64, horizontal flips, seed 0. The trained
# weights are cached in the data folder: the next chapters reuse them.

# %%
run = BeetleRun.of("cam", seed=0)
print(f"schedule: {schedule()}")
model = trained_model(run)
for epoch in (model.train_result or {}).get("history", []):
    print(f"epoch {epoch['epoch']}: loss {epoch['loss']:.3f}, train accuracy {epoch['acc']:.1f}%")

# %% [markdown]
# ## CAM by hand
# One batch of test images. We compute $\mathrm{CAM}_y$ with the formula above from the
# features and the classifier weights, and check the identity: the class score is the mean of
# its CAM plus the bias.

# %%
images, targets = test_batch(run, 8)
labels = targets["label"]
with torch.no_grad():
    features = model.forward_features(images)  # F: (B, C, h, w)
    logits = model(images)
cams = class_activation_maps(features, model.classifier.weight, labels)  # (B, h, w)
print("features", tuple(features.shape), "-> CAMs", tuple(cams.shape))
score_from_cam = cams.mean(dim=(1, 2)) + model.classifier.bias[labels]
assert torch.allclose(score_from_cam, logits.gather(1, labels[:, None]).squeeze(1), atol=1e-4)
print("class score == mean(CAM) + bias: checked on", len(labels), "images")

# %% [markdown]
# ## Look at it
# CAMs of the ground-truth class on test images, upsampled to 64×64 and normalised. Red: the
# ground-truth box. Green: the box around the largest region above $\tau = 0.2$, the threshold
# the DGDM paper uses.

# %%
camset = test_camset(run)
cam_figure(camset, n=8, tau=0.2, name="CAM")

# %% [markdown]
# The map is hottest on the head, the one part that names the class; the body is lukewarm.
# The green boxes are centred on the head: they take in the head, part of the body and some
# background. That is WSOL's problem in one picture.
#
# ## Measure it
# On the 500-image test split (seed 0): classification accuracy, **GT-known Loc** (share of
# images whose box at $\tau$ has IoU ≥ 0.5 with the ground truth, using the true class's CAM)
# and where the CAM's mass goes: head, rest of the body, background.

# %%
metrics = evaluate(camset, tau=0.2)
for key in ("top1_clas", "gt_known_loc@0.2", "top1_loc@0.2", "head_share", "body_share", "background_share"):
    print(f"{key:>18}: {metrics[key]:5.1f}%")

# %% [markdown]
# The head is ~12% of the object, so a CAM spread evenly over the beetle would put ~12% of
# its *object* mass on the head. Per pixel, how much hotter is the head than the body?

# %%
head_pixels = camset.head_masks.mean()
body_pixels = (camset.masks & ~camset.head_masks).mean()
head_density = metrics["head_share"] / head_pixels
body_density = metrics["body_share"] / body_pixels
print(f"CAM mass per pixel: head {head_density / body_density:.1f}x the body's")
assert metrics["top1_clas"] > 90, "the classifier itself must work"
assert head_density > 1.5 * body_density, "CAM should concentrate on the head"

# %% [markdown]
# And the boxes: per test image, which share of the head and which share of the rest of the
# body lie inside the predicted box?

# %%
head_cov, body_cov = box_coverage(camset.cams, camset.masks, camset.head_masks, tau=0.2)
display(coverage_histogram({"CAM": body_cov}))
print(f"inside the CAM box at tau 0.2 (median over images): head {np.median(head_cov):.0%}, "
      f"rest of the body {np.median(body_cov):.0%}")
assert np.median(head_cov) > np.median(body_cov) + 0.2, "CAM boxes should be built around the head"

# %% [markdown]
# ## Explore: the threshold decides the box
# $\tau$ is not learned; somebody picks it. Slide it: a low $\tau$ takes in the lukewarm body
# (and, lower still, background); a high one keeps only the head. Change the image too.

# %% tags=["nbval-ignore-output"]
view = slider_view(lambda index, tau: cam_threshold_view(camset, index, tau),
                   index=int_slider("image", 0, 0, len(camset.images) - 1),
                   tau=float_slider("tau", 0.2, 0.0, 0.95, 0.05))
display(view)

# %%
check_redraw(lambda index, tau: cam_threshold_view(camset, index, tau), index=3, tau=0.35);

# %% [markdown]
# ## Summary
# * CAM reads localization out of a classifier: $\mathrm{CAM}_k = \sum_c W_{k,c} F_c$, whose
#   average is the class score.
# * Trained on labels only, the network concentrates on the most discriminative part (the
#   head): boxes at $\tau = 0.2$ are too small.
# * The box depends on $\tau$ as much as on the network; chapter 07 takes this seriously.
#
# ## Exercises
# 1. Find a $\tau$ that gives a good box on image 0. Does the same $\tau$ work on image 5?
#    *Hint:* the slider; then `box_size_ratios(camset.cams, camset.gt_boxes, tau)`.
# 2. Use the *predicted* class's CAM (`camset.pred_cams`). When does it differ from the GT
#    class's CAM? *Hint:* look at the few misclassified images, `camset.predictions != camset.labels`.
# 3. Train with `BeetleRun.of("cam", pattern_contrast=0.0)`: where does the CAM go when the
#    body carries no evidence at all?
