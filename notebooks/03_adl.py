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
import torch.nn.functional as nnf
from IPython.display import Markdown, display
from matplotlib.figure import Figure

import dgdm_lib
from dgdm_lib.config import quick_mode
from dgdm_lib.evaluation import evaluate
from dgdm_lib.experiments import BeetleRun, beetle_loader, bench_text, measure, test_batch, test_camset, trained_model
from dgdm_lib.modules import ADL, adl_masks
from dgdm_lib.plotting import hide_axis, to_display_images
from dgdm_lib.views.attention import adl_view, heat_rgb
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
#
# ## ADL from scratch
# Both maps and the random choice fit in a few lines of PyTorch. One detail decides whether we
# match the library draw for draw: *how* the choice is drawn. The library (`dgdm_lib.modules`,
# and docs/methods.md, "Interpretation choices") tosses **one coin per forward call, shared by
# the whole batch**: a single `torch.rand(1)` from the module's `generator`, before anything
# else; $M$ if it falls below `drop_rate`. (With `per_sample=True` it draws one number per image
# instead; we check that variant too.)

# %%
def adl_maps(features: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """ADL's drop mask M and importance map I for F (B, C, h, w), both (B, 1, h, w)."""
    attention = features.mean(dim=1, keepdim=True)  # A = mean_c F
    peak = attention.amax(dim=(2, 3), keepdim=True)  # max of A, per image
    drop_mask = (attention < gamma * peak).to(features.dtype)  # M: 0 where A >= gamma * max A
    importance = torch.sigmoid(attention)  # I
    return drop_mask, importance


def adl_forward(features: torch.Tensor, gamma: float, drop_rate: float, generator: torch.Generator,
                per_sample: bool = False) -> torch.Tensor:
    """ADL in training mode: F * M with probability drop_rate, else F * I."""
    drop_mask, importance = adl_maps(features, gamma)
    if per_sample:  # one draw per image
        use_drop = torch.rand(len(features), 1, 1, 1, generator=generator) < drop_rate
        return features * torch.where(use_drop, drop_mask, importance)
    use_drop = torch.rand(1, generator=generator).item() < drop_rate  # one draw for the whole batch
    return features * (drop_mask if use_drop else importance)


# %% [markdown]
# Now the library's `ADL` on real features: the last convolutional features (block 5,
# 64×16×16) of 16 test images, from the trained CAM network of chapter 02 (loaded from the
# cache). First the two maps, then 20 training-mode calls of the library's module and of our
# function, each with its own `torch.Generator` seeded alike, so both see the same random draws.

# %%
cam_run = BeetleRun.of("cam", seed=0)
cam_model = trained_model(cam_run, progress=False)
images, targets = test_batch(cam_run, 16)
with torch.no_grad():
    test_features = cam_model.forward_features(images)
pictures = to_display_images(images, normalized=True)

our_mask, our_importance = adl_maps(test_features, gamma=0.8)
library_importance, library_mask = adl_masks(test_features, gamma=0.8)
assert torch.equal(our_mask, library_mask) and torch.allclose(our_importance, library_importance, rtol=0, atol=1e-6)

for per_sample in (False, True):
    library_adl = ADL(gamma=0.8, drop_rate=0.75, per_sample=per_sample, generator=torch.Generator().manual_seed(7))
    library_adl.train()
    ours = torch.Generator().manual_seed(7)
    dropped_calls = 0
    for call in range(20):
        expected = library_adl(test_features)
        got = adl_forward(test_features, 0.8, 0.75, ours, per_sample=per_sample)
        assert torch.allclose(got, expected, rtol=0, atol=1e-6), f"call {call} differs"
        dropped_calls += torch.equal(got, test_features * our_mask)
    print(f"per_sample={per_sample}: 20 calls agree with the library"
          + ("" if per_sample else f"; the whole batch was multiplied by M in {dropped_calls} of them"))

# %% [markdown]
# Same maps, same draws, same outputs. From here on we use the library's module. Two facts
# about it, checked: it has no parameters, and in `eval()` mode it is the identity.

# %%
adl = ADL(gamma=0.8, drop_rate=0.75)
print(adl, "| parameters:", sum(p.numel() for p in adl.parameters()))
assert torch.equal(adl.eval()(test_features), test_features), "ADL is the identity at test time"
assert not torch.equal(adl.train()(test_features), test_features), "and changes F while training"

# %% [markdown]
# ## Look at it on real features
# The maps ADL would use on the first test image, and what the next layer would receive in
# either case.

# %%
adl_view(test_features[:1], pictures[0], gamma=0.8, drop_rate=0.75)

# %% [markdown]
# The drop mask cuts out the peak of the attention, on and around the head: the part the
# classifier relies on most. In the training steps that draw $M$, the network must find the
# class in what is left, so it has a reason to learn the body's texture as well. (How much of
# the head survives around the hidden positions is exercise 3.)
#
# ## Explore: gamma
# A lower $\gamma$ hides more (everything above $\gamma$ times the peak). Change the image too.

# %% tags=["nbval-ignore-output"]
def draw(index: int, gamma: float):
    return adl_view(test_features[index : index + 1], pictures[index], gamma, drop_rate=0.75)


view = slider_view(draw, index=int_slider("image", 0, 0, len(pictures) - 1),
                   gamma=float_slider("gamma", 0.8, 0.3, 1.0, 0.05))
display(view)

# %%
check_redraw(draw, index=2, gamma=0.6);

# %% [markdown]
# ## Explore: drop rate
# `drop_rate` does not change either map; it changes how often each is used. Below: twelve
# consecutive training steps of the library's `ADL` on the same image's features, each drawn
# from one seeded generator, so moving the slider replays the *same* coin tosses against a
# different `drop_rate`. Each tile is what the next layer receives (its channel mean), titled by
# the map that was chosen.

# %%
def drop_rate_view(features: torch.Tensor, picture: np.ndarray, gamma: float, drop_rate: float,
                   steps: int = 12, seed: int = 0) -> Figure:
    """`steps` training-mode calls of the library's ADL on one feature map (1, C, h, w), drawn from
    one seeded generator: the channel mean of each output, titled by the map that was chosen."""
    adl = ADL(gamma=gamma, drop_rate=drop_rate, generator=torch.Generator().manual_seed(seed)).train()
    dropped = features * adl.masks(features)["drop_mask"]
    with torch.no_grad():
        outputs = [adl(features) for _ in range(steps)]
    chosen = ["M" if torch.equal(out, dropped) else "I" for out in outputs]
    peak = float(features.mean(dim=1).max())
    scale = picture.shape[0] // features.shape[-1]  # each feature-map cell becomes a scale x scale square
    tiles = [picture] + [heat_rgb(out.mean(dim=1)[0].numpy(), 0.0, peak).repeat(scale, 0).repeat(scale, 1)
                         for out in outputs]
    gap = np.ones((picture.shape[0], 6, 3))
    fig = Figure(figsize=(11.0, 1.3), dpi=80)
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.78))
    ax.imshow(np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1), interpolation="nearest")
    for k, name in enumerate(["input"] + [f"F*{c}" for c in chosen]):
        ax.text(k * (picture.shape[1] + 6) + picture.shape[1] / 2, -3, name, ha="center", va="bottom", fontsize=8)
    hide_axis(ax)
    fig.suptitle(f"drop_rate {drop_rate:.2f}: M chosen in {chosen.count('M')} of {steps} steps "
                 f"(expected {drop_rate * steps:.1f}); colour scale 0 to max A", fontsize=9)
    return fig


drop_rate_view(test_features[:1], pictures[0], gamma=0.8, drop_rate=0.75)

# %% tags=["nbval-ignore-output"]
def draw_steps(index: int, drop_rate: float):
    return drop_rate_view(test_features[index : index + 1], pictures[index], 0.8, drop_rate)


view = slider_view(draw_steps, index=int_slider("image", 0, 0, len(pictures) - 1),
                   drop_rate=float_slider("drop_rate", 0.75, 0.0, 1.0, 0.05))
display(view)

# %%
check_redraw(draw_steps, index=2, drop_rate=0.5);

# %% [markdown]
# Over many steps the share of $M$ approaches `drop_rate`. Counted over 2000 training-mode
# calls of the library's module for three values:

# %%
for drop_rate in (0.25, 0.5, 0.75):
    counter = ADL(gamma=0.8, drop_rate=drop_rate, generator=torch.Generator().manual_seed(1)).train()
    one_map = test_features[:1]
    dropped = one_map * counter.masks(one_map)["drop_mask"]
    with torch.no_grad():
        share = np.mean([torch.equal(counter(one_map), dropped) for _ in range(2000)])
    print(f"drop_rate {drop_rate:.2f}: M chosen in {share:.1%} of 2000 calls")
    assert abs(share - drop_rate) < 0.05, "the share of M should be close to drop_rate"

# %% [markdown]
# ## Train with ADL
# Same network, same data, same seed and schedule as chapter 02; ADL after blocks 4 and 5
# ($\gamma = 0.8$, `drop_rate` 0.75).

# %%
adl_run = BeetleRun.of("adl", seed=0)
adl_model = trained_model(adl_run, progress=False)
for epoch in (adl_model.train_result or {}).get("history", []):
    print(f"epoch {epoch['epoch']}: loss {epoch['loss']:.3f}, train accuracy {epoch['acc']:.1f}%")
print(adl_model.attention_modules())

# %% [markdown]
# ## Compare with CAM
# Rows: input, CAM, ADL. GT boxes red, boxes at $\tau = 0.2$ green.

# %%
cams = {"CAM": test_camset(cam_run), "ADL": test_camset(adl_run)}
comparison_figure(cams, n=8, tau=0.2)

# %% [markdown]
# The numbers on the test split at the paper's threshold $\tau = 0.2$ (percentages). "Body in
# box" is the median share of the body (the beetle minus its head) inside the predicted box,
# as in chapter 02. The last two columns hold GT-known Loc of the three seeds of `make bench`
# (docs/results.md): at $\tau = 0.2$, and with $\tau$ chosen on the validation split for each
# network (chapter 07).

# %%
rows = {name: evaluate(camset, tau=0.2) for name, camset in cams.items()}
coverage = {name: box_coverage(c.cams, c.masks, c.head_masks, tau=0.2)[1] for name, c in cams.items()}
lines = ["| method | Top-1 Clas | GT-known Loc | body in box | head share | GT-known Loc, make bench, "
         "seeds 0 / 1 / 2 | same, tau chosen on val |", "|---|---|---|---|---|---|---|"]
lines += [f"| {name} (seed {adl_run.seed}) | {m['top1_clas']:.1f} | {m['gt_known_loc@0.2']:.1f} | "
          f"{np.median(coverage[name]):.0%} | {m['head_share']:.1f} | {bench_text(name, 'gt_known_loc@0.2')} | "
          f"{bench_text(name, 'gt_known_loc@tau_val')} |" for name, m in rows.items()]
display(Markdown("\n".join(lines)))
display(coverage_histogram(coverage))
assert rows["ADL"]["gt_known_loc@0.2"] > rows["CAM"]["gt_known_loc@0.2"], "ADL should localize better at tau 0.2"
assert np.median(coverage["ADL"]) > np.median(coverage["CAM"]), "ADL's boxes should take in more of the body"

# %% [markdown]
# At $\tau = 0.2$ ADL localizes the whole beetle far more often than CAM, with the same
# classification accuracy: the erased head forced the network to use the body. Keep one
# caveat for chapter 07: $\tau = 0.2$ is one threshold. A CAM whose body is lukewarm can still
# give a good box at a *lower* threshold. The last column shows it: with $\tau$ chosen on
# validation, the gap between ADL and CAM shrinks on every seed of `make bench`, to a fraction
# of what it is at $\tau = 0.2$. Chapter 07 measures this properly.
#
# ## Summary
# * ADL hides $\{A \ge \gamma \max A\}$ with probability `drop_rate`, else multiplies by
#   $\sigma(A)$; it has no parameters and is the identity at test time. A dozen lines of
#   PyTorch reproduce the library's module draw for draw.
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
#
# ## Solutions
# **1. Which $\gamma$ hides too much?** First what each $\gamma$ hides, without training: the
# share of the 16×16 positions that $M$ zeroes on the test features above.

# %%
gammas = (0.5, 0.8, 0.95)
hidden = {gamma: 1 - adl_maps(test_features, gamma)[0].mean().item() for gamma in gammas}
print("share of positions M hides: " + ", ".join(f"gamma {g:.2f}: {h:.1%}" for g, h in hidden.items()))
assert hidden[0.5] > hidden[0.8] > hidden[0.95], "a lower gamma hides more"

# %% [markdown]
# Then the trained networks. This trains two networks, so it runs in classroom mode only
# (about a minute each on an idle laptop); `measure` also picks $\tau$ on the validation split
# (chapter 07). CAM's row is the reference: ADL that hides nothing.

# %%
def measured_table(results: dict[str, dict]) -> str:
    """A Markdown table of `measure` results, one row per run."""
    keys = {"top1_clas": "Top-1 Clas", "gt_known_loc@0.2": "GT-known Loc at tau 0.20",
            "tau_val": "tau chosen on val", "gt_known_loc@tau_val": "GT-known Loc there", "head_share": "head share"}
    lines = ["| run | " + " | ".join(keys.values()) + " |", "|---|" + "---|" * len(keys)]
    for name, m in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.2f}" if k == "tau_val" else f"{m[k]:.1f}" for k in keys) + " |")
    return "\n".join(lines)


if quick_mode():
    print("quick mode: skipped (it trains two networks). Run the book in classroom mode to see the result.")
else:
    gamma_runs = {"CAM (no ADL)": cam_run, "ADL gamma 0.50": BeetleRun.of("adl", seed=0, gamma=0.5),
                  "ADL gamma 0.80": adl_run, "ADL gamma 0.95": BeetleRun.of("adl", seed=0, gamma=0.95)}
    by_gamma = {name: measure(run, progress=False) for name, run in gamma_runs.items()}
    display(Markdown(measured_table(by_gamma)))
    lowest = min(by_gamma, key=lambda name: by_gamma[name]["top1_clas"])
    best = max(by_gamma, key=lambda name: by_gamma[name]["gt_known_loc@tau_val"])
    print(f"lowest Top-1 Clas: {lowest}; best GT-known Loc at its val tau: {best}")

# %% [markdown]
# Read the table against the hidden shares above. Hiding too much shows as lost
# classification: at every drop the network must find the class in what is left, and when too
# little is left it learns the class less well. Hiding too little leaves the
# network CAM-like: head share and GT-known Loc at $\tau = 0.2$ stay near CAM's row. The
# printed line names the extremes of your run.
#
# **2. Always drop.** With `drop_rate=1.0` the importance map is never used: every training step
# hides the peak. Classroom mode only (it trains a network).

# %%
if quick_mode():
    print("quick mode: skipped (it trains a network). Run the book in classroom mode to see the result.")
else:
    by_rate = {"ADL drop_rate 0.75": measure(adl_run, progress=False),
               "ADL drop_rate 1.00": measure(BeetleRun.of("adl", seed=0, drop_rate=1.0), progress=False)}
    display(Markdown(measured_table(by_rate)))

# %% [markdown]
# At test time ADL is switched off, so an always-dropping network meets, for the first time,
# features with their peak intact. How much that costs depends on how much of the class the
# hidden peak held. Exercise 3 shows that the positions around the peak still carry the head,
# so even a network that never sees its peak does not lose the head entirely. Compare Top-1
# Clas in the two rows.
#
# **3. Leaks.** Zeroing a position of a 16×16 map does not remove what its neighbours know.
# Each position of block 5 stands for a 4×4 square of the image but sees, through five 3×3
# convolutions and two poolings, a patch about half the image wide; so the positions next to
# the hidden peak still "see" the head. Test it on the trained CAM network: classify the test
# split from its block-5 features with the peak hidden position by position ($M$, as ADL does),
# and with the hidden region grown into 3×3 and 5×5 blocks (a max-pool of $1 - M$: the idea of
# chapter 05).

# %%
with torch.no_grad():
    test_split = [(cam_model.forward_features(images), targets["label"])
                  for images, targets in beetle_loader(cam_run, "test")]


def accuracy_with_hidden(gamma: float | None, grow: int = 1) -> float:
    """Top-1 accuracy (%) on the test split when the classifier sees F * M, with the hidden region
    of M (A >= gamma * max A) grown into `grow` x `grow` blocks (grow = 1: ADL's own M; gamma None: F itself)."""
    correct = total = 0
    with torch.no_grad():
        for features, labels in test_split:
            if gamma is not None:
                hidden = nnf.max_pool2d(1 - adl_maps(features, gamma)[0], grow, stride=1, padding=grow // 2)
                features = features * (1 - hidden)
            correct += (cam_model.classify(features).argmax(1) == labels).sum().item()
            total += len(labels)
    return 100.0 * correct / total


leak = {"nothing hidden": accuracy_with_hidden(gamma=None),
        "M, pixels (ADL)": accuracy_with_hidden(gamma=0.8),
        "M grown to 3x3 blocks": accuracy_with_hidden(gamma=0.8, grow=3),
        "M grown to 5x5 blocks": accuracy_with_hidden(gamma=0.8, grow=5)}
for name, value in leak.items():
    print(f"{name:>22}: accuracy {value:5.1f}%")
assert leak["M, pixels (ADL)"] > leak["nothing hidden"] - 5, "hiding the peak pixels alone leaves the class readable"
assert leak["M grown to 5x5 blocks"] < leak["M, pixels (ADL)"] - 20, "hiding whole blocks around the peak removes it"

# %% [markdown]
# With the peak hidden position by position, the classifier reads the class as well as with
# nothing hidden: the positions around the hidden ones still carry the head. Only when the
# hidden region grows into blocks does accuracy fall, the more the larger the blocks. During ADL
# training the same happens one layer earlier: after the mask on block 4, block 5's 3×3
# convolutions read the head from the surviving neighbours. Chapter 05 (SAGD) drops blocks for
# this reason.
