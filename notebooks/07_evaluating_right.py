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
# # 7. Evaluating right: a threshold is not a metric
#
# Every number so far turned a CAM into a box the same way: keep the pixels above `tau` times the
# map's peak, box the largest region, and count the image as localized when that box overlaps the
# ground truth with IoU >= 0.5. The paper under study (Yin et al.), like most WSOL papers of its
# time, fixes `tau = 0.2` and reports that *GT-known Loc*.
#
# Here is the catch. A CAM is a *score map*, and `tau` decides how much of it becomes the box. A
# method whose maps are flatter gets bigger boxes at the same `tau`, without knowing any better
# where the object is. Choe et al. ("Evaluating Weakly Supervised Object Localization Methods
# Right", CVPR 2020) showed that, once `tau` is chosen fairly, much of a decade of WSOL progress
# shrinks. This chapter repeats their check on our beetles, for CAM, ADL, SAGD and DGDM.

# %%
from IPython.display import display

from dgdm_lib.config import env_report, mode_name
from dgdm_lib.experiments import (
    BeetleRun,
    format_table,
    measure,
    summarize,
    test_camset,
)
from dgdm_lib.views.comparison import (
    method_curves,
    pr_curves_view,
    region_means,
    region_means_view,
    shares_view,
    threshold_view,
)
from dgdm_lib.widgets import check_redraw, float_slider, int_slider, slider_view

print(env_report())

# %% [markdown]
# ## The idea in four formulas
#
# For N test images with normalised CAMs $M_n$ and ground-truth boxes $B_n$, let
# $\hat B_n(\tau)$ be the box of the largest region of $\{M_n > \tau \max M_n\}$. Then
#
# $$\text{GT-known Loc}(\tau) = \frac{1}{N}\sum_n \mathbb 1\big[\text{IoU}(\hat B_n(\tau), B_n) \ge 0.5\big]$$
#
# is one point on a curve. Choe et al. propose to report instead
#
# * **MaxBoxAcc** $= \max_\tau \text{GT-known Loc}(\tau)$: the top of the curve (equivalently, the
#   accuracy at the best `tau`, which a held-out split with boxes lets you choose);
# * **MaxBoxAccV2** $= \frac13\sum_{\delta \in \{0.3, 0.5, 0.7\}} \max_\tau \text{BoxAcc}_\delta(\tau)$,
#   with every region's box allowed, so that neither one IoU threshold nor one region rules;
# * **PxAP**, no boxes at all: the area under the precision-recall curve of the CAM's *pixel
#   scores* against the object mask, $\text{PxAP} = \sum_k P(\tau_k)\,(R(\tau_k) - R(\tau_{k-1}))$.
#
# The book's `evaluate_val_test` does both protocols at once: it reports test numbers at the fixed
# `tau = 0.2` and at the `tau` chosen on the validation split (300 beetles with boxes, never used
# for training): the "train-fullsup" protocol of Choe et al.

# %% [markdown]
# ## The runs
#
# Four methods, trained with the same recipe and seed 0 in earlier chapters (cached, so nothing is
# retrained here if you ran chapters 02-06): CAM, ADL, SAGD stage 1 (the paper's best single
# stage) and the full DGDM (CAGD + SAGD stages 1 and 2). `measure(run)` evaluates each on
# validation and test; `test_camset(run)` keeps the test CAMs for the figures.

# %%
RUNS = {
    "CAM": BeetleRun.of("cam"),
    "ADL": BeetleRun.of("adl"),
    "SAGD": BeetleRun.of("sagd"),
    "DGDM": BeetleRun.of("dgdm"),
}
results = {name: measure(run) for name, run in RUNS.items()}
camsets = {name: test_camset(run) for name, run in RUNS.items()}
curves = method_curves(camsets)
chosen = {name: r["tau_val"] for name, r in results.items()}
print(f"mode {mode_name()}, seed {RUNS['CAM'].seed}, {len(camsets['CAM'])} test images; tau chosen on val:", chosen)

# %% [markdown]
# ## One table, two protocols
#
# Left, the paper's protocol: GT-known Loc at `tau = 0.2`. Then the same accuracy at the `tau`
# chosen on validation, and the threshold-free measures. Read each column as its own ranking.

# %%
KEYS = ["gt_known_loc@0.2", "gt_known_loc@tau_val", "maxboxacc", "maxboxacc_v2", "pxap", "top1_clas"]
rows = [{**r, "label": name} for name, r in results.items()]
print(format_table(summarize(rows, KEYS), KEYS))
print("tau chosen on val:", ", ".join(f"{name} {tau:.2f}" for name, tau in chosen.items()))

# %% [markdown]
# At `tau = 0.2` SAGD beats CAM by a wide margin. With `tau` chosen on validation, the margin
# shrinks (in our runs it lost between a third and three quarters of its size): CAM's best threshold is well *below* 0.2, because its maps are peaky (a high,
# narrow peak on the head and a low plateau on the body), so 0.2 of its peak cuts the body away.
# Part of what the fixed threshold rewarded was the *shape* of the score distribution, not better
# localization. The next cell asserts this, as measured on seed 0.

# %%
gain_at_02 = results["SAGD"]["gt_known_loc@0.2"] - results["CAM"]["gt_known_loc@0.2"]
gain_at_val = results["SAGD"]["gt_known_loc@tau_val"] - results["CAM"]["gt_known_loc@tau_val"]
print(f"SAGD minus CAM: {gain_at_02:+.1f} points at tau 0.2, {gain_at_val:+.1f} at the tau chosen on val")
cam_gain = results["CAM"]["gt_known_loc@tau_val"] - results["CAM"]["gt_known_loc@0.2"]
sagd_gain = results["SAGD"]["gt_known_loc@tau_val"] - results["SAGD"]["gt_known_loc@0.2"]
print(f"choosing tau on val gains CAM {cam_gain:+.1f} points, SAGD {sagd_gain:+.1f}")
assert gain_at_02 > 20, "at the paper's fixed tau, SAGD localizes far better than CAM"
assert cam_gain > sagd_gain and gain_at_val < gain_at_02, "a fair tau helps CAM more, and the gap shrinks"
assert chosen["CAM"] < 0.2, "CAM's best threshold is below the paper's 0.2"

# %% [markdown]
# ADL is the clearest case: most of its lead over CAM at `tau = 0.2` is gone in MaxBoxAccV2
# (on seeds 0, 1 and 2 a lead of 23 to 24 points at `tau = 0.2` became 1.4 to 2.9 points).

# %%
adl_at_02 = results["ADL"]["gt_known_loc@0.2"] - results["CAM"]["gt_known_loc@0.2"]
adl_v2 = results["ADL"]["maxboxacc_v2"] - results["CAM"]["maxboxacc_v2"]
print(f"ADL minus CAM: {adl_at_02:+.1f} points of GT-known Loc at tau 0.2, {adl_v2:+.1f} points of MaxBoxAccV2")
assert adl_at_02 > 0, "ADL leads CAM at tau 0.2 (chapter 03)"
assert adl_v2 < adl_at_02 / 2, "ADL keeps less than half of its lead in MaxBoxAccV2"

# %% [markdown]
# ## Threshold sensitivity: the whole curve
#
# The table reads each curve at two points. Here are the curves: GT-known Loc as a function of
# `tau` on the test split, one per method. The dot is where the slider's `tau` reads them; the star
# is the `tau` chosen on validation. MaxBoxAcc is the top of each curve. On the right, the boxes
# behind the number for a few test images (GT red, predicted green).
#
# Move `tau` from 0.5 down to 0.05 and watch CAM's box grow from the head to the whole beetle
# and then into the background. Each curve has its own peak, at its own `tau`.

# %% tags=["nbval-ignore-output"]
def draw_threshold(tau: float, start: int):
    return threshold_view(curves, camsets, tau=tau, chosen=chosen, start=start)


view = slider_view(draw_threshold, tau=float_slider("tau", 0.2, 0.0, 0.95, 0.01),
                   start=int_slider("first image", 0, 0, 12))
display(view)

# %%
check_redraw(draw_threshold, tau=0.3, start=4);

# %% [markdown]
# How wide is the range of good thresholds? Below, for each method, the `tau`s at which its
# GT-known Loc stays within 5 points of its own maximum. A narrow range means the reported number
# depends on a threshold the method did not learn; the protocol of Choe et al. sidesteps this by
# reading the maximum (or the threshold chosen on validation). In our runs CAM, whose map is a
# sharp peak on the head, stayed near its best over only 3 to 5 of the 100 `tau`s (seeds 0, 1, 2);
# SAGD stage 1 over 5 to 9. The cell asserts that CAM's range is the narrower of the two. ADL and DGDM fell on
# either side of that from seed to seed, so they are printed, not asserted.

# %%
for name, curve in curves.items():
    good = curve.taus[curve.gt_known >= curve.gt_known.max() - 5]
    print(f"{name:5s} max {curve.gt_known.max():5.1f}% at tau {curve.best_tau():.2f}; "
          f"within 5 points for tau in [{good.min():.2f}, {good.max():.2f}] ({len(good)} of {len(curve.taus)} taus)")
widths = {name: int((c.gt_known >= c.gt_known.max() - 5).sum()) for name, c in curves.items()}
assert curves["CAM"].best_tau() < min(0.2, curves["SAGD"].best_tau()), "CAM peaks at the lowest tau"
assert widths["CAM"] < widths["SAGD"], "erasing (SAGD) widens the range of good thresholds"

# %% [markdown]
# ## Pixels, not boxes: PxAP
#
# Boxes hide *how* a map is wrong. PxAP scores every pixel: at a threshold, precision is the share
# of pixels above it that lie on the beetle, recall the share of the beetle's pixels above it. A
# map that spills into the background loses precision at every recall. The dots mark the pixels
# above `tau = 0.2`: the region the paper's box is drawn around.

# %%
pr_curves_view(curves, tau=0.2)

# %% [markdown]
# Erasing widened the boxes a lot but improved the pixel ranking much less, if at all: SAGD's
# gain in PxAP is a fraction of its gain in GT-known Loc at 0.2.

# %%
pxap_gain = results["SAGD"]["pxap"] - results["CAM"]["pxap"]
print(f"SAGD minus CAM: {gain_at_02:+.1f} GT-known Loc at tau 0.2, {pxap_gain:+.1f} PxAP")
assert pxap_gain < gain_at_02 / 3

# %% [markdown]
# ## What erasing really changes
#
# The beetles come with a head mask, so we can ask where each map puts its mass. First the share
# of the total CAM mass on the head, on the rest of the body and on the background (the background
# is about 85% of the image, so even a low plateau there holds much of the mass):

# %%
shares_view(results)

# %% [markdown]
# Mass mixes height and area. The mean CAM *value* on each region separates the two: how high the
# map is, on average, on a head pixel, a body pixel and a background pixel.

# %%
means = {name: region_means(cs) for name, cs in camsets.items()}
for name, m in means.items():
    print(f"{name:5s} head {m['head']:.2f}  body {m['body']:.2f}  background {m['background']:.2f}  "
          f"body/head {m['body'] / m['head']:.2f}")
region_means_view(means)

# %% [markdown]
# Erasing during training raised the map on the body relative to the head, which is the point of
# it, but it raised the background too. Relative to its peak the map got flatter everywhere. At
# a fixed `tau` a flatter map gives a bigger box, which helps on beetles (big objects) whatever
# the reason; PxAP sees the background rise as well and is not impressed.

# %%
assert means["SAGD"]["body"] / means["SAGD"]["head"] > means["CAM"]["body"] / means["CAM"]["head"]
assert means["SAGD"]["background"] > means["CAM"]["background"]

# %% [markdown]
# ## Where DGDM does not win, and where a fixed tau hides it
#
# The two protocols do not just shift the numbers: they squeeze them together, and they can
# reorder the methods. Below, the ranking by each measure, and the spread between the best and
# the worst method.

# %%
def ranking(key: str) -> list[str]:
    return sorted(results, key=lambda name: -results[name][key])


for key in ("gt_known_loc@0.2", "gt_known_loc@tau_val", "maxboxacc_v2", "pxap"):
    print(f"{key:21s}", " > ".join(f"{name} {results[name][key]:.1f}" for name in ranking(key)))
def spread(key: str) -> float:
    return max(r[key] for r in results.values()) - min(r[key] for r in results.values())


print(f"spread: {spread('gt_known_loc@0.2'):.1f} points at tau 0.2, {spread('maxboxacc_v2'):.1f} in MaxBoxAccV2")
assert spread("maxboxacc_v2") < spread("gt_known_loc@0.2") / 2, "fair measures put the methods much closer"
assert results["DGDM"]["gt_known_loc@0.2"] < results["SAGD"]["gt_known_loc@0.2"], "at tau 0.2 DGDM is not the best"

# %% [markdown]
# At the paper's own threshold, the full DGDM is not the best of these four: SAGD stage 1 alone is
# ahead of it. But a fixed threshold can *under*-rate a method as easily as over-rate one. DGDM's
# maps are flat (at 0.2 its boxes spill into the background: try the slider above). On each of our
# seeds 0, 1 and 2 its validation-chosen `tau` was 0.30-0.39, and moving there gained it 27, 48 and
# 44 points (300 test images). That made it the best of the four by MaxBoxAccV2 on all three seeds
# (60.7, 70.6 and 64.2 against SAGD stage 1's 56.7, 62.0 and 59.0), although on seeds 1 and 2 it
# also classified worse (Top-1 Clas 89% and 82%, the others 100%). So the verdict flips with the
# protocol: last but one at the paper's threshold, first on the fair measure, for one small network
# on one dataset, at a cost in classification. What holds on every seed is that "DGDM needs a
# higher threshold", and the cell below asserts that; whether it is the best by MaxBoxAccV2 is
# printed for your run, and the three-seed benchmark (`docs/results.md`) gives the intervals.

# %%
print(f"DGDM: tau chosen on val {chosen['DGDM']:.2f}; gain from tau 0.2 to that tau "
      f"{results['DGDM']['gt_known_loc@tau_val'] - results['DGDM']['gt_known_loc@0.2']:+.1f} points "
      f"(CAM {results['CAM']['gt_known_loc@tau_val'] - results['CAM']['gt_known_loc@0.2']:+.1f}, "
      f"SAGD {results['SAGD']['gt_known_loc@tau_val'] - results['SAGD']['gt_known_loc@0.2']:+.1f}); "
      f"Top-1 Clas {results['DGDM']['top1_clas']:.1f}")
assert chosen["DGDM"] > 0.25, "DGDM's maps are flat: its best threshold is well above 0.2"
print(f"{mode_name()} mode: DGDM is {'the best' if ranking('maxboxacc_v2')[0] == 'DGDM' else 'not the best'} "
      "of the four by MaxBoxAccV2")

# %% [markdown]
# ## Summary
#
# * GT-known Loc at a fixed `tau` is one point of a curve; methods differ in *where* their curves
#   peak, so a fixed `tau` ranks them partly by the shape of their score maps.
# * Choose `tau` on a held-out split with boxes, or report MaxBoxAcc / MaxBoxAccV2 (box) and PxAP
#   (pixel). On beetles, CAM closes much of its gap to SAGD and ADL that way, and the methods are
#   ranked differently than at `tau = 0.2`; a fixed threshold can under-rate a method too (DGDM).
# * Erasing makes maps flatter: higher on the body, but higher on the background too. Boxes grow;
#   pixel precision does not follow.
# * All numbers here are one seed on one synthetic dataset; the benchmark (`make bench`,
#   `docs/results.md`) repeats them over seeds.
#
# ## Exercises
#
# 1. Which `tau` maximises ADL's curve, and how far is it from the one chosen on validation?
#    *Hint:* `curves["ADL"].best_tau()` and `chosen["ADL"]`.
# 2. Compute MaxBoxAcc at IoU 0.7 for each method. Does the ranking change again?
#    *Hint:* `BoxAccumulator(...).compute()` in `dgdm_lib.metrics`, or `results[name]["maxboxacc_v2@0.7"]`.
# 3. Train CAM at pattern contrast 0 (`BeetleRun.of("cam", pattern_contrast=0.0)`): the body then
#    carries no class cue at all. What happens to its body/head ratio and to its best `tau`?
#    *Hint:* chapter 01.
# 4. Choose `tau` on the *test* split instead of validation. By how many points does that flatter
#    each method? *Hint:* `results[name]["gt_known_loc@best"]`.
