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
# Right", CVPR 2020) re-evaluated the methods published between CAM (2016) and their study, with
# the threshold and the other hyperparameters chosen fairly on a held-out split, and found that
# most of the reported progress over CAM shrank or disappeared. This chapter repeats their check on
# our beetles, for CAM, ADL and the three rows of the paper's ablation (chapter 06): SAGD stage 1,
# stages 1+2, and the full DGDM.

# %%
from IPython.display import Markdown, display

from dgdm_lib.config import env_report, mode_name, quick_mode
from dgdm_lib.experiments import BeetleRun, bench_claims, bench_rows_by_method, bench_table, measure, test_camset
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
# * **MaxBoxAcc** $= \max_\tau \text{GT-known Loc}(\tau)$ on the test split: the top of the test
#   curve, a score of the maps that no longer depends on a threshold;
# * **MaxBoxAccV2** $= \frac13\sum_{\delta \in \{0.3, 0.5, 0.7\}} \max_\tau \text{BoxAcc}_\delta(\tau)$,
#   with every region's box allowed, so that neither one IoU threshold nor one region rules;
# * **PxAP**, no boxes at all: the area under the precision-recall curve of the CAM's *pixel
#   scores* against the object mask, $\text{PxAP} = \sum_k P(\tau_k)\,(R(\tau_k) - R(\tau_{k-1}))$.
#
# A method that must output boxes still needs *one* `tau`. The fair way to get it is to treat `tau`
# as a hyperparameter: choose it on a held-out split with boxes (the "train-fullsup" protocol of
# Choe et al.), then apply it to test. That accuracy at the **validation tau** is *not* MaxBoxAcc:
# MaxBoxAcc picks the best `tau` by looking at the test boxes themselves, so it is an upper bound
# of the accuracy at any single `tau`, the validation one included. The book's
# `evaluate_val_test` reports the test numbers at the fixed `tau = 0.2`, at the `tau` chosen on the
# validation split (300 beetles with boxes, never used for training), and the threshold-free
# measures.

# %% [markdown]
# ## The runs
#
# Five methods, trained with the same recipe and seed in earlier chapters (cached, so nothing is
# retrained here if you ran chapters 02-06): CAM, ADL, SAGD stage 1, stages 1+2 and the full DGDM
# (CAGD + SAGD stages 1 and 2). `measure(run)` evaluates each on validation and test;
# `test_camset(run)` keeps the test CAMs for the figures.

# %%
RUNS = {
    "CAM": BeetleRun.of("cam"),
    "ADL": BeetleRun.of("adl"),
    "stage 1": BeetleRun.of("sagd"),
    "stage 1+2": BeetleRun.of("sagd12"),
    "DGDM": BeetleRun.of("dgdm"),
}
results = {name: measure(run) for name, run in RUNS.items()}
camsets = {name: test_camset(run) for name, run in RUNS.items()}
curves = method_curves(camsets)
chosen = {name: r["tau_val"] for name, r in results.items()}
print(f"mode {mode_name()}, seed {RUNS['CAM'].seed}, {len(camsets['CAM'])} test images; tau chosen on val:",
      ", ".join(f"{name} {tau:.2f}" for name, tau in chosen.items()))

# %% [markdown]
# ## One table, two protocols
#
# First the paper's protocol: GT-known Loc at `tau = 0.2`. Then the same accuracy at the `tau`
# chosen on validation, that `tau`, and the threshold-free measures. Read each column as its own
# ranking. The benchmark's three seeds of the same rows (`make bench`, 500 test images) are in
# `docs/results.md`; this chapter prints them where a comparison helps.

# %%
COLUMNS = {"gt_known_loc@0.2": "Loc, tau 0.2", "gt_known_loc@tau_val": "Loc, val tau", "tau_val": "val tau",
           "maxboxacc": "MaxBoxAcc", "best_tau": "test-best tau", "maxboxacc_v2": "MaxBoxAccV2", "pxap": "PxAP",
           "top1_clas": "Top-1 Clas"}


def markdown_table(results, columns=COLUMNS):
    """One row per method, one column per metric; tau with 2 decimals, the rest with 1."""
    lines = ["| method | " + " | ".join(columns.values()) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, r in results.items():
        cells = [f"{r[k]:.2f}" if k in ("tau_val", "best_tau") else f"{r[k]:.1f}" for k in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return Markdown("\n".join(lines))


print("GT-known Loc (Loc), MaxBoxAcc, MaxBoxAccV2, PxAP and Top-1 Clas in %, on the test split")
display(markdown_table(results))

# %% [markdown]
# The two columns that look alike are not the same number. MaxBoxAcc reads the test curve at its
# top, at the `tau` best *for the test boxes*; the accuracy at the validation `tau` reads the same
# curve where the validation split said to. The first can only be larger, or equal when both
# splits agree on the best `tau`:

# %%
for name, r in results.items():
    print(f"{name:9s} MaxBoxAcc - Loc at the val tau = {r['maxboxacc'] - r['gt_known_loc@tau_val']:4.1f} points "
          f"(test-best tau {r['best_tau']:.2f}, val tau {r['tau_val']:.2f})")
    assert r["maxboxacc"] >= r["gt_known_loc@tau_val"] - 1e-9, "MaxBoxAcc is the top of the curve the val tau reads"

# %% [markdown]
# At `tau = 0.2` SAGD stage 1 beats CAM by a wide margin. With `tau` chosen on validation the
# margin shrinks: CAM's best threshold is well *below* 0.2 (the table prints its val `tau`),
# because its maps are peaky: highest on the head and lower over the body, so a box at 0.2 of the
# peak is drawn tight around the head. Lower thresholds take in more of the body.
# Part of what the fixed threshold rewarded was the *shape* of the score distribution, not better
# localization. The cell prints how much of the margin survives, in your run and on the
# benchmark's seeds, and asserts the direction, which held on each of them.

# %%
def bench_values(method, key):
    """The benchmark's per-seed values (seeds 0, 1, 2) of one metric, or [] if missing."""
    row = BENCH.get(method)
    return row[key]["values"] if row and key in row else []


BENCH = bench_rows_by_method()
if not BENCH:
    print("no benchmark numbers in docs/results.json; only your run is shown")
METHOD = {name: run.method for name, run in RUNS.items()}
gain_at_02 = results["stage 1"]["gt_known_loc@0.2"] - results["CAM"]["gt_known_loc@0.2"]
gain_at_val = results["stage 1"]["gt_known_loc@tau_val"] - results["CAM"]["gt_known_loc@tau_val"]
print(f"stage 1 minus CAM, your run: {gain_at_02:+.1f} points at tau 0.2, {gain_at_val:+.1f} at the tau chosen on val "
      f"({100 * gain_at_val / gain_at_02:.0f}% of the margin kept)")
bench = {key: [s - c for s, c in zip(bench_values("sagd", key), bench_values("cam", key))]
         for key in ("gt_known_loc@0.2", "gt_known_loc@tau_val")}
for seed, (fixed, val) in enumerate(zip(bench["gt_known_loc@0.2"], bench["gt_known_loc@tau_val"])):
    print(f"  benchmark seed {seed}: {fixed:+.1f} at tau 0.2, {val:+.1f} at the val tau "
          f"({100 * val / fixed:.0f}% kept)")
cam_gain = results["CAM"]["gt_known_loc@tau_val"] - results["CAM"]["gt_known_loc@0.2"]
sagd_gain = results["stage 1"]["gt_known_loc@tau_val"] - results["stage 1"]["gt_known_loc@0.2"]
print(f"choosing tau on val gains CAM {cam_gain:+.1f} points, stage 1 {sagd_gain:+.1f}")
assert gain_at_02 > 20, "at the paper's fixed tau, SAGD stage 1 localizes far better than CAM"
assert cam_gain > sagd_gain and gain_at_val < gain_at_02, "a fair tau helps CAM more, and the gap shrinks"
assert chosen["CAM"] < 0.2, "CAM's best threshold is below the paper's 0.2"

# %% [markdown]
# ADL is the clearest case: most of its lead over CAM at `tau = 0.2` is gone in MaxBoxAccV2, in
# your run and on each of the benchmark's seeds.

# %%
adl_at_02 = results["ADL"]["gt_known_loc@0.2"] - results["CAM"]["gt_known_loc@0.2"]
adl_v2 = results["ADL"]["maxboxacc_v2"] - results["CAM"]["maxboxacc_v2"]
print(f"ADL minus CAM, your run: {adl_at_02:+.1f} points of GT-known Loc at tau 0.2, {adl_v2:+.1f} of MaxBoxAccV2")
for seed, values in enumerate(zip(bench_values("adl", "gt_known_loc@0.2"), bench_values("cam", "gt_known_loc@0.2"),
                                  bench_values("adl", "maxboxacc_v2"), bench_values("cam", "maxboxacc_v2"))):
    print(f"  benchmark seed {seed}: {values[0] - values[1]:+.1f} at tau 0.2, "
          f"{values[2] - values[3]:+.1f} of MaxBoxAccV2")
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
# reading the maximum (or the threshold chosen on validation). The widths move from seed to seed,
# so they are printed; the cell asserts only that CAM's curve peaks below 0.2 and below stage 1's
# peak, as it did on each of the benchmark's seeds.

# %%
for name, curve in curves.items():
    good = curve.taus[curve.gt_known >= curve.gt_known.max() - 5]
    print(f"{name:9s} max {curve.gt_known.max():5.1f}% at tau {curve.best_tau():.2f}; "
          f"within 5 points for tau in [{good.min():.2f}, {good.max():.2f}] ({len(good)} of {len(curve.taus)} taus)")
assert curves["CAM"].best_tau() < min(0.2, curves["stage 1"].best_tau()), "CAM peaks at the lowest tau"

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
# Stage 1 widened the boxes a lot but did not improve the pixel ranking: on each of the
# benchmark's seeds its PxAP was *below* CAM's. Stages 1+2, which also erase the background during
# training, were above CAM on each seed.

# %%
pxap_gain = results["stage 1"]["pxap"] - results["CAM"]["pxap"]
print(f"stage 1 minus CAM, your run: {gain_at_02:+.1f} GT-known Loc at tau 0.2, {pxap_gain:+.1f} PxAP")
print("PxAP minus CAM's, your run:", ", ".join(f"{name} {r['pxap'] - results['CAM']['pxap']:+.1f}"
                                               for name, r in results.items() if name != "CAM"))
for name in ("stage 1", "stage 1+2"):
    diffs = [m - c for m, c in zip(bench_values(METHOD[name], "pxap"), bench_values("cam", "pxap"))]
    print(f"  benchmark, {name} minus CAM per seed:", " / ".join(f"{d:+.1f}" for d in diffs))
assert pxap_gain < 0, "erasing the peak (stage 1) does not improve the pixel ranking"

# %% [markdown]
# ## What erasing really changes
#
# The beetles come with a head mask, so we can ask where each map puts its mass. First the share
# of the total CAM mass on the head, on the rest of the body and on the background (most of the
# image is background, so even a low plateau there holds much of the mass):

# %%
shares_view(results)

# %% [markdown]
# Mass mixes height and area. The mean CAM *value* on each region separates the two: how high the
# map is, on average, on a head pixel, a body pixel and a background pixel.

# %%
means = {name: region_means(cs) for name, cs in camsets.items()}
for name, m in means.items():
    print(f"{name:9s} head {m['head']:.2f}  body {m['body']:.2f}  background {m['background']:.2f}  "
          f"body/head mean value {m['body'] / m['head']:.2f}")
region_means_view(means)

# %% [markdown]
# Erasing the peak during training (stage 1) took mass off the head, which is the point of it:
# relative to the head, the body gets more of the map (the body/head *mass* ratio printed below
# rises; the ratio above compares mean values per pixel).
# But as a share of the whole map, what the head lost went to the background: on each of the
# benchmark's seeds stage 1 put a smaller share of its mass on the head and a larger one on the
# background than CAM. At a fixed `tau` a flatter map gives a bigger box, which helps on beetles (big objects)
# whatever the reason; PxAP sees the background rise as well and is not impressed.

# %%
def body_per_head(r):
    return r["body_share"] / r["head_share"]


print(f"body/head mass: CAM {body_per_head(results['CAM']):.2f}, stage 1 {body_per_head(results['stage 1']):.2f}; "
      f"background share: CAM {results['CAM']['background_share']:.1f}%, "
      f"stage 1 {results['stage 1']['background_share']:.1f}%")
assert body_per_head(results["stage 1"]) > body_per_head(results["CAM"]), "stage 1 moves mass from head to body"
assert results["stage 1"]["background_share"] > results["CAM"]["background_share"], "and to the background"

# %% [markdown]
# ## The verdict, measure by measure
#
# The two protocols do not just shift the numbers: they squeeze them together, and they can
# reorder the methods. Below, the ranking by each measure in your run, the spread between the best
# and the worst method, and which row came first on each of the benchmark's seeds.

# %%
RANKED = {"gt_known_loc@0.2": "Loc, tau 0.2", "gt_known_loc@tau_val": "Loc, val tau", "maxboxacc_v2": "MaxBoxAccV2",
          "pxap": "PxAP"}


def ranking(key: str) -> list[str]:
    return sorted(results, key=lambda name: -results[name][key])


def spread(key: str) -> float:
    return max(r[key] for r in results.values()) - min(r[key] for r in results.values())


def bench_first(key: str) -> str:
    per_name = {name: bench_values(METHOD[name], key) for name in RUNS}
    if not all(per_name.values()):
        return "–"
    seeds = range(len(per_name["CAM"]))
    return " / ".join(max(per_name, key=lambda name: per_name[name][s]) for s in seeds)


def ranked_line(key: str, names: list[str]) -> str:
    """``names`` (best first) with their values at ``key``, joined by ">" or by "=" where the printed values tie."""
    shown = [f"{results[name][key]:.1f}" for name in names]
    line = f"{names[0]} {shown[0]}"
    for k in range(1, len(names)):
        line += (" = " if shown[k] == shown[k - 1] else " > ") + f"{names[k]} {shown[k]}"
    return line


for key, label in RANKED.items():
    print(f"{label:13s}", ranked_line(key, ranking(key)))
lines = ["| measure | first in your run | spread, your run | first on benchmark seeds 0 / 1 / 2 |", "|---|---|---|---|"]
lines += [f"| {label} | {ranking(key)[0]} | {spread(key):.1f} | {bench_first(key)} |" for key, label in RANKED.items()]
display(Markdown("\n".join(lines)))
assert spread("maxboxacc_v2") < 0.6 * spread("gt_known_loc@0.2"), "fair measures put the methods much closer"
assert results["DGDM"]["gt_known_loc@0.2"] < results["stage 1+2"]["gt_known_loc@0.2"] - 20, \
    "at tau 0.2 the full DGDM is far below stages 1+2"
assert chosen["DGDM"] > 0.2, "DGDM's maps are flat: its best threshold is above the paper's 0.2"

# %% [markdown]
# What the benchmark's three seeds say, and what your run can check above:
#
# * **Stages 1+2 are the first row.** On every benchmark seed they came first at `tau = 0.2`, at
#   the validation `tau` and in MaxBoxAccV2 (the last column above prints the first row per seed,
#   PxAP included). Whether three seeds resolve their gain over stage 1 is printed below.
# * **The full DGDM is not the first row by any box measure.** At the paper's own threshold it is
#   far below stages 1+2, and below stage 1 alone, on each benchmark seed. A fixed threshold
#   under-rates it, though: its maps are flat, its best `tau` lies well above 0.2 (that of stages
#   1+2 near or above it), and with the threshold chosen on validation, and in MaxBoxAccV2, it was
#   ahead of CAM and ADL on each benchmark seed, and still behind stages 1+2.
# * **Classification.** The cell prints each row's Top-1 Clas on the benchmark's seeds beside the
#   verdict on whether DGDM keeps CAM's (the table above has your run's).
#
# The next cell is the benchmark's verdict, read from `docs/results.json` (the claims
# `docs/results.md` states in plain words), for each claim between the chapter's five rows: the
# paper's measure beside the two fair ones, each cell with your run's difference, the benchmark's
# difference on each seed, and its mean with the 95% interval. **holds**: the interval is above
# zero (for Top-1 Clas: above one point below CAM); **reversed**: below; **not shown**: three
# seeds cannot tell.

# %%
claims = bench_claims()
if not claims:
    print("no benchmark claims in docs/results.json")
ROW_NAME = {BENCH[METHOD[name]]["row"]: name for name in RUNS if METHOD[name] in BENCH}
MEASURED = {"gt_known_loc@0.2": "Loc, tau 0.2 (paper)", "gt_known_loc@tau_val": "Loc, val tau",
            "maxboxacc_v2": "MaxBoxAccV2"}


def verdict_cell(claim, key):
    """Your run's difference, the benchmark's per seed, its mean [95% CI] and verdict, for one claim."""
    m = claim["metrics"].get(key)
    if m is None:
        return "–"
    better, baseline = ROW_NAME[claim["better"]], ROW_NAME[claim["baseline"]]
    seeds = " / ".join(f"{b - a:+.1f}" for b, a in zip(bench_values(METHOD[better], key),
                                                        bench_values(METHOD[baseline], key)))
    return (f"yours {results[better][key] - results[baseline][key]:+.1f}; seeds {seeds}; "
            f"{m['diff']:+.1f} [{m['ci95'][0]:+.1f}, {m['ci95'][1]:+.1f}] **{m['verdict']}**")


lines = ["| claim | " + " | ".join(MEASURED.values()) + " |", "|---" * (len(MEASURED) + 1) + "|"]
for claim in (c for c in claims if c.get("better") in ROW_NAME and c.get("baseline") in ROW_NAME):
    if "top1_clas" in claim["metrics"]:
        cells = [f"Top-1 Clas: {verdict_cell(claim, 'top1_clas')}"] + [""] * (len(MEASURED) - 1)
    else:
        cells = [verdict_cell(claim, key) for key in MEASURED]
    lines.append(f"| {claim['claim']} | " + " | ".join(cells) + " |")
if len(lines) > 2:
    display(Markdown("\n".join(lines)))
    print("benchmark Top-1 Clas, seeds 0 / 1 / 2:", "; ".join(
        f"{name} " + " / ".join(f"{v:.1f}" for v in bench_values(METHOD[name], "top1_clas")) for name in RUNS))
for other in ("CAM", "ADL", "stage 1", "stage 1+2"):
    print(f"your run, DGDM minus {other}:", ", ".join(f"{label} {results['DGDM'][k] - results[other][k]:+.1f}"
                                                      for k, label in RANKED.items() if k != "pxap"))

# %% [markdown]
# So the verdict moves with the protocol: read each claim across its three columns. The paper's
# last ablation row (adding CAGD to stages 1+2) lowered every box measure on each benchmark seed:
# *reversed* at the paper's `tau = 0.2`, lower but *not shown* with the fair measures, so it is
# supported by neither protocol here: for one small network on one synthetic dataset, trained from
# scratch.

# %% [markdown]
# ## Summary
#
# * GT-known Loc at a fixed `tau` is one point of a curve; methods differ in *where* their curves
#   peak, so a fixed `tau` ranks them partly by the shape of their score maps.
# * Choose `tau` on a held-out split with boxes, or report MaxBoxAcc / MaxBoxAccV2 (box) and PxAP
#   (pixel). MaxBoxAcc is the top of the test curve, an upper bound of the accuracy at the
#   validation `tau`, not the same number.
# * On beetles, with a fair threshold CAM closes much of its gap to SAGD stage 1 and ADL; stages
#   1+2 stay first by every box measure; the full DGDM, far behind stages 1+2 at `tau = 0.2`, is
#   ahead of CAM by every box measure and passes ADL with the fair measures (on each benchmark
#   seed). Which of these gaps three
#   seeds resolve is the verdict table above. A fixed threshold can over-rate a method and
#   under-rate another.
# * Erasing makes maps flatter: less mass on the head, more on the body relative to the head, and
#   more on the background. Boxes grow; pixel precision (PxAP) follows only sometimes: stage 1's
#   fell below CAM's on each benchmark seed, that of stages 1+2 rose above it.
# * One seed in this chapter on one synthetic dataset; the benchmark (`make bench`,
#   `docs/results.md`) repeats it over seeds.
#
# ## Exercises
#
# 1. Which `tau` maximises ADL's curve, and how far is it from the one chosen on validation?
#    *Hint:* `curves["ADL"].best_tau()` and `chosen["ADL"]`.
# 2. Compute MaxBoxAccV2's part at IoU 0.7 for each method. Does the ranking change again?
#    *Hint:* `results[name]["maxboxacc_v2@0.7"]`.
# 3. Train CAM with a weaker body cue (`BeetleRun.of("cam", pattern_contrast=0.06)`, chapter 01):
#    the head is then an even stronger shortcut. What happens to its body/head ratio and to its
#    best `tau`?
# 4. Report MaxBoxAcc instead of the accuracy at the validation `tau`. By how many points does
#    choosing `tau` on the test split flatter each method, and which one most?
#    *Hint:* `results[name]["maxboxacc"]` and `results[name]["gt_known_loc@tau_val"]`.
#
# ## Solutions
#
# Exercises 1, 2 and 4 only read what is already measured. Exercise 3 needs a new run: classroom
# mode trains it; quick mode (tests, CI) reads the benchmark's three seeds of that run instead.

# %% [markdown]
# ### Exercise 1

# %%
adl_best, adl_val = curves["ADL"].best_tau(), chosen["ADL"]
print(f"ADL: best tau on test {adl_best:.2f}, chosen on val {adl_val:.2f} (apart by {abs(adl_best - adl_val):.2f}); "
      f"GT-known Loc {curves['ADL'].at(adl_best):.1f} vs {curves['ADL'].at(adl_val):.1f}")
assert curves["ADL"].at(adl_best) >= curves["ADL"].at(adl_val)

# %% [markdown]
# The two are close but need not coincide: 300 validation beetles are a noisy sample of where the
# curve peaks. Near its top the curve is flat enough that the price of the validation choice is
# usually small; it is zero only when both splits pick the same `tau`.

# %% [markdown]
# ### Exercise 2

# %%
for key in ("maxboxacc_v2@0.5", "maxboxacc_v2@0.7"):
    order = sorted(results, key=lambda name: -results[name][key])
    print(f"{key}:", ranked_line(key, order))

# %% [markdown]
# At IoU 0.7 a box must fit tightly, and every method scores much lower; compare the two orders
# printed. A ranking that changes with the IoU threshold is why MaxBoxAccV2 averages over three of
# them.

# %% [markdown]
# ### Exercise 3

# %%
def cam_profile(r, camset=None):
    """val tau, body/head mass ratio and (if CAMs are given) body/head mean value of one CAM run."""
    line = (f"Loc at tau 0.2 {r['gt_known_loc@0.2']:.1f}, val tau {r['tau_val']:.2f}, "
            f"body/head mass {r['body_share'] / r['head_share']:.2f}")
    if camset is not None:
        m = region_means(camset)
        line += f", body/head mean value {m['body'] / m['head']:.2f}"
    return line


print("CAM, pattern contrast 0.09 (the book's):", cam_profile(results["CAM"], camsets["CAM"]))
if not quick_mode():
    weak_run = BeetleRun.of("cam", pattern_contrast=0.06)
    print("CAM, pattern contrast 0.06:             ", cam_profile(measure(weak_run), test_camset(weak_run)))
else:
    print("quick mode: the contrast-0.06 run is trained in classroom mode only; the benchmark's seeds:")
    contrast = bench_table("contrast")
    if not contrast:
        print("  (no benchmark numbers in docs/results.json)")
    for row in (r for r in contrast if r["method"] == "cam"):
        ratio = [b / h for b, h in zip(row["body_share"]["values"], row["head_share"]["values"])]
        print(f"  {row['row']}: Loc at tau 0.2", " / ".join(f"{x:.1f}" for x in row["gt_known_loc@0.2"]["values"]),
              "; val tau", " / ".join(f"{t:.2f}" for t in row["tau_val"]["values"]),
              "; body/head mass", " / ".join(f"{x:.2f}" for x in ratio))

# %% [markdown]
# With a weaker body cue the network leans even more on the head: the body gets less of the map
# relative to the head, and the best threshold stays low, because everything but the peak is
# faint. The shortcut the paper's erasing is meant to break is stronger, and at the fixed
# `tau = 0.2` CAM's boxes shrink further onto the head: its GT-known Loc there drops.

# %% [markdown]
# ### Exercise 4

# %%
flattery = {name: r["maxboxacc"] - r["gt_known_loc@tau_val"] for name, r in results.items()}
for name, points in sorted(flattery.items(), key=lambda item: -item[1]):
    print(f"{name:9s} MaxBoxAcc {results[name]['maxboxacc']:5.1f}, "
          f"at the val tau {results[name]['gt_known_loc@tau_val']:5.1f}: +{points:.1f} points")
assert all(points >= -1e-9 for points in flattery.values())

# %% [markdown]
# Never negative, by construction (exercise 1 shows why), and from nothing to a few points:
# reading the test curve at its top rewards luck in where the peak falls. MaxBoxAcc is a fine
# *score of the maps*; as an accuracy a user could obtain, report the one at the validation `tau`.
