"""The book's runs on beetles: one place that trains, caches and measures a method, for the
notebooks and the benchmark alike.

``BeetleRun`` names a run (method, seed, pattern contrast, hyperparameters); ``trained_model(run)``
trains it with the book's recipe (AdamW lr 2e-3 one-cycle, batch 64, flips) or loads it from the
cache in ``data_dir()/models``; ``measure(run)`` evaluates it with the threshold chosen on the
validation split and caches the numbers in ``data_dir()/results`` (with a sha256 over them: a
damaged or hand-edited file is measured again). Quick mode (tests, CI) trains
exactly as classroom mode (shorter schedules made the book's claims flip between seeds) and
measures on fewer test images; the two modes share cached models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dgdm_lib.atomic import atomic_write_json
from dgdm_lib.config import data_dir, get_device, quick_mode, repo_root
from dgdm_lib.stats import mean_sd_ci
from dgdm_lib.training import Recipe, config_hash

__all__ = ["BeetleRun", "Schedule", "schedule", "trained_model", "beetle_loader", "test_batch", "test_camset", "measure",
           "measure_many", "summarize", "format_table", "bench_table", "bench_rows_by_method", "bench_values", "bench_text", "bench_claims", "bench_claim"]


@dataclass(frozen=True)
class Schedule:
    """How long a beetles run trains (epochs over the first ``train_size`` training images) and how
    many val / test images measure it."""

    epochs: int
    train_size: int
    val_size: int
    test_size: int


#: Classroom: the book's recipe (chapter 02). Quick (tests and CI): the same training, 300 test images instead of 500.
CLASSROOM = Schedule(epochs=6, train_size=4000, val_size=300, test_size=500)
QUICK = Schedule(epochs=6, train_size=4000, val_size=300, test_size=300)


def schedule() -> Schedule:
    """The schedule of the current mode (``dgdm_lib.config.quick_mode``)."""
    return QUICK if quick_mode() else CLASSROOM


@dataclass(frozen=True)
class BeetleRun:
    """One training run of the small CPU network on beetles.

    ``method`` is a key of ``dgdm_lib.models.METHODS``; ``module_kwargs`` are the module's
    hyperparameters (``gamma``, ``delta_h``, ``block_size``...) as ``(name, value)`` pairs;
    ``bn_recalibrate`` re-estimates BatchNorm statistics with the modules off after training;
    ``recipe`` holds every other training setting (chapter 02's: AdamW, lr 2e-3, one-cycle,
    batch 64, flips). All of them, and nothing else, make the cached model's key (``config``).
    """

    method: str = "cam"
    seed: int = 0
    pattern_contrast: float = 0.09
    context_p: float = 0.0
    module_kwargs: tuple[tuple[str, Any], ...] = ()
    bn_recalibrate: bool = False
    arch: str = "small"
    schedule: Schedule = field(default_factory=schedule)
    recipe: Recipe = Recipe()

    @classmethod
    def of(cls, method: str = "cam", seed: int = 0, **kwargs: Any) -> BeetleRun:
        """``BeetleRun.of("sagd", seed=1, block_size=2, pattern_contrast=0.06)``: fields by name,
        anything else is a module hyperparameter. ``DGDM_SEED_OFFSET`` shifts ``seed`` (``seed_offset``)."""
        from dgdm_lib.config import seed_offset

        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in kwargs.items() if k in names}
        module = tuple(sorted((k, v) for k, v in kwargs.items() if k not in names))
        return cls(method=method, seed=seed + seed_offset(), module_kwargs=module, **fields)

    @property
    def label(self) -> str:
        """Short name for tables: the method and its non-default hyperparameters."""
        extras = ", ".join(f"{k}={v}" for k, v in self.module_kwargs)
        return f"{self.method}({extras})" if extras else self.method

    def config(self) -> dict[str, Any]:
        """Everything that determines the trained weights: the model cache key.

        The mode and the val / test sizes are left out, so quick and classroom runs that train
        alike share one cached model.
        """
        from dgdm_lib.data import GENERATOR_VERSION

        fields = dataclasses.asdict(self)
        fields["schedule"] = {"epochs": self.schedule.epochs, "train_size": self.schedule.train_size}
        # The thread count is part of the key: CPU kernels sum in a different order with another
        # count, and training amplifies those rounding differences into different weights.
        return {**fields, "generator_version": GENERATOR_VERSION, "torch_threads": torch.get_num_threads()}

    def run_config(self):
        """This run as the command line would train it (a ``dgdm_lib.runs.RunConfig``): ``python -m
        dgdm_lib train`` with these options gives the same network (tested)."""
        from dgdm_lib.runs import RunConfig

        return RunConfig(
            method=self.method, arch=self.arch, module_args=self.module_kwargs, seed=self.seed,
            epochs=self.schedule.epochs, recipe=self.recipe, bn_recalibrate=self.bn_recalibrate, eval_batch_size=64,
            dataset="beetles", pattern_contrast=self.pattern_contrast, context_p=self.context_p,
            train_size=self.schedule.train_size, val_size=self.schedule.val_size, test_size=self.schedule.test_size,
        )

    def key(self) -> str:
        """File name of the trained model: the method, the seed and a hash of ``config()``."""
        return f"{self.method}-s{self.seed}-{config_hash(self.config())[:10]}"

    def result_key(self) -> str:
        """File name of the measured metrics: ``key()`` plus the val / test sizes it was measured on."""
        return f"{self.key()}-v{self.schedule.val_size}-t{self.schedule.test_size}"


def _beetles_config(run: BeetleRun):
    from dgdm_lib.data import BeetlesConfig

    return BeetlesConfig(pattern_contrast=run.pattern_contrast, context_p=run.context_p)


def beetle_loader(run: BeetleRun, split: str, batch_size: int | None = None, size: int | None = None):
    """The in-memory beetles loader of ``split`` for ``run``'s dataset settings.

    Training batches are shuffled and flipped (``run.recipe``) in the order of
    ``epoch_draws(run.seed, epoch)``; ``batch_size`` defaults to the recipe's for "train" and 64 otherwise.
    """
    from dgdm_lib.data import beetles_loader

    if size is None:
        size = {"train": run.schedule.train_size, "val": run.schedule.val_size, "test": run.schedule.test_size}[split]
    train = split == "train"
    batch_size = batch_size or (run.recipe.batch_size if train else 64)
    return beetles_loader(split, batch_size=batch_size, seed=run.seed, hflip=run.recipe.hflip if train else None,
                          config=_beetles_config(run), size=size)


def test_batch(run: BeetleRun, n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The first ``n`` test beetles of ``run``'s dataset: images (n, 3, H, W) and their targets
    (``label``, ``mask``, ``box``, ``head_mask``), the same images in every chapter."""
    return next(iter(beetle_loader(run, "test", batch_size=n, size=n)))


def _build(run: BeetleRun):
    """``run``'s untrained network, initialised from ``run.seed``: without the seed its first
    weights, and so the trained model, would depend on whatever drew random numbers before."""
    from dgdm_lib.config import seed_everything
    from dgdm_lib.models import build_model

    seed_everything(run.seed)
    return build_model(run.arch, run.method, num_classes=8, **dict(run.module_kwargs))


def trained_model(run: BeetleRun, progress: bool = True) -> torch.nn.Module:
    """The network of ``run``, trained now or loaded from ``data_dir()/models`` (retrained when stale).

    A ``bn_recalibrate`` run starts from the plain run's network (trained or loaded the same way):
    re-estimation follows the last gradient step, so the weights before it are the plain run's.
    """
    from dgdm_lib.training import recalibrate_batchnorm, train, train_or_load

    if run.bn_recalibrate:
        plain = trained_model(dataclasses.replace(run, bn_recalibrate=False), progress)

        def recalibrate(model):
            started = time.perf_counter()
            model.load_state_dict(plain.state_dict())
            recalibrate_batchnorm(model.to(get_device()), beetle_loader(run, "train"))
            before = plain.train_result or {}
            return {**before, "seconds": (before.get("seconds") or 0.0) + time.perf_counter() - started}

        return train_or_load(run.key(), lambda: _build(run), recalibrate, run.config())

    def fit(model):
        return train(model, beetle_loader(run, "train"), epochs=run.schedule.epochs, **run.recipe.train_arguments(),
                     bn_recalibrate=run.bn_recalibrate, progress=progress, seed=run.seed, device=get_device())

    return train_or_load(run.key(), lambda: _build(run), fit, run.config())


def test_camset(run: BeetleRun, split: str = "test", keep_images: int = 16, model: torch.nn.Module | None = None):
    """CAMs of ``run``'s trained model on ``split`` (a ``dgdm_lib.evaluation.CamSet``)."""
    from dgdm_lib.evaluation import collect_cams

    model = model if model is not None else trained_model(run)
    return collect_cams(model, beetle_loader(run, split), keep_images=keep_images)


def measure(run: BeetleRun, tau: float = 0.2, progress: bool = True) -> dict[str, Any]:
    """Test metrics of ``run`` with tau chosen on val (``evaluate_val_test``), cached as JSON.

    Keys as ``dgdm_lib.evaluation.evaluate`` (percentages) plus ``tau_val``, ``gt_known_loc@tau_val``,
    ``top1_loc@tau_val``, ``train_seconds`` and the run's ``label``, ``method`` and ``seed``.
    The file stores them with their sha256; one that cannot be read, has the wrong shape or
    fails the hash (damaged, or edited by hand) is measured again, with a warning.
    """
    from dgdm_lib.evaluation import evaluate_val_test

    path = data_dir() / "results" / f"{run.result_key()}-tau{tau:g}.json"
    if path.is_file():
        metrics, problem = _read_results(path, run)
        if metrics is not None:
            return metrics
        warnings.warn(f"measuring {run.label} (seed {run.seed}) again: the cached results {path} {problem}",
                      stacklevel=2)
    model = trained_model(run, progress=progress)
    metrics = evaluate_val_test(model, beetle_loader(run, "val"), beetle_loader(run, "test"), tau=tau)
    result = getattr(model, "train_result", None) or {}
    metrics.update(label=run.label, method=run.method, seed=run.seed, pattern_contrast=run.pattern_contrast,
                   train_seconds=result.get("seconds"))
    metrics = json.loads(json.dumps(metrics, default=float))  # as a reader of the file will see them
    atomic_write_json(path, {"metrics": metrics, "sha256": _results_hash(metrics)}, indent=1)
    return metrics


def _results_hash(metrics: dict[str, Any]) -> str:
    """sha256 of the metrics as canonical JSON (keys sorted)."""
    return hashlib.sha256(json.dumps(metrics, sort_keys=True).encode()).hexdigest()


def _read_results(path: Path, run: BeetleRun) -> tuple[dict[str, Any] | None, str]:
    """The metrics a results file holds, or ``(None, what is wrong with it)``."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return None, f"cannot be read ({error.__class__.__name__}: {error})"
    metrics = stored.get("metrics") if isinstance(stored, dict) else None
    if not (isinstance(metrics, dict) and isinstance(stored.get("sha256"), str)):
        return None, "do not hold a metrics object and its sha256 (written by an older dgdm_lib, or damaged)"
    if _results_hash(metrics) != stored["sha256"]:
        return None, "do not match their sha256 (damaged, or edited by hand)"
    expected = {"label": run.label, "method": run.method, "seed": run.seed}
    if any(metrics.get(key) != value for key, value in expected.items()):
        return None, f"belong to another run (expected {expected})"
    return metrics, ""


def measure_many(runs: Iterable[BeetleRun], tau: float = 0.2) -> list[dict[str, Any]]:
    """``measure`` each run in turn (trained or loaded), with a progress bar over runs."""
    from tqdm.auto import tqdm

    runs = list(runs)
    return [measure(run, tau=tau, progress=False) for run in tqdm(runs, desc="runs", leave=False)]


def summarize(rows: Sequence[dict[str, Any]], keys: Sequence[str], by: str = "label") -> list[dict[str, Any]]:
    """Group ``rows`` by ``by`` (in first-seen order) and give mean, sd and 95% half-width per key."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[by], []).append(row)
    table = []
    for name, members in groups.items():
        entry: dict[str, Any] = {by: name, "n": len(members)}
        for key in keys:
            entry[key] = mean_sd_ci([float(m[key]) for m in members])
        table.append(entry)
    return table


def format_table(summary: Sequence[dict[str, Any]], keys: Sequence[str], by: str = "label") -> str:
    """A Markdown table of ``summarize``'s output: ``mean ± sd`` per cell (``[n=..]`` column)."""
    header = f"| {by} | n | " + " | ".join(keys) + " |"
    lines = [header, "|" + "---|" * (len(keys) + 2)]
    for entry in summary:
        cells = [f"{entry[k][0]:.1f} ± {entry[k][1]:.1f}" if entry["n"] > 1 else f"{entry[k][0]:.1f}" for k in keys]
        lines.append(f"| {entry[by]} | {entry['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _bench_accuracy() -> dict[str, Any] | None:
    """The accuracy section of docs/results.json (``make bench``), or None when it is not there."""
    try:
        return json.loads((repo_root() / "docs" / "results.json").read_text(encoding="utf-8"))["accuracy"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def bench_table(name: str = "methods") -> list[dict[str, Any]]:
    """The rows of one table of the benchmark's accuracy section (``methods``, ``block_size``,
    ``beta``, ``contrast``), each with ``row``, ``method``, ``kwargs``, ``seeds`` and per metric the
    per-seed ``values``; [] when docs/results.json does not have it."""
    accuracy = _bench_accuracy()
    try:
        return list(accuracy["tables"][name])
    except (TypeError, KeyError):
        return []


def bench_rows_by_method() -> dict[str, dict[str, Any]]:
    """The methods table's rows with each method's default settings, by method name (``cam``,
    ``sagd12``, ...); {} when docs/results.json does not have it."""
    return {row["method"]: row for row in bench_table("methods") if not row["kwargs"]}


def bench_values(row: str, key: str) -> list[float] | None:
    """The per-seed values of ``key`` for ``row`` of the methods table in docs/results.json (the
    seeds ``make bench`` ran), or None when the file or the entry is not there: the chapters'
    reference beside "your run"."""
    accuracy = _bench_accuracy()
    try:
        entry = next(r for r in accuracy["tables"]["methods"] if r["row"] == row)
        return [accuracy["runs"][k][key] for k in entry["run_keys"]]
    except (TypeError, KeyError, StopIteration):
        return None


def bench_claims() -> list[dict[str, Any]]:
    """The benchmark's claims (docs/results.md, "Which of the paper's claims hold here"): each with
    ``claim``, ``better``, ``baseline`` and per metric ``diff``, ``ci95`` and ``verdict``; [] when
    docs/results.json has none."""
    accuracy = _bench_accuracy()
    return list(accuracy.get("claims", [])) if accuracy else []


def bench_claim(better: str, baseline: str, key: str) -> dict[str, Any] | None:
    """The benchmark's verdict on ``better - baseline`` (methods-table rows) at metric ``key``
    (``diff``, ``ci95``, ``verdict``), or None when it is not there."""
    return next((c["metrics"][key] for c in bench_claims()
                 if (c.get("better"), c.get("baseline")) == (better, baseline) and key in c.get("metrics", {})), None)


def bench_text(row: str, key: str) -> str:
    """``bench_values`` as "a / b / c" for prose-side printing, or a note that they are missing."""
    values = bench_values(row, key)
    return " / ".join(f"{v:.1f}" for v in values) if values else "(not in docs/results.json)"

