"""A run's configuration and its data: ``RunConfig``, one typed value for what the command line,
``config.json`` and the book's runs (``BeetleRun.run_config()``) train and evaluate; and
``make_data(config) -> RunData``, the loaders of train, val and test for the beetles or a real
dataset, built in one call. Every image file of every split is checked to exist before anything
trains.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from dgdm_lib.data import (
    CUB200,
    BeetlesConfig,
    BeetlesTensors,
    StanfordCars,
    WSOLMetadataDataset,
    beetles_loader,
    collate_wsol,
    load_beetles,
    standard_transforms,
)
from dgdm_lib.data.errors import AnnotationError, DatasetLayoutError
from dgdm_lib.data.loaders import DistributedBatches
from dgdm_lib.data.wsol_metadata import OBTAIN
from dgdm_lib.distributed import distributed_info
from dgdm_lib.evaluation import protocol_defaults
from dgdm_lib.models import ARCHS
from dgdm_lib.training import Recipe

__all__ = ["RunConfig", "RunData", "make_data", "run_protocol"]


@dataclass(frozen=True)
class RunConfig:
    """Everything one run is: the model, the training recipe, the data and the evaluation.

    The command line builds it from its options (``python -m dgdm_lib train --help`` lists them
    with these names, dashes for underscores), writes it flat to ``config.json`` (``to_json``: the
    recipe's fields sit beside the others, as the options do) and reads it back (``from_mapping``,
    which also takes older files: missing keys get defaults, extra keys such as ``num_classes`` are
    ignored). ``BeetleRun.run_config()`` gives a book run's. ``module_args`` are ``(name, value)``
    pairs for the method's module (``--set``).
    """

    # the model
    method: str = "cam"
    arch: str = "small"
    positions: tuple[str, ...] | None = None
    module_args: tuple[tuple[str, Any], ...] = ()
    pretrained: str = "auto"
    freeze: str = "auto"
    # training: what changes the weights (``recipe``: optimiser, lr, schedule, batch size, flips...)
    # and how to run
    seed: int = 0
    epochs: int = 6
    recipe: Recipe = Recipe()
    amp: str = "auto"
    bn_recalibrate: bool = False
    device: str | None = None
    resume: bool = False
    progress: bool = True
    out: str = ""
    # evaluation (``upsample`` / ``boxes``: the protocol; "auto" is resolved for the dataset)
    evaluate: bool = True
    tau: float = 0.2
    upsample: str = "auto"
    boxes: str = "auto"
    eval_batch_size: int = 256
    # data
    dataset: str = "beetles"
    data_root: str | None = None
    metadata_root: str | None = None
    wsol_name: str = "CUB"
    image_size: int | None = None
    workers: int = 0
    pattern_contrast: float = 0.09
    context_p: float = 0.0
    data_seed: int = 0
    train_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    classes: int | tuple[str, ...] | None = None
    val_per_class: int = 5

    def __post_init__(self) -> None:
        for name, value in run_protocol(self.dataset, self.upsample, self.boxes).items():
            object.__setattr__(self, name, value)

    def to_json(self) -> dict[str, Any]:
        """Flat and JSON-ready: the keys of ``config.json``."""
        fields = dataclasses.asdict(self)
        return _plain({**fields, **fields.pop("recipe")})

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RunConfig:
        """A configuration from ``config.json`` (or any flat mapping): known keys, lists made tuples."""
        known = {f.name for f in dataclasses.fields(cls)} - {"recipe"}
        return cls(recipe=Recipe.from_mapping(values), **{k: _frozen(v) for k, v in values.items() if k in known})

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes``; a recipe field (``lr=...``) changes the recipe."""
        recipe_fields = {f.name for f in dataclasses.fields(Recipe)}
        recipe = {k: changes.pop(k) for k in list(changes) if k in recipe_fields}
        if recipe:
            changes["recipe"] = dataclasses.replace(changes.get("recipe", self.recipe), **recipe)
        return dataclasses.replace(self, **{k: _frozen(v) for k, v in changes.items()})


def run_protocol(dataset: str, upsample: str = "auto", boxes: str = "auto") -> dict[str, str]:
    """The evaluation protocol of a run on ``dataset``, "auto" resolved (``protocol_defaults``).
    Raises ``ValueError`` for ``"reference"`` boxes on the beetles, which carry no annotation to convert."""
    real = dataset != "beetles"
    if boxes == "reference" and not real:
        raise ValueError("it converts annotations of real photographs; the beetles' boxes are exact pixel boxes: "
                         "use edges (or auto)")
    default_upsample, default_boxes = protocol_defaults(real)
    return {"upsample": default_upsample if upsample == "auto" else upsample,
            "boxes": default_boxes if boxes == "auto" else boxes}


def _frozen(value: Any) -> Any:
    """Lists (from JSON or argparse) as tuples, so a configuration is hashable and compares equal."""
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def as_run_config(cfg: RunConfig | Mapping[str, Any]) -> RunConfig:
    """``cfg`` itself, or the ``RunConfig`` of a mapping (a ``config.json`` read back)."""
    return cfg if isinstance(cfg, RunConfig) else RunConfig.from_mapping(cfg)


@dataclass
class RunData:
    """The loaders of one run; ``train`` is None when only evaluating."""

    train: Any
    val: Any
    test: Any
    num_classes: int
    tau_split: str  # which split the threshold is chosen on


def _num_classes(dataset: Any) -> int:
    return int(getattr(dataset, "num_classes", 0) or len(dataset.classes))


def _beetles_data(cfg: RunConfig, train: bool) -> RunData:
    bcfg = BeetlesConfig(pattern_contrast=cfg.pattern_contrast, context_p=cfg.context_p)
    common = {"config": bcfg, "root": cfg.data_root, "base_seed": cfg.data_seed}
    _generate_on_rank_zero_first(common, cfg)
    val = beetles_loader("val", cfg.eval_batch_size, size=cfg.val_size, **common)
    test = beetles_loader("test", cfg.eval_batch_size, size=cfg.test_size, **common)
    loader = None
    if train:
        info = distributed_info()
        if info.enabled:
            tensors = BeetlesTensors(load_beetles("train", size=cfg.train_size, **common), split="train")
            loader = DistributedBatches(tensors, cfg.recipe.batch_size, hflip=cfg.recipe.hflip, seed=cfg.seed)
        else:
            loader = beetles_loader("train", cfg.recipe.batch_size, seed=cfg.seed, hflip=cfg.recipe.hflip,
                                    size=cfg.train_size, **common)
    return RunData(loader, val, test, bcfg.num_classes, "val")


def _generate_on_rank_zero_first(common: dict[str, Any], cfg: RunConfig) -> None:
    """Under torchrun, rank 0 generates and caches the splits while the others wait, so no two
    processes write the same cache files."""
    info = distributed_info()
    if not info.enabled:
        return
    if info.is_main:
        for split in ("train", "val", "test"):
            load_beetles(split, size=getattr(cfg, f"{split}_size"), **common)
    dist.barrier()


def _torch_loader(dataset: Any, cfg: RunConfig, train: bool) -> Any:
    batch = cfg.recipe.batch_size if train else cfg.eval_batch_size
    if train and distributed_info().enabled:
        sampler = DistributedSampler(dataset, shuffle=True, seed=cfg.seed)
        return DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=cfg.workers,
                          collate_fn=collate_wsol, pin_memory=torch.cuda.is_available(), persistent_workers=cfg.workers > 0)
    generator = torch.Generator().manual_seed(cfg.seed) if train else None
    return DataLoader(dataset, batch_size=batch, shuffle=train, generator=generator, num_workers=cfg.workers,
                      collate_fn=collate_wsol, pin_memory=torch.cuda.is_available(), persistent_workers=cfg.workers > 0)


def _real_data(cfg: RunConfig, train: bool) -> RunData:
    crop = cfg.image_size or ARCHS[cfg.arch].input_size
    resize = round(crop * 256 / 224)
    tf_train, tf_test = standard_transforms(True, resize, crop, hflip=cfg.recipe.hflip), standard_transforms(False, resize, crop)
    root = cfg.data_root
    if cfg.dataset == "wsol":
        def make(split: str, tf: Any) -> Any:
            return WSOLMetadataDataset(root, cfg.metadata_root, split, tf, dataset=cfg.wsol_name)

        train_set, val_set, test_set = make("train", tf_train), make("val", tf_test), make("test", tf_test)
        split = "val"
    elif cfg.dataset == "cub":
        subset = {"classes": cfg.classes, "val_per_class": cfg.val_per_class}
        train_set, test_set = CUB200(root, "train", tf_train, **subset), CUB200(root, "test", tf_test, **subset)
        if subset["val_per_class"] > 0:
            val_set, split = CUB200(root, "val", tf_test, **subset), "val"
        else:
            val_set, split = test_set, "test"
            print("note: --val-per-class 0: tau is chosen on test (optimistic).", file=sys.stderr)
    else:
        train_set, test_set = StanfordCars(root, "train", tf_train), StanfordCars(root, "test", tf_test)
        val_set, split = test_set, "test"
        print(f"note: {cfg.dataset} has no validation split here; tau is chosen on test (optimistic). "
              "Use --dataset wsol with wsolevaluation's metadata for a separate validation split.", file=sys.stderr)
    _check_splits(cfg, train_set if train else None, val_set, test_set)
    return RunData(
        _torch_loader(train_set, cfg, True) if train else None,
        _torch_loader(val_set, cfg, False), _torch_loader(test_set, cfg, False), _num_classes(train_set), split,
    )


def _check_splits(cfg: RunConfig, train_set: Any, val_set: Any, test_set: Any) -> None:
    """Before the first training step: every image file of every split is on disk (``os.path``
    checks, nothing decoded), the evaluation splits' labels are classes the model has, and a
    wsolevaluation val/test split has the boxes evaluation needs."""
    for dataset in (train_set, val_set, test_set):
        if dataset is not None and hasattr(dataset, "check_files"):
            dataset.check_files()
    if cfg.dataset != "wsol":
        return

    classes = _num_classes(train_set) if train_set is not None else None
    for name, dataset in (("val", val_set), ("test", test_set)):
        if cfg.evaluate and not (dataset.folder / "localization.txt").is_file():
            raise DatasetLayoutError(f"wsolevaluation metadata ({name})", dataset.folder,
                                     ["image_ids.txt", "class_labels.txt", "localization.txt"],
                                     OBTAIN + " Evaluation needs the boxes of this split.",
                                     missing=["localization.txt"])
        for image_id, label in dataset.labels.items():
            if classes is not None and label >= classes:
                raise AnnotationError(dataset.folder / "class_labels.txt", None,
                                      f"label {label} is not a class of the training split (labels 0..{classes - 1})",
                                      image_id)


def make_data(cfg: RunConfig | Mapping[str, Any], train: bool = True) -> RunData:
    """The loaders of the run ``cfg`` describes (``train=False``: val and test only); a mapping
    (a ``config.json`` read back) is read as a ``RunConfig``."""
    cfg = as_run_config(cfg)
    return _beetles_data(cfg, train) if cfg.dataset == "beetles" else _real_data(cfg, train)
