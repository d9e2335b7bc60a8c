"""Real photographs: the pretrained EfficientNet-Lite0's CAMs on ImageNet, and CAM / ADL / SAGD /
DGDM fine-tuned on a few CUB species (``dgdm_lib.photos``, the recipe of chapter 09), over seeds.

Three parts, each skipped with ``missing_message`` when its images are not on this machine:

* **imagenet**: no training. The ImageNet classifier's true-class CAMs on ILSVRC validation
  images: Top-1, GT-known Loc at tau 0.2, MaxBoxAcc (and its tau), MaxBoxAccV2, and the CAM box /
  GT box area ratio at tau 0.2.
* **cub**: ``PhotoRun(method, seed, classes, epochs)`` per method and seed, measured with
  ``measure_photo_run`` (tau chosen on the validation split carved from CUB's training images,
  every number on test); the models are cached in the benchmark's data folder. Mean ± sd [95% t
  interval] per method (``experiments.summarize``, as the beetles tables) and each method minus CAM
  with the Welch interval and verdict of the beetles claims (``accuracy.difference`` / ``verdict``).
* **speed**: CAM, first seed, trained twice *now* (never from the cache): the fast fine-tune
  (backbone frozen through ``stage3``, the ``PhotoRun`` default) and plain full backprop
  (``freeze=None``); seconds per epoch (median over epochs 2..n: the first has the warm-up), their
  ratio, and what the speed-up costs in accuracy.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.accuracy import difference, verdict

DEFAULT_METHODS = ("cam", "adl", "sagd12", "dgdm")
NAMES = {"cam": "CAM", "adl": "ADL", "sagd": "SAGD stage 1", "sagd12": "SAGD stage 1+2", "dgdm": "DGDM",
         "cagd": "CAGD", "random_block": "Random block"}
BASELINE = "cam"
TAU = 0.2
#: Compared with CAM. Localisation: "better than CAM"; Top-1: "not more than TOP1_MARGIN below CAM"
#: (the beetles claim "DGDM keeps classification accuracy" uses the same margin).
COMPARED = ("gt_known_loc@0.2", "gt_known_loc@tau_val", "maxboxacc_v2", "top1_clas")
TOP1_MARGIN = 1.0
#: Summarised per method (mean, sd, 95% t interval over seeds).
SUMMARY_KEYS = ("top1_clas", "gt_known_loc@0.2", "gt_known_loc@tau_val", "tau_val", "maxboxacc_v2",
                "train_seconds", "mean_epoch_s")
SPEED_METRICS = ("top1_clas", "gt_known_loc@0.2", "gt_known_loc@tau_val", "maxboxacc_v2")


@dataclass(frozen=True)
class PhotoPlan:
    """What the section runs: ``classes`` CUB species for ``epochs`` epochs, ``methods`` x ``seeds``,
    the first ``imagenet_limit`` ILSVRC images (all when None), and the speed comparison."""

    classes: int = 10
    epochs: int = 6
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = DEFAULT_METHODS
    imagenet_limit: int | None = None
    speed: bool = True


def _name(method: str) -> str:
    return NAMES.get(method, method)


def _stat(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "sd", "ci95", "values"}`` as the beetles tables (``accuracy.tables``) build it."""
    from dgdm_lib.experiments import summarize

    mean, sd, half = summarize([{"row": 0, "v": float(v)} for v in values], ["v"], by="row")[0]["v"]
    return {"mean": mean, "sd": sd, "ci95": None if half != half else [mean - half, mean + half],
            "values": [float(v) for v in values]}


def _timed_epochs(epoch_seconds: Sequence[float]) -> tuple[list[int], float | None]:
    """Epochs (1-based) whose time counts, and their median: 2..n, or all of them for one epoch."""
    first = 2 if len(epoch_seconds) > 1 else 1
    kept = list(range(first, len(epoch_seconds) + 1))
    return kept, statistics.median(epoch_seconds[first - 1:]) if kept else None


def _history_seconds(model: Any) -> list[float]:
    result = getattr(model, "train_result", None) or {}
    return [float(h["seconds"]) for h in result.get("history", []) if h.get("seconds") is not None]


# --------------------------------------------------------------------------------------------
# ImageNet, no training
# --------------------------------------------------------------------------------------------
def pretrained_imagenet(limit: int | None, log: Callable[[str], None] = print) -> dict[str, Any]:
    import numpy as np
    import torch

    from dgdm_lib.evaluation import evaluate
    from dgdm_lib.photos import imagenet_loader, imagenet_model, imagenet_root, missing_message, pretrained_cams
    from dgdm_lib.views.cams import box_size_ratios

    root = imagenet_root()
    if root is None:
        return {"skipped": missing_message("imagenet")}
    began = time.perf_counter()
    loader = imagenet_loader(root, limit=limit)
    log(f"[photos] pretrained Lite0 on {len(loader.dataset)} ILSVRC val images of {root} ...")
    camset = pretrained_cams(imagenet_model(), loader)
    metrics = evaluate(camset, tau=TAU)
    ratios = box_size_ratios(camset.cams, camset.gt_boxes, tau=TAU)
    out = {
        "root": str(root), "images": len(camset), "limit": limit, "tau": TAU,
        "top1_clas": metrics["top1_clas"], f"gt_known_loc@{TAU:g}": metrics[f"gt_known_loc@{TAU:g}"],
        "maxboxacc": metrics["maxboxacc"], "best_tau": metrics["best_tau"], "maxboxacc_v2": metrics["maxboxacc_v2"],
        "box_ratio_median": float(np.nanmedian(ratios)), "box_ratio_below_1": float(100 * np.mean(ratios < 1)),
        "torch_threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - began, 1),
    }
    log(f"[photos] ImageNet: Top-1 {out['top1_clas']:.1f}, GT-known Loc@{TAU:g} {out[f'gt_known_loc@{TAU:g}']:.1f}, "
        f"MaxBoxAccV2 {out['maxboxacc_v2']:.1f} in {out['seconds']:.0f} s")
    return out


# --------------------------------------------------------------------------------------------
# Fine-tunes on CUB
# --------------------------------------------------------------------------------------------
def _run_entry(run: Any, root: Path, log: Callable[[str], None], index: int, total: int,
               trained: list[float]) -> dict[str, Any]:
    from dgdm_lib.config import data_dir
    from dgdm_lib.photos import finetuned_model, measure_photo_run

    cached = (data_dir() / "models" / f"{run.key(root)}.pt").is_file()
    began = time.perf_counter()
    result = measure_photo_run(run, root, progress=False)
    took = time.perf_counter() - began
    # Read back from the cache measure_photo_run just filled: the per-epoch history and the insertion points.
    model = finetuned_model(run, root, progress=False)
    epochs = _history_seconds(model)
    m = result.metrics
    entry = {
        "method": run.method, "seed": run.seed, "key": run.key(root), "n_test": m["n_images"],
        **{k: float(m[k]) for k in ("top1_clas", "gt_known_loc@0.2", "gt_known_loc@tau_val", "tau_val",
                                     "maxboxacc_v2", "maxboxacc")},
        "train_seconds": result.train_seconds, "epoch_seconds": epochs,
        "mean_epoch_s": statistics.fmean(epochs) if epochs else None,
        "positions": list(getattr(model, "positions", {})),
        "trained_now": not cached, "bench_seconds": round(took, 1),
    }
    if not cached:
        trained.append(took)
    left = f", ETA {(total - index) * statistics.median(trained) / 60:.1f} min (if none is cached)" if trained else ""
    log(f"[photos {index}/{total}] {_name(run.method)} seed {run.seed}: "
        f"{'cached' if cached else f'{took:.0f} s'} | Top-1 {entry['top1_clas']:.1f}, GT-known Loc@0.2 "
        f"{entry['gt_known_loc@0.2']:.1f}, @val tau {entry['gt_known_loc@tau_val']:.1f}, MaxBoxAccV2 "
        f"{entry['maxboxacc_v2']:.1f}{left}")
    return entry


def summarize_runs(runs: Sequence[dict[str, Any]], methods: Sequence[str]) -> list[dict[str, Any]]:
    """One row per method: ``{"method", "name", "n", "seeds", key: stat}`` over its seeds."""
    table = []
    for method in methods:
        members = [r for r in runs if r["method"] == method]
        if not members:
            continue
        row: dict[str, Any] = {"method": method, "name": _name(method), "n": len(members),
                               "seeds": [r["seed"] for r in members]}
        for key in SUMMARY_KEYS:
            values = [r[key] for r in members if r.get(key) is not None]
            if len(values) == len(members):
                row[key] = _stat(values)
        table.append(row)
    return table


def compare_to_baseline(table: Sequence[dict[str, Any]], baseline: str = BASELINE) -> list[dict[str, Any]]:
    """Each method minus CAM per metric, with the Welch 95% interval and the beetles claims' verdict."""
    base = next((row for row in table if row["method"] == baseline), None)
    if base is None:
        return []
    out = []
    for row in table:
        if row["method"] == baseline:
            continue
        metrics = {}
        for key in COMPARED:
            if key in row and key in base:
                d = difference(row[key]["values"], base[key]["values"])
                margin = TOP1_MARGIN if key == "top1_clas" else 0.0
                metrics[key] = {**d, "verdict": verdict(d, margin=margin), "margin": margin}
        out.append({"method": row["method"], "name": row["name"], "baseline": baseline,
                    "baseline_name": _name(baseline), "metrics": metrics})
    return out


def finetunes(plan: PhotoPlan, root: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    from dgdm_lib.models import ARCHS
    from dgdm_lib.photos import PhotoRun, photo_loaders

    template = PhotoRun(classes=plan.classes, epochs=plan.epochs)
    train, val, test = photo_loaders(template, root)
    runs = [dataclasses.replace(template, method=m, seed=s) for s in plan.seeds for m in plan.methods]
    log(f"[photos] {len(runs)} fine-tunes on {plan.classes} CUB species of {root} ({len(train.dataset)} train, "
        f"{len(val.dataset)} val, {len(test.dataset)} test images), epochs {plan.epochs}, seeds {plan.seeds}")
    trained: list[float] = []
    entries = [_run_entry(run, root, log, i, len(runs), trained) for i, run in enumerate(runs, 1)]
    table = summarize_runs(entries, plan.methods)
    positions = next((e["positions"] for e in entries if e["positions"]), list(ARCHS["lite0"].positions))
    recipe = {k: v for k, v in dataclasses.asdict(template).items() if k not in ("method", "seed")}
    return {
        "root": str(root), "recipe": {**recipe, **dataclasses.asdict(template.recipe()), "positions": positions,
                                      "resize": template.resize},
        "backbone": ARCHS["lite0"].description,
        "species": [name.split(".", 1)[-1] for name in train.dataset.classes],
        "images": {"train": len(train.dataset), "val": len(val.dataset), "test": len(test.dataset)},
        "runs": entries, "table": table, "vs_baseline": compare_to_baseline(table),
        "trained_now": sum(e["trained_now"] for e in entries),
    }


# --------------------------------------------------------------------------------------------
# Speed: the fast fine-tune against plain full backprop
# --------------------------------------------------------------------------------------------
def score(model: Any, run: Any, root: Path) -> dict[str, Any]:
    """Test metrics of a fine-tuned ``model`` as ``measure_photo_run`` computes them (tau chosen on val)."""
    from dgdm_lib.evaluation import evaluate_val_test
    from dgdm_lib.photos import photo_loaders

    _, val, test = photo_loaders(run, root)
    return evaluate_val_test(model, val, test, next(model.parameters()).device, tau=TAU)


def speed(plan: PhotoPlan, root: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    import torch

    from benchmarks.environment import load_average
    from dgdm_lib.photos import PhotoRun, finetuned_model

    fast = PhotoRun(method=BASELINE, seed=plan.seeds[0], classes=plan.classes, epochs=plan.epochs)
    variants = {"fast": fast, "plain": dataclasses.replace(fast, freeze=None)}
    out: dict[str, Any] = {"method": BASELINE, "method_name": _name(BASELINE), "seed": fast.seed,
                           "torch_threads": torch.get_num_threads(), "load_before": load_average(), "variants": {}}
    for name, run in variants.items():
        log(f"[photos] speed: {name} fine-tune (freeze {run.freeze}), trained now (no cache) ...")
        began = time.perf_counter()
        model = finetuned_model(run, root, progress=False, cache=False)
        trained = time.perf_counter() - began
        metrics = score(model, run, root)
        epochs = _history_seconds(model)
        kept, median = _timed_epochs(epochs)
        out["variants"][name] = {
            "freeze": run.freeze, "key": run.key(root),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "parameters": sum(p.numel() for p in model.parameters()),
            "epoch_seconds": epochs, "timed_epochs": kept, "median_epoch_s": median,
            "train_seconds": (model.train_result or {}).get("seconds", trained),
            **{k: float(metrics[k]) for k in (*SPEED_METRICS, "tau_val")},
            "load_after": load_average(),
        }
        log(f"[photos] speed: {name} {median:.1f} s an epoch (median of epochs {kept[0]}-{kept[-1]}), "
            f"Top-1 {metrics['top1_clas']:.1f}, MaxBoxAccV2 {metrics['maxboxacc_v2']:.1f}")
    f, p = out["variants"]["fast"], out["variants"]["plain"]
    out["speedup"] = p["median_epoch_s"] / f["median_epoch_s"] if f["median_epoch_s"] else None
    out["accuracy_cost"] = {k: f[k] - p[k] for k in SPEED_METRICS}  # fast - plain, in points
    out["load_after"] = load_average()
    return out


# --------------------------------------------------------------------------------------------
# The section
# --------------------------------------------------------------------------------------------
def run_photos(plan: PhotoPlan, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The results page's "Real photographs" section; a part whose images are missing is
    ``{"skipped": why}`` and the others still run."""
    from dgdm_lib.photos import cub_root, missing_message

    out: dict[str, Any] = {"plan": {**dataclasses.asdict(plan), "seeds": list(plan.seeds),
                                    "methods": list(plan.methods), "baseline": BASELINE, "tau": TAU,
                                    "top1_margin": TOP1_MARGIN},
                           # the defaults of dgdm_lib.evaluation for real photographs (docs/methods.md)
                           "protocol": {"boxes": "reference", "upsample": "bicubic"}}
    out["imagenet"] = pretrained_imagenet(plan.imagenet_limit, log)
    root = cub_root()
    if root is None:
        why = missing_message("cub")
        log(f"[photos] skipped the CUB fine-tunes: {why}")
        out["cub"] = {"skipped": why}
        out["speed"] = {"skipped": why}
        return out
    out["cub"] = finetunes(plan, root, log)
    out["speed"] = speed(plan, root, log) if plan.speed else {"skipped": "not requested (PhotoPlan.speed False)"}
    return out
