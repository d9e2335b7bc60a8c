"""Accuracy on beetles: which runs the benchmark trains, how it groups them, and what it concludes.

Every run is an ``experiments.BeetleRun`` measured with ``experiments.measure`` (tau chosen on
val, reported on test; cached per run under ``data_dir()/results``), so an interrupted benchmark
resumes and the notebooks reuse the same trained models. Rows of the page are groups of runs that
differ only by seed; ``summarize`` gives mean, sd and a 95% t interval per metric.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dgdm_lib.experiments import BeetleRun, Schedule, summarize

#: Metrics of the tables, in column order, with their headers.
KEYS: dict[str, str] = {
    "top1_clas": "Top-1 Clas",
    "gt_known_loc@0.2": "GT-known Loc @0.2",
    "gt_known_loc@tau_val": "GT-known Loc @val tau",
    "top1_loc@tau_val": "Top-1 Loc @val tau",
    "maxboxacc_v2": "MaxBoxAccV2",
    "pxap": "PxAP",
}
#: Also summarised (JSON and a side column), not compared.
EXTRA_KEYS = ("tau_val", "maxboxacc", "head_share", "body_share", "background_share")

MAIN_METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "CAM": ("cam", {}),
    "ADL": ("adl", {}),
    "SAGD stage 1": ("sagd", {}),
    "SAGD stage 1+2": ("sagd12", {}),
    "DGDM (stage 1+2 + CAGD)": ("dgdm", {}),
    # Chapter 05 trains exactly this run (same cache entry): block 3, torchvision's p = 0.1.
    "Random block (control)": ("random_block", {"block_size": 3}),
}
CONTRAST_METHODS = ("CAM", "ADL", "SAGD stage 1", "DGDM (stage 1+2 + CAGD)")
BLOCK_SIZES: tuple[int | str, ...] = (1, 2, 3, "adaptive")
BETAS = (2.0, 2.5, 3.0, 3.5)
CONTRASTS = (0.06, 0.09, 0.12)
DEFAULT_CONTRAST = 0.09
SAGD_DEFAULT_BLOCK = 3
DGDM_DEFAULT_BETA = 3.0
FEATURE_MAP_SIZE = 16  # the small network's last map at 64 px (chapter 01)


@dataclass(frozen=True)
class Row:
    """One row of a table: a method with fixed settings, over several seeds."""

    group: str
    name: str
    method: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    note: str = ""

    def runs(self, seeds: Sequence[int], schedule: Schedule) -> list[BeetleRun]:
        return [BeetleRun.of(self.method, seed=s, schedule=schedule, **dict(self.kwargs)) for s in seeds]


@dataclass
class Plan:
    """The rows of every table and the distinct runs behind them (a run may serve several rows)."""

    rows: list[Row]
    seeds: tuple[int, ...]
    schedule: Schedule
    runs: list[BeetleRun] = field(default_factory=list)

    def __post_init__(self) -> None:
        seen: dict[str, BeetleRun] = {}
        # Seed-major order: an interrupted benchmark leaves whole seeds behind it.
        for seed in self.seeds:
            for row in self.rows:
                run = row.runs([seed], self.schedule)[0]
                seen.setdefault(run.key(), run)
        self.runs = list(seen.values())


def _kw(**kwargs: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(kwargs.items()))


def build_plan(
    seeds: Sequence[int],
    schedule: Schedule,
    groups: Sequence[str] = ("methods", "block_size", "beta", "contrast"),
    contrasts: Sequence[float] = CONTRASTS,
) -> Plan:
    """Rows of the four tables. Defaults are not passed as keyword arguments, so the default run of
    a method (``BeetleRun.of("sagd")``) is one cache entry shared with the notebooks."""
    from dgdm_lib.modules import adaptive_block_size

    rows: list[Row] = []
    if "methods" in groups:
        rows += [Row("methods", name, method, _kw(**kw)) for name, (method, kw) in MAIN_METHODS.items()]
    if "block_size" in groups:
        adaptive = adaptive_block_size(FEATURE_MAP_SIZE)
        for size in BLOCK_SIZES:
            resolved = adaptive if size == "adaptive" else size
            kw = {} if resolved == SAGD_DEFAULT_BLOCK else {"block_size": resolved}
            note = ""
            if size == "adaptive":
                note = f"ceil({FEATURE_MAP_SIZE}/7) = {adaptive} on the 16x16 map: the same runs as block {adaptive}"
            elif resolved == SAGD_DEFAULT_BLOCK:
                note = "the default: the same runs as SAGD stage 1"
            rows.append(Row("block_size", f"block {size}", "sagd", _kw(**kw), note))
    if "beta" in groups:
        for beta in BETAS:
            kw = {} if beta == DGDM_DEFAULT_BETA else {"beta": beta}
            note = "the default: the same runs as DGDM" if not kw else ""
            rows.append(Row("beta", f"beta {beta:g}", "dgdm", _kw(**kw), note))
    if "contrast" in groups:
        for name in CONTRAST_METHODS:
            method, kw = MAIN_METHODS[name]
            for contrast in contrasts:
                extra = {} if contrast == DEFAULT_CONTRAST else {"pattern_contrast": contrast}
                rows.append(Row("contrast", f"{name} @ {contrast:g}", method, _kw(**kw, **extra)))
    return Plan(rows, tuple(seeds), schedule)


def _eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _init_worker(environment: dict[str, str], threads: int) -> None:
    import os

    import torch

    os.environ.update(environment)
    torch.set_num_threads(threads)
    # Import now, so that reading a cached run is not timed as a training run (< 1 s).
    import importlib

    for name in ("dgdm_lib.data", "dgdm_lib.evaluation", "dgdm_lib.experiments", "dgdm_lib.models"):
        importlib.import_module(name)


def _measure_quietly(run: BeetleRun) -> tuple[dict[str, Any], float]:
    from dgdm_lib.experiments import measure

    began = time.perf_counter()
    metrics = measure(run, progress=False)
    return metrics, time.perf_counter() - began


def run_plan(
    plan: Plan,
    measure: Callable[[BeetleRun], dict[str, Any]] | None = None,
    log: Callable[[str], None] = print,
    default_seconds: float = 30.0,
    jobs: int = 1,
    threads: int = 1,
) -> dict[str, dict[str, Any]]:
    """Measure every run of ``plan`` (trained or loaded from the cache); one progress line per run
    with an ETA from the runs trained so far (``default_seconds`` a run before the first one).

    ``jobs > 1`` trains that many runs at once in worker processes of ``threads`` torch threads
    each (on 2 cores, 2 jobs x 1 thread outpace 1 job x 2 threads). Returns
    ``{run key: metrics}``; metrics carry ``bench_seconds`` (0 when read from the cache).
    """
    results: dict[str, dict[str, Any]] = {}
    trained: list[float] = []
    start = time.perf_counter()
    total = len(plan.runs)

    def record(run: BeetleRun, metrics: dict[str, Any], took: float) -> None:
        cached = took < 1.0
        if not cached:
            trained.append(took)
        metrics = dict(metrics)
        metrics["bench_seconds"] = 0.0 if cached else round(took, 1)
        results[run.key()] = metrics
        per_run = statistics.median(trained) if trained else default_seconds
        left = (total - len(results)) * per_run / max(jobs, 1)
        log(
            f"[accuracy {len(results):>2}/{total}] {run.label} c={run.pattern_contrast:g} seed {run.seed}: "
            f"{'cached' if cached else f'{took:.1f} s'} | GT-known Loc@0.2 {metrics['gt_known_loc@0.2']:.1f}, "
            f"@val tau {metrics['gt_known_loc@tau_val']:.1f} | elapsed {_eta(time.perf_counter() - start)}, "
            f"ETA {_eta(left)}"
        )

    if jobs <= 1 or measure is not None:
        for run in plan.runs:
            if measure is None:
                metrics, took = _measure_quietly(run)
            else:
                began = time.perf_counter()
                metrics = measure(run)
                took = time.perf_counter() - began
            record(run, metrics, took)
        return {run.key(): results[run.key()] for run in plan.runs}

    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    environment = {k: os.environ[k] for k in ("DGDM_DATA", "DGDM_QUICK", "DGDM_DEVICE") if k in os.environ}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                             initargs=(environment, threads)) as pool:
        futures = {pool.submit(_measure_quietly, run): run for run in plan.runs}
        for future in as_completed(futures):
            metrics, took = future.result()
            record(futures[future], metrics, took)
    return {run.key(): results[run.key()] for run in plan.runs}


def _clean(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def tables(plan: Plan, results: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per group, one summary per row: ``{key: {"mean", "sd", "ci95": [lo, hi], "values"}}``."""
    out: dict[str, list[dict[str, Any]]] = {}
    keys = [*KEYS, *EXTRA_KEYS]
    for row in plan.rows:
        members = [results[r.key()] for r in row.runs(plan.seeds, plan.schedule) if r.key() in results]
        if not members:
            continue
        present = [k for k in keys if all(m.get(k) is not None for m in members)]
        summary = summarize([{**m, "row": row.name} for m in members], present, by="row")[0]
        entry: dict[str, Any] = {"row": row.name, "method": row.method, "kwargs": dict(row.kwargs),
                                 "note": row.note, "n": summary["n"],
                                 "seeds": [m["seed"] for m in members],
                                 "run_keys": [r.key() for r in row.runs(plan.seeds, plan.schedule)]}
        for key in present:
            mean, sd, half = summary[key]
            half = _clean(half)
            entry[key] = {
                "mean": mean, "sd": sd,
                "ci95": [mean - half, mean + half] if half is not None else None,
                "values": [float(m[key]) for m in members],
            }
        out.setdefault(row.group, []).append(entry)
    return out


# --------------------------------------------------------------------------------------------
# Claims: differences of means with a Welch 95% interval
# --------------------------------------------------------------------------------------------
def difference(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """mean(a) - mean(b) with a Welch t 95% interval (None when a side has fewer than 2 values)."""
    from dgdm_lib.stats import welch_difference

    diff, interval = welch_difference(a, b)
    return {"diff": diff, "ci95": None if interval is None else list(interval)}


def verdict(diff: dict[str, Any], margin: float = 0.0) -> str:
    """``holds`` when the whole 95% interval of the difference lies above ``-margin`` (``margin`` > 0
    for "not worse" claims) or above 0; ``reversed`` when it lies below; else ``not shown``."""
    ci = diff["ci95"]
    if ci is None:
        return "holds (1 seed)" if diff["diff"] > -margin else "reversed (1 seed)"
    if ci[0] > -margin:
        return "holds"
    if ci[1] < -margin:
        return "reversed"
    return "not shown"


CLAIM_METRICS = ("gt_known_loc@0.2", "gt_known_loc@tau_val", "maxboxacc_v2")

#: (claim in the paper's words, better row, baseline row, where the paper says it)
COMPARISONS: tuple[tuple[str, str, str, str], ...] = (
    ("Erasing the most discriminative blocks (SAGD stage 1) localises better than CAM",
     "SAGD stage 1", "CAM", "Table 1, row stage1"),
    ("Adding the background stage (stage 2) improves on stage 1",
     "SAGD stage 1+2", "SAGD stage 1", "Table 1, row stage1+stage2"),
    ("Adding channel dropout (CAGD, Mdrop1) improves on stage 1+2",
     "DGDM (stage 1+2 + CAGD)", "SAGD stage 1+2", "Table 1, row stage1+stage2+Mdrop1"),
    ("DGDM localises better than CAM", "DGDM (stage 1+2 + CAGD)", "CAM", "Tables 2-3"),
    ("DGDM localises better than ADL", "DGDM (stage 1+2 + CAGD)", "ADL", "Tables 2-3"),
    ("Aimed erasing (SAGD stage 1) beats random blocks of the same block size (control, docs/methods.md)",
     "SAGD stage 1", "Random block (control)", "the book's control (not a claim of the paper)"),
)


def _values(table: list[dict[str, Any]], row: str, key: str) -> list[float] | None:
    for entry in table:
        if entry["row"] == row and key in entry:
            return entry[key]["values"]
    return None


def _best(table: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    entries = [e for e in table if key in e and "adaptive" not in e["row"]]
    if not entries:
        return None
    best = max(entries, key=lambda e: e[key]["mean"])
    return {"row": best["row"], "mean": best[key]["mean"]}


def claims(summary: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The paper's claims that beetles can test, each with the measured differences and a verdict
    per metric (the paper's own protocol is GT-known Loc at tau 0.2)."""
    out: list[dict[str, Any]] = []
    methods = summary.get("methods", [])
    for text, better, base, source in COMPARISONS:
        per_metric = {}
        for key in CLAIM_METRICS:
            a, b = _values(methods, better, key), _values(methods, base, key)
            if a is None or b is None:
                continue
            d = difference(a, b)
            per_metric[key] = {**d, "verdict": verdict(d)}
        if per_metric:
            out.append({"claim": text, "better": better, "baseline": base, "source": source, "metrics": per_metric})
    a, b = _values(methods, "DGDM (stage 1+2 + CAGD)", "top1_clas"), _values(methods, "CAM", "top1_clas")
    if a is not None and b is not None:
        d = difference(a, b)
        out.append({"claim": "DGDM keeps classification accuracy (Top-1 Clas no more than 1 point below CAM)",
                    "better": "DGDM (stage 1+2 + CAGD)", "baseline": "CAM", "source": "Tables 2-3",
                    "metrics": {"top1_clas": {**d, "verdict": verdict(d, margin=1.0)}}})
    for group, text, expected, source in (
        ("block_size", "Block size 2 is best for stage 1 (paper, 14x14 maps; ours are 16x16)", "block 2",
         "Sec. 4.2, block-size study"),
        ("beta", "beta = 3 is the best CAGD threshold among 2, 2.5, 3, 3.5", "beta 3", "Sec. 4.2, beta study"),
    ):
        table = summary.get(group, [])
        per_metric = {}
        for key in CLAIM_METRICS:
            best = _best(table, key)
            if best is None:
                continue
            runner = sorted((e for e in table if key in e and "adaptive" not in e["row"]),
                            key=lambda e: -e[key]["mean"])
            spread = difference(runner[0][key]["values"], runner[1][key]["values"]) if len(runner) > 1 else None
            clear = spread is not None and verdict(spread) == "holds"
            if best["row"] == expected:
                word = "holds" if clear else "holds (not clearly: the top two overlap)"
            else:
                word = (f"does not hold ({best['row']} is clearly best)" if clear
                        else "not shown (another row is best, within noise)")
            per_metric[key] = {"best": best["row"], "best_mean": best["mean"], "verdict": word,
                               "gap_to_second": spread}
        if per_metric:
            out.append({"claim": text, "better": expected, "baseline": "the other rows", "source": source,
                        "metrics": per_metric})
    return out


# --------------------------------------------------------------------------------------------
# CAGD at work: how many channels the beta rule leaves droppable on trained features
# --------------------------------------------------------------------------------------------
def cagd_activity(run: BeetleRun, betas: Sequence[float] = BETAS, images: int = 128) -> dict[str, Any]:
    """Share of channels CAGD may drop (``|S_c| < beta * min_c |S_c|``) on the trained ``run``'s
    features at each insertion point, over ``images`` validation images; also the share of
    images whose smallest channel score is 0 (then the beta rule keeps every channel) and, per
    beta, of images with no important channel (``max_c |S_c| < beta * min_c |S_c|``: even the
    strongest channel is dropped with probability alpha)."""
    import torch

    from dgdm_lib.cam import capture_features
    from dgdm_lib.experiments import beetle_loader, trained_model
    from dgdm_lib.modules import cagd_rule_regimes

    model = trained_model(run, progress=False).eval()
    images_, _ = next(iter(beetle_loader(run, "val", batch_size=images, size=images)))
    layers = dict(model.features.named_modules())
    out: dict[str, Any] = {"run": run.key(), "images": int(len(images_)), "positions": {}}
    for position, path in model.positions.items():
        with torch.no_grad(), capture_features(layers[path]) as store:
            model(images_)
        magnitude = store.output.float().mean(dim=(2, 3)).abs()
        low = magnitude.min(dim=1, keepdim=True).values
        out["positions"][position] = {
            "channels": int(magnitude.shape[1]),
            "dead_min_share": float((low.squeeze(1) <= 1e-12).float().mean() * 100),
            "droppable_share": {f"{b:g}": float((magnitude < b * low).float().mean() * 100) for b in betas},
            "none_important_share": {
                f"{b:g}": float(cagd_rule_regimes(store.output.float(), b)["none_important"].float().mean() * 100)
                for b in betas
            },
        }
    return out
