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
# # 4. CAGD: which channels to drop
#
# ADL (chapter 03) decides *where* to erase: it looks at the feature map `F` (B, C, H, W) as a
# picture and drops its hottest pixels. But `F` has a second axis. Each of its `C` channels is a
# detector of its own, learned by the network, and the classifier reads them all after global
# average pooling. **Channel attention guided dropout (CAGD)**, section 3.2 of Yin et al. (2020),
# decides *which channels* to drop.
#
# In this chapter we look at the channels of the CAM network trained in chapter 02, rank them as
# CAGD does, see which survive one CAGD draw and what the attention map and the CAM look like
# afterwards. We also meet two places where the paper's rule has to be read carefully: on real
# features after a ReLU it can keep *every* channel, and on near-equal channels it keeps *none*.

# %% [markdown]
# ## Why this matters: channels are not equal
#
# We load chapter 02's network (trained once and cached: `BeetleRun.of("cam")`, seed 0) and 200
# test beetles, and read the feature maps at the two places where the book's network carries the
# attention modules: after block 4 and after block 5 (block 5's output is the last feature map `F`,
# the one the CAM is made of). Both are (N, 64, 16, 16).

# %%
import numpy as np
import torch
from IPython.display import display

from dgdm_lib.experiments import BeetleRun, test_batch, trained_model
from dgdm_lib.modules import CAGD, cagd_channel_mask, cagd_rule_regimes
from dgdm_lib.plotting import to_display_images
from dgdm_lib.views.attention import (
    cagd_view,
    channel_gallery_view,
    channel_keep_shares,
    channel_object_shares,
    features_at_positions,
    keep_share_view,
)
from dgdm_lib.widgets import (
    check_redraw,
    dropdown,
    float_slider,
    int_slider,
    slider_view,
)

run = BeetleRun.of("cam")
model = trained_model(run)
images, targets = test_batch(run, 200)
labels, masks = targets["label"], targets["mask"]
features = features_at_positions(model, images)
F4, F5 = features["block4"], features["block5"]
pictures = np.stack(to_display_images(images[:8], normalized=True))
print({name: tuple(f.shape) for name, f in features.items()})
assert F5.shape == (len(images), 64, 16, 16)

# %% [markdown]
# Here are, for one beetle, the six channels of `F` (after block 5) with the largest mean
# activation and the six with the smallest, each on its own colour scale. The ranking is by
# `|S_c|`, where `S_c` is the channel's global average: exactly what the classifier sees of that
# channel. The strongest channels fire around the coloured head, the part that names the class;
# the weakest have a mean a hundred times smaller and respond only in a few scattered cells.

# %%
channel_gallery_view(F5[:1], pictures[0])

# %% [markdown]
# ## The idea in a sentence and a formula
#
# *Rank the channels by their global average; always keep the important ones; drop each of the
# others with probability `alpha`.* With `S = GAP(F)` (B, C):
#
# $$t = \beta \cdot \min_c |S_c|, \qquad
#   \mathrm{Mdrop1}_c = \begin{cases} 1 & |S_c| \ge t \quad\text{(important: always kept)}\\
#                                    \mathrm{Bernoulli}(1-\alpha) & \text{otherwise}\end{cases}$$
#
# and the module returns `F * Mdrop1[:, :, None, None]` in training, `F` itself in evaluation.
# The paper tries `beta` = 2, 2.5, 3 and 3.5; `alpha` = 0.5 is our default. The mask is computed
# on the ranked scores and written back in the original channel order. In the full module, DGDM
# (chapter 06), CAGD runs first and SAGD (chapter 05) computes its attention map from
# `F1 = F * Mdrop1`.

# %% [markdown]
# ## Build it with the library
#
# `dgdm_lib.modules.CAGD` is the module; `cagd_channel_mask` is the same maths as a function.
# `module.masks(F)` returns one draw of the mask, the scores `S` and which channels are important.
# Like every module of the book it has no parameters and does nothing in `eval()` mode.

# %%
cagd = CAGD(beta=3.0, alpha=0.5, generator=torch.Generator().manual_seed(0))
sample = F5[:4]
maps = cagd.masks(sample)
print(cagd)
print({name: tuple(value.shape) for name, value in maps.items()})
assert sum(p.numel() for p in cagd.parameters()) == 0
assert cagd.eval()(sample) is sample
assert set(maps["channel_mask"].unique().tolist()) <= {0.0, 1.0}
assert bool((maps["channel_mask"][maps["important_channels"]] == 1).all()), "important channels are always kept"

# %% [markdown]
# ## Does the ranking mean anything? Measure it
#
# If `|S_c|` says which channels matter, the strong channels should look at the beetle and the weak
# ones elsewhere. For every test image and channel we measure the share of the channel's activation
# that falls on the object mask (pooled to the 16 x 16 grid), then average by rank. The beetle
# covers about 14% of an image, so a channel that ignored the object would score about 14%.

# %%
def object_share_by_rank(f: torch.Tensor, quarters: int = 4) -> list[float]:
    shares = channel_object_shares(f, masks)
    order = f.mean(dim=(2, 3)).abs().argsort(dim=1, descending=True)
    ranked = shares.gather(1, order).chunk(quarters, dim=1)
    return [100 * float(part.nanmean()) for part in ranked]


object_area = 100 * float(masks.float().mean())
by_rank = {name: object_share_by_rank(f) for name, f in features.items()}
print(f"object area: {object_area:.0f}% of the image (seed {run.seed}, {len(images)} test images)")
for name, shares in by_rank.items():
    print(f"{name}: share of activation on the object, by |S| quarter (strongest first):",
          " ".join(f"{s:.0f}%" for s in shares))
assert by_rank["block5"][0] > by_rank["block5"][-1], "the strongest channels should sit on the object more"

# %% [markdown]
# At block 5 the strongest quarter of the channels puts clearly more of its activation on the
# beetle than the weakest quarter does; the weakest are closer to a channel that looks at the
# background. So CAGD's ranking is meaningful: the channels it may drop are the ones that carry
# less of the object, and dropping some of them at random is a regularizer that pushes the
# network to rely on the important ones.

# %% [markdown]
# ## The reading chosen: the `beta` rule on real features
#
# The threshold is `t = beta * min_c |S_c|`. After a ReLU a channel can be **dead** on an image,
# all zeros, so `min |S| = 0`, `t = 0`, and *every* channel passes `|S_c| >= t`: the rule keeps
# everything. Even without a dead channel, `min |S|` is tiny, so `t` is small. Let us count on
# the 200 test images.

# %%
for name, f in features.items():
    scores = f.mean(dim=(2, 3))
    dead = (scores.abs() == 0).any(dim=1)
    shares = channel_keep_shares(f, beta=3.0)
    print(f"{name}: images with a dead channel {int(dead.sum())}/{len(f)}; beta=3 marks "
          f"{100 * float(shares.mean()):.0f}% of the channels important on average "
          f"(all of them on {int((shares == 1).sum())} images)")
    assert bool((shares[dead] == 1).all()), "with a dead channel the beta rule keeps every channel"

shares5 = channel_keep_shares(F5, beta=3.0)
assert float(shares5.mean()) > 0.8, "on real features the beta rule keeps most channels"

# %% [markdown]
# So with `beta = 3` CAGD treats about 90% of the channels as important on this network; with
# `alpha = 0.5` it then drops only a few percent of them. On the images with a dead channel it
# drops nothing at all. The histogram shows this for every `beta` the paper tries.

# %%
keep_share_view(F5, keep_ratio=0.5)

# %% [markdown]
# The rule has a second degenerate regime, at the other end. If every score lies within a factor
# `beta` of the weakest, `max_c |S_c| < beta * min_c |S_c|`, no channel reaches `t`: none is
# important, and every channel, *the strongest included*, is dropped with probability `alpha`.
# CAGD then guides nothing; it is plain channel dropout. We build such a map by hand: 64 channels
# whose averages run evenly from 1 to 2.5, so the strongest is 2.5 times the weakest, below
# `beta = 3`. We draw the mask on 2000 copies of it (seed 0), then count both regimes on the real
# features with `cagd_rule_regimes`.

# %%
flat = torch.linspace(1.0, 2.5, 64)[None, :, None, None].expand(2000, 64, 4, 4)
mask_flat, scores_flat, important_flat = cagd_channel_mask(
    flat, beta=3.0, alpha=0.5, generator=torch.Generator().manual_seed(0)
)
strongest = int(scores_flat[0].abs().argmax())
dropped_strongest = 1 - float(mask_flat[:, strongest].mean())
print(f"max |S| / min |S| = {float(scores_flat[0].max() / scores_flat[0].min()):.1f} < beta = 3: "
      f"{100 * float(important_flat.float().mean()):.0f}% of the channels are important")
print(f"the strongest channel is dropped in {100 * dropped_strongest:.1f}% of 2000 draws (alpha = 0.5)")
assert not important_flat.any() and abs(dropped_strongest - 0.5) < 0.05
assert bool(cagd_rule_regimes(flat[:1], beta=3.0)["none_important"])

for name, f in features.items():
    regimes = cagd_rule_regimes(f, beta=3.0)
    print(f"{name}, beta=3: every channel important on {int(regimes['all_important'].sum())}/{len(f)} images, "
          f"none important on {int(regimes['none_important'].sum())}/{len(f)}")

# %% [markdown]
# With seed 0 no test image meets the second regime at either block: the trained channel averages
# spread over far more than a factor `beta`, while a dead channel (the first regime) does occur.
# It is a corner of the rule to know about rather than one this network lives in; the top-k form
# below has neither corner.

# %% [markdown]
# The book therefore offers the equivalent **top-k form** as well: `keep_ratio` keeps the top
# `ceil(keep_ratio * C)` channels by `|S_c|` and drops each of the others with probability `alpha`
# (`CAGD(keep_ratio=0.5)`). It does not depend on how small the smallest score is. With
# `keep_ratio = 0.5` and `alpha = 0.5` a quarter of the channels should go on average; we draw it
# on all 200 feature maps (seed 0) and check.

# %%
generator = torch.Generator().manual_seed(0)
mask_beta, _, _ = cagd_channel_mask(F5, beta=3.0, alpha=0.5, generator=generator)
mask_top, _, important_top = cagd_channel_mask(F5, alpha=0.5, keep_ratio=0.5, generator=generator)
dropped_beta, dropped_top = 1 - float(mask_beta.mean()), 1 - float(mask_top.mean())
print(f"channels dropped per draw: beta rule {100 * dropped_beta:.1f}%, keep_ratio=0.5 {100 * dropped_top:.1f}%")
assert abs(dropped_top - 0.25) < 0.03
assert dropped_beta < dropped_top

# %% [markdown]
# ## Look at it: what survives, and what the map looks like after
#
# The left panel ranks the 64 channels of one feature map by `|S_c|` (log scale): dark blue are
# important (always kept), light blue were kept by this draw, grey were dropped; the dashed line is
# the threshold. On the right, the attention map `A = mean_c F` (top) and the CAM of the true
# class (bottom) before and after `F * Mdrop1`, each pair on the scale of its "before" map. First
# the paper's rule with `beta = 3`: the threshold sits near the weakest channel, so almost all
# channels are important.

# %%
W = model.classifier.weight.detach()
cagd_view(F5[:1], pictures[0], W, int(labels[0]), beta=3.0, alpha=0.5)

# %% [markdown]
# Then the top-k form keeping half of the channels. Many more channels go, yet the maps after
# hardly change: the dropped channels are the weak ones, and the strong channels that make the
# attention map and the CAM are all kept.

# %%
cagd_view(F5[:1], pictures[0], W, int(labels[0]), alpha=0.5, keep_ratio=0.5)

# %% [markdown]
# ## Measure it: what the classifier loses
#
# Does it matter *which* channels are dropped? We apply a channel mask to the last feature map of
# the (untouched) CAM network and classify the 200 test images from `F * Mdrop1`, reporting the
# top-1 accuracy and the mean probability the classifier gives the true class. Three masks, seed 0:
# CAGD's top-k form (one draw, `keep_ratio = 0.5`, `alpha = 0.5`); a control that drops as many
# channels among the *important* half instead; and the extreme `alpha = 1`, where the whole
# unimportant half goes, against the whole important half.

# %%
def classify_with(channel_mask: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        probabilities = model.classify(F5 * channel_mask[:, :, None, None]).softmax(dim=1)
    correct = (probabilities.argmax(1) == labels).float().mean()
    return 100 * float(correct), float(probabilities.gather(1, labels[:, None]).mean())


half_of_important = important_top & (torch.rand(important_top.shape, generator=generator) < 0.5)
masks_to_try = {
    "no dropout": torch.ones_like(mask_top),
    "CAGD (one draw, alpha=0.5)": mask_top,
    "same share from the important half": 1.0 - half_of_important.float(),
    "drop the whole unimportant half": important_top.float(),
    "drop the whole important half": 1.0 - important_top.float(),
}
results = {name: classify_with(mask) for name, mask in masks_to_try.items()}
print(f"seed {run.seed}, {len(images)} test images, masks on block 5's F")
for name, (top1, p_true) in results.items():
    print(f"{name:>36}: top-1 {top1:5.1f}%, mean p(true class) {p_true:.2f}")
assert results["CAGD (one draw, alpha=0.5)"][1] > results["same share from the important half"][1] + 0.1
assert results["drop the whole unimportant half"][0] > results["drop the whole important half"][0] + 50

# %% [markdown]
# Dropping channels among the unimportant ones leaves the classifier's answer and its confidence
# almost untouched; dropping as many among the important ones costs confidence, and removing the
# whole important half destroys the classification. CAGD's dropout is *guided*: it removes
# channels the decision can do without, so it can run all through training without stopping the
# network from learning its task.
#
# (The network here was trained without CAGD; chapter 06 trains with it, inside DGDM, and
# measures what it does to localization.)

# %% [markdown]
# ## Explore: `beta`, `alpha` and `keep_ratio`
#
# Move the sliders. `keep_ratio = 0` means the paper's `beta` rule; any other value switches to the
# top-k form (and `beta` is then ignored). `draw seed` changes the random seed of the Bernoulli draws,
# `image` the test beetle. Things to try: raise `beta` and watch the dashed threshold climb; set
# `alpha = 1` to drop every unimportant channel; compare a beetle whose rule keeps everything.

# %%
def draw_cagd(beta: float, alpha: float, keep_ratio: float, seed: int, image: int):
    return cagd_view(F5[image : image + 1], pictures[image], W, int(labels[image]), beta, alpha, keep_ratio, seed)


# %% tags=["nbval-ignore-output"]
view = slider_view(
    draw_cagd,
    beta=float_slider("beta", 3.0, 1.0, 6.0, 0.25),
    alpha=float_slider("alpha", 0.5, 0.0, 1.0, 0.05),
    keep_ratio=float_slider("keep_ratio (0: beta)", 0.0, 0.0, 1.0, 0.05),
    seed=int_slider("draw seed", 0, 0, 20),
    image=dropdown("image", list(range(len(pictures))), 0),
)
display(view)

# %% [markdown]
# One redraw must stay under the book's budget of 200 ms on a CPU:

# %%
check_redraw(draw_cagd, beta=3.0, alpha=0.5, keep_ratio=0.5, seed=1, image=1);

# %% [markdown]
# ## Summary
#
# * CAGD ranks the channels of `F` by their global average `|S_c|` and drops each channel below
#   the threshold `t = beta * min|S|` with probability `alpha`; the important channels always stay.
# * On this network the strongest channels look at the beetle more than the weakest ones do, and
#   dropping weak channels costs the classifier far less than dropping strong ones.
# * Read literally, the `beta` rule keeps almost every channel on real ReLU features (all of them
#   when one channel is dead), and none when all scores lie within a factor `beta` of each other:
#   then even the strongest channel is dropped with probability `alpha`. The book also offers the
#   top-k form, `keep_ratio`, which drops a predictable share.
#
# ## Exercises
#
# 1. How does the share of important channels change between `beta = 2` and `beta = 3.5` at
#    block 4? *Hint:* `keep_share_view(F4)`, or `channel_keep_shares(F4, beta=...)`.
# 2. Why must `beta` be at least 1? Try `CAGD(beta=0.5)`. *Hint:* what is `t` compared with the
#    smallest score?
# 3. Make the `beta` rule meaningful on dead channels: what would change if the minimum were taken
#    over the *non-zero* scores only? Write it with `torch.where` and compare the keep shares.
#    *Hint:* `scores.abs().masked_fill(scores == 0, float("inf")).min(1)`.
# 4. Train CAGD alone and compare it with CAM. *Hint:* `measure(BeetleRun.of("cagd", keep_ratio=0.5))`
#    from `dgdm_lib.experiments`, then the keys `"gt_known_loc@0.2"` and `"maxboxacc_v2"`; about half a
#    minute on a laptop CPU.
# 5. In the last measurement, drop the important channels with probability 1: what happens to the
#    accuracy, and what does the CAM look like? *Hint:* `cagd_view(..., keep_ratio=0.5)` shows the
#    kept ones; invert the mask with `1 - mask`.
