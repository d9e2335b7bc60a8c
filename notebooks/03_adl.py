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
# # 3. ADL: hide the hottest part, and the network looks elsewhere
#
# Chapter 02 ended with CAM boxes built around the beetle's head. The network has no reason
# to look further: the head is enough. **Attention-based dropout** (ADL, Choe & Shim, 2019)
# gives it a reason. During training it sometimes hides the most attended locations of a
# feature map, so the classifier must also learn the less discriminative parts: the body.

# %%
import numpy as np
import torch
from IPython.display import display

import dgdm_lib
from dgdm_lib.evaluation import evaluate
from dgdm_lib.experiments import BeetleRun, test_batch, test_camset, trained_model
from dgdm_lib.modules import ADL
from dgdm_lib.plotting import to_display_images
from dgdm_lib.views.attention import adl_view
from dgdm_lib.views.cams import box_coverage, comparison_figure, coverage_histogram
from dgdm_lib.widgets import check_redraw, float_slider, int_slider, slider_view

print(dgdm_lib.env_report())

# %% [markdown]
# ## The idea in two formulas
# From a feature map $F$ (B×C×H×W), ADL takes the **self-attention** map, the channel mean
# $A = \frac{1}{C}\sum_c F_c$, and builds two maps:
# * the **drop mask** $M = \mathbb{1}[A < \gamma \max_{x,y} A]$, zero where attention is within
#   a factor $\gamma$ of its peak: the most discriminative region, hidden;
# * the **importance map** $I = \sigma(A)$, which instead *emphasises* those locations so the
#   classifier keeps learning them.
#
# Each training step picks $M$ with probability `drop_rate` and $I$ otherwise, and multiplies
# $F$ by it. At test time ADL does nothing. It has no parameters.

# %%
adl = ADL(gamma=0.8, drop_rate=0.75)
print(adl, "| parameters:", sum(p.numel() for p in adl.parameters()))
features = torch.randn(2, 64, 16, 16).relu()
assert torch.equal(adl.eval()(features), features), "ADL is the identity at test time"
assert not torch.equal(adl.train()(features), features), "and changes F while training"

# %% [markdown]
# ## Look at it on real features
# The masks ADL would use on the trained CAM network of chapter 02 (loaded from the cache),
# on the last convolutional features (block 5, 64×16×16) of test images.

# %%
cam_run = BeetleRun.of("cam", seed=0)
cam_model = trained_model(cam_run)
images, targets = test_batch(cam_run, 16)
with torch.no_grad():
    test_features = cam_model.forward_features(images)
pictures = to_display_images(images, normalized=True)
adl_view(test_features[:1], pictures[0], gamma=0.8, drop_rate=0.75)

# %% [markdown]
# The drop mask cuts out the head's neighbourhood, exactly what the classifier relies on. With
# the head hidden, the only way to stay right is the body's texture.
#
# ## Explore: gamma and drop rate
# A lower $\gamma$ hides more (everything above $\gamma$ times the peak); `drop_rate` decides
# how often the mask is used rather than the importance map.

# %% tags=["nbval-ignore-output"]
def draw(index: int, gamma: float, drop_rate: float):
    return adl_view(test_features[index : index + 1], pictures[index], gamma, drop_rate)


view = slider_view(draw, index=int_slider("image", 0, 0, len(pictures) - 1),
                   gamma=float_slider("gamma", 0.8, 0.3, 1.0, 0.05),
                   drop_rate=float_slider("drop_rate", 0.75, 0.0, 1.0, 0.05))
display(view)

# %%
check_redraw(draw, index=2, gamma=0.6, drop_rate=0.5);

# %% [markdown]
# ## Train with ADL
# Same network, same data, same seed and schedule as chapter 02; ADL after blocks 4 and 5
# ($\gamma = 0.8$, `drop_rate` 0.75).

# %%
adl_run = BeetleRun.of("adl", seed=0)
adl_model = trained_model(adl_run)
print(adl_model.attention_modules())

# %% [markdown]
# ## Compare with CAM
# Rows: input, CAM, ADL. GT boxes red, boxes at $\tau = 0.2$ green.

# %%
cams = {"CAM": test_camset(cam_run), "ADL": test_camset(adl_run)}
comparison_figure(cams, n=8, tau=0.2)

# %% [markdown]
# The numbers on the 500 test images at the paper's threshold $\tau = 0.2$ (seed 0):

# %%
rows = {name: evaluate(camset, tau=0.2) for name, camset in cams.items()}
coverage = {name: box_coverage(c.cams, c.masks, c.head_masks, tau=0.2)[1] for name, c in cams.items()}
print(f"{'':>5} {'Top-1 Clas':>10} {'GT-known Loc':>12} {'body in box':>11} {'head share':>10}")
for name, m in rows.items():
    print(f"{name:>5} {m['top1_clas']:10.1f} {m['gt_known_loc@0.2']:12.1f} {100 * np.median(coverage[name]):10.0f}% "
          f"{m['head_share']:9.1f}%")
display(coverage_histogram(coverage))
assert rows["ADL"]["gt_known_loc@0.2"] > rows["CAM"]["gt_known_loc@0.2"], "ADL should localize better at tau 0.2"
assert np.median(coverage["ADL"]) > np.median(coverage["CAM"]), "ADL's boxes should take in more of the body"

# %% [markdown]
# At $\tau = 0.2$ ADL localizes the whole beetle far more often than CAM, with the same
# classification accuracy: the erased head forced the network to use the body. Keep one
# caveat for chapter 07: $\tau = 0.2$ is one threshold. A CAM whose body is lukewarm can still
# give a good box at a *lower* threshold; whether erasing helps at every threshold is a
# different question, measured there.
#
# ## Summary
# * ADL hides $\{A \ge \gamma \max A\}$ with probability `drop_rate`, else multiplies by
#   $\sigma(A)$; it has no parameters and is the identity at test time.
# * Hiding the discriminative part during training spreads the CAM over the object: at
#   $\tau = 0.2$ GT-known Loc rises well above CAM's.
# * ADL drops *pixels*; chapters 04 and 05 drop *channels* and *blocks*.
#
# ## Exercises
# 1. Train ADL with $\gamma = 0.5$ and with $\gamma = 0.95$. Which hides too much?
#    *Hint:* `BeetleRun.of("adl", gamma=0.5)` and `measure(...)` from `dgdm_lib.experiments`.
# 2. Set `drop_rate=1.0` (always drop, never emphasise). What happens to classification?
# 3. ADL's mask is per pixel of a 16×16 map. Why might neighbouring pixels still leak the
#    head's information to the next layer? *Hint:* a 3×3 convolution's receptive field; then
#    read chapter 05.
