"""Training a WSOL classifier: optimiser, schedule, mixed precision, checkpoints and exact resume.

``train(model, loader, epochs=...)`` runs the usual cross-entropy training of chapter 02 on
whatever yields ``(images, targets)`` batches (the cross-team batch contract). It is a small
driver over pieces, as in torchvision's reference script: ``_prepare`` (device, optimiser,
schedule, scaler), ``_start`` (resume or seed), ``train_one_epoch`` (public: one pass over the
loader, any loss) and ``_end_of_epoch`` (one log line, the checkpoint). The same function
runs under ``torchrun``: when a process group is initialised it wraps the model in
DistributedDataParallel, reduces the epoch metrics across ranks and lets rank 0 write.

Checkpoints are written atomically (``dgdm_lib.atomic``) at the end of every epoch with the
model, optimiser, scheduler, gradient scaler and every random state that the next epoch consumes
(Python, NumPy, torch CPU/CUDA, the loader's and the modules' generators), so ``resume=True``
continues bit-for-bit where the last checkpoint left off. They hold tensors and plain values only
and are read with ``torch.load(weights_only=True)``: a file that would make the loader import
anything else (a pickled object can run code) is refused with ``CheckpointError``.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from dgdm_lib.atomic import atomic_write, remove_stale_temps
from dgdm_lib.config import data_dir, get_device, seed_everything
from dgdm_lib.data.loaders import DistributedBatches
from dgdm_lib.distributed import (
    DistributedInfo,
    all_reduce_sum,
    barrier,
    distributed_info,
    init_distributed,
    is_main_process,
)

__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointError",
    "DistributedBatches",
    "DistributedInfo",
    "Recipe",
    "ResumeMismatchError",
    "TrainResult",
    "all_reduce_sum",
    "build_optimizer",
    "build_scheduler",
    "distributed_info",
    "init_distributed",
    "is_main_process",
    "load_checkpoint",
    "model_from_checkpoint",
    "recalibrate_batchnorm",
    "save_checkpoint",
    "train",
    "train_one_epoch",
    "train_or_load",
]

CHECKPOINT_NAME = "checkpoint.pt"
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("onecycle", "cosine", "step", "constant")


@dataclass(frozen=True)
class Recipe:
    """Every training setting that changes the weights, as one typed value: the arguments of
    ``train`` and the training loader's batch size and flips. The book's runs (``BeetleRun``,
    ``PhotoRun``) hash it into their cached model's key, so a changed setting trains a new model."""

    optimizer: str = "adamw"
    lr: float = 2e-3
    schedule: str = "onecycle"
    weight_decay: float = 1e-4
    momentum: float = 0.9
    new_layer_lr_mult: float = 10.0
    batch_size: int = 64
    hflip: bool = True

    def train_arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``train`` this recipe fixes."""
        return {"optimizer": self.optimizer, "lr": self.lr, "schedule": self.schedule,
                "weight_decay": self.weight_decay, "momentum": self.momentum,
                "new_layer_lr_mult": self.new_layer_lr_mult}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Recipe:
        """The recipe of a run configuration (``config.json``): its fields by name, defaults for the rest."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if values.get(f.name) is not None})


@dataclass
class TrainResult:
    """What ``train`` did: one dict per epoch (``epoch``, ``loss``, ``acc`` in percent, ``lr``,
    ``seconds``), the loss of every step (this rank), total seconds and the checkpoint written."""

    history: list[dict[str, float]] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    epochs: int = 0
    steps: int = 0
    checkpoint: Path | None = None
    resumed_from_epoch: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["checkpoint"] = str(self.checkpoint) if self.checkpoint else None
        out.pop("step_losses")
        return out


# --------------------------------------------------------------------------------------------
# Optimiser and schedule
# --------------------------------------------------------------------------------------------
def build_optimizer(
    model: nn.Module,
    name: str = "adamw",
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    momentum: float = 0.9,
    new_layer_lr_mult: float = 10.0,
) -> torch.optim.Optimizer:
    """SGD (Nesterov-free, ``momentum``) or AdamW with two parameter groups when fine-tuning.

    When some parameters came from pretrained weights (``model.pretrained_keys``), the others
    (new layers: classifier, conv6, head, SE) get ``new_layer_lr_mult * lr`` (10x by default).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    net = getattr(model, "module", model)
    pretrained = getattr(net, "pretrained_keys", frozenset())
    old = [p for n, p in net.named_parameters() if n in pretrained and p.requires_grad]
    new = [p for n, p in net.named_parameters() if n not in pretrained and p.requires_grad]
    groups = [{"params": new, "lr": lr * (new_layer_lr_mult if old else 1.0), "name": "new"}]
    if old:
        groups.insert(0, {"params": old, "lr": lr, "name": "pretrained"})
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, name: str, epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step schedule: ``onecycle`` (warm-up then cosine decay, peak = each group's lr),
    ``cosine`` (to 0), ``step`` (x0.1 at 1/2 and 3/4 of training) or ``constant``."""
    total = max(epochs * steps_per_epoch, 1)
    sched = torch.optim.lr_scheduler
    if name == "onecycle":
        peaks = [group["lr"] for group in optimizer.param_groups]
        return sched.OneCycleLR(optimizer, max_lr=peaks, total_steps=total, cycle_momentum=False)
    if name == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=total)
    if name == "step":
        return sched.MultiStepLR(optimizer, milestones=[total // 2, (3 * total) // 4], gamma=0.1)
    if name == "constant":
        return sched.LambdaLR(optimizer, lambda step: 1.0)
    raise ValueError(f"unknown schedule {name!r}: choose one of {', '.join(SCHEDULES)}")


# --------------------------------------------------------------------------------------------
# Random states and checkpoints
# --------------------------------------------------------------------------------------------
def _generators(model: nn.Module, loader: Any) -> list[torch.Generator]:
    """Every torch.Generator the next epoch draws from, in a fixed order, without duplicates."""
    found: list[torch.Generator] = []
    candidates = [getattr(loader, "generator", None)]
    for holder in (getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        candidates.append(getattr(holder, "generator", None))
    net = getattr(model, "module", model)
    modules = net.attention_modules().values() if hasattr(net, "attention_modules") else []
    candidates += [getattr(m, "generator", None) for m in modules]
    for gen in candidates:
        if isinstance(gen, torch.Generator) and all(gen is not g for g in found):
            found.append(gen)
    return found


def _rng_state(generators: list[torch.Generator]) -> dict[str, Any]:
    """Every random state the next epoch consumes, as tensors and plain values (``weights_only``)."""
    return {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": [g.get_state() for g in generators],
    }


def _numpy_state() -> dict[str, Any]:
    """NumPy's global state with its key array as an int64 tensor (an ndarray would need pickle)."""
    name, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    return {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_state(state: Mapping[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["name"], keys, state["position"], state["has_gauss"], state["cached_gaussian"]))


def _set_rng_state(state: Mapping[str, Any], generators: list[torch.Generator]) -> None:
    random.setstate(state["python"])
    _set_numpy_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    saved = state.get("generators", [])
    if len(saved) != len(generators):
        raise ValueError(
            f"checkpoint holds {len(saved)} generator states but this run has {len(generators)} "
            f"generators (loader and attention modules): resume with the same loader and model settings"
        )
    for gen, gen_state in zip(generators, saved):
        gen.set_state(gen_state)


class ResumeMismatchError(ValueError):
    """``resume=True`` found a checkpoint written with other training settings."""


class CheckpointError(ResumeMismatchError):
    """A checkpoint file cannot be used: empty, damaged, not a training checkpoint, or holding
    objects other than tensors and plain values. The message names the file and what to do.

    A ``ResumeMismatchError``, so that whoever refuses a mismatched checkpoint refuses this one too.
    """


def _plain(value: Any) -> Any:
    """``value`` in the forms ``torch.load(weights_only=True)`` accepts, for the non-tensor parts of
    a checkpoint (configurations, histories): paths become strings, NumPy scalars Python numbers,
    NumPy arrays tensors; containers are converted item by item; anything else unknown becomes its
    ``str``, as ``config.json`` records it."""
    if value is None or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.generic):
        return value.item()
    for kind in (bool, int, float, complex, str, bytes):
        if isinstance(value, kind):  # a subclass (np.float64, an enum) would pickle as its own class
            return value if type(value) is kind else kind(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    for kind in (list, tuple, set, frozenset):
        if isinstance(value, kind):
            return kind(_plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    return str(value)


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """``torch.save`` through ``dgdm_lib.atomic.atomic_write``: a reader never sees a half-written
    checkpoint, even if the process dies mid-write. ``state`` must hold tensors and plain values
    only (``_plain`` converts the rest), or ``load_checkpoint`` will refuse the file."""
    return atomic_write(path, lambda stream: torch.save(dict(state), stream))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` with ``torch.load(weights_only=True)``.

    Raises ``FileNotFoundError`` when there is no file and ``CheckpointError`` when it is empty,
    damaged, not a dict, or would make the loader import anything (a pickled object can run code):
    such a file is refused before any of it runs. Also removes temporary files that killed writers
    left next to it (``dgdm_lib.atomic.remove_stale_temps``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: train first, or pass the run folder that holds {CHECKPOINT_NAME}")
    remove_stale_temps(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001  a damaged file fails in whatever parser step it breaks
        raise _unloadable(path, error) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"cannot load checkpoint {path}: it holds a {type(state).__name__}, not the dict "
                              f"that dgdm_lib writes. {_RETRAIN}")
    return state


_RETRAIN = "Train again to rewrite it, or pass an intact checkpoint written by dgdm_lib."


def _unloadable(path: Path, error: Exception) -> CheckpointError:
    """The ``CheckpointError`` for a file ``torch.load(weights_only=True)`` failed on."""
    try:
        imports = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001  damaged too badly to list what it imports
        imports = []
    if imports:
        return CheckpointError(
            f"cannot load checkpoint {path}: it asks to import {', '.join(imports)}, but a checkpoint may only hold "
            "tensors and plain values (loading other objects can run code), so it was refused unread. Load only "
            "checkpoints written by dgdm_lib; one written by a version before weights-only checkpoints must be "
            "trained again."
        )
    if isinstance(error, PermissionError):
        return CheckpointError(f"cannot load checkpoint {path}: no permission to read it ({error.strerror})")
    if path.stat().st_size == 0:
        return CheckpointError(f"cannot load checkpoint {path}: the file is empty (was its writer stopped?). "
                               f"{_RETRAIN}")
    detail = (str(error).strip().splitlines() or [""])[0].split(". ")[0][:160]  # torch's first sentence
    return CheckpointError(f"cannot load checkpoint {path}: the file is damaged, cut short or not a PyTorch checkpoint "
                           f"({error.__class__.__name__}{': ' + detail if detail else ''}). {_RETRAIN}")


def _require_fields(state: Mapping[str, Any], fields: Iterable[str], path: Path) -> None:
    """``CheckpointError`` unless ``state`` holds every field a caller is about to read."""
    missing = [name for name in fields if name not in state]
    if missing:
        raise CheckpointError(f"cannot use checkpoint {path}: it holds no {', '.join(map(repr, missing))}, so it was "
                              f"not written by dgdm_lib.training. {_RETRAIN}")


def model_from_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a WSOLNet from a checkpoint's ``model_config`` and load its weights (eval mode)."""
    from dgdm_lib.models import build_model

    state = load_checkpoint(path, map_location)
    _require_fields(state, ("model",), Path(path))
    config = state.get("model_config")
    if not config:
        raise CheckpointError(f"cannot use checkpoint {path}: it has no model_config, so it was not written by "
                              f"dgdm_lib.training. {_RETRAIN}")
    model = build_model(**config)
    model.load_state_dict(state["model"])
    return model.eval()


# --------------------------------------------------------------------------------------------
# BatchNorm re-estimation
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, loader: Iterable, device: torch.device | str | None = None, max_batches: int | None = None
) -> int:
    """Re-estimate every BatchNorm's running mean/variance over ``loader`` with the attention
    modules switched off (cumulative average over the batches), so eval-mode statistics match the
    un-erased features the network sees at test time. Returns the number of batches used."""
    from dgdm_lib.models import attention_disabled

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    device = torch.device(device) if device is not None else next(model.parameters()).device
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    used = 0
    try:
        with attention_disabled(model):
            for images, _ in loader:
                model(images.to(device, non_blocking=True))
                used += 1
                if max_batches is not None and used >= max_batches:
                    break
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return used


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------
def _amp_dtype(amp: str | bool, device: torch.device) -> torch.dtype | None:
    if amp in (False, "off", "none", "no"):
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp in (True, "on", "bf16"):
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    raise ValueError(f"amp must be 'auto', 'bf16', 'fp16', True or False, got {amp!r}")


def _set_epoch(loader: Any, epoch: int) -> None:
    for holder in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        if hasattr(holder, "set_epoch"):
            holder.set_epoch(epoch)
            return


def _check_resume(saved: Mapping[str, Any], current: Mapping[str, Any], path: Path) -> None:
    different = {k: (saved.get(k), v) for k, v in current.items() if saved.get(k) != v}
    if different:
        details = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in different.items())
        raise ResumeMismatchError(
            f"cannot resume from {path}: the training settings differ ({details}). "
            f"Resume with the same settings, or start a new run in another folder."
        )


def _check_train_arguments(epochs: Any, lr: Any, weight_decay: Any, momentum: Any, new_layer_lr_mult: Any,
                           seed: Any) -> None:
    """``ValueError`` naming the argument for an epoch count < 1, a learning rate that is not a
    finite number > 0, a negative or non-finite weight decay, momentum or multiplier, or a negative seed."""
    import math

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    for name, value in (("weight_decay", weight_decay), ("momentum", momentum), ("new_layer_lr_mult", new_layer_lr_mult)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be an integer >= 0 or None, got {seed!r}")


@dataclass
class _Run:
    """What every epoch of one ``train`` call shares."""

    net: nn.Module
    model: nn.Module  # ``net``, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    device: torch.device
    amp_dtype: torch.dtype | None
    memory_format: torch.memory_format
    generators: list[torch.Generator]
    settings: dict[str, Any]
    path: Path | None


def train(
    model: nn.Module,
    train_loader: Iterable,
    *,
    epochs: int,
    optimizer: str = "adamw",
    lr: float = 2e-3,
    schedule: str = "onecycle",
    weight_decay: float = 1e-4,
    momentum: float = 0.9,
    new_layer_lr_mult: float = 10.0,
    device: torch.device | str | None = None,
    amp: str | bool = "auto",
    channels_last: str | bool = "auto",
    bn_recalibrate: bool = False,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    seed: int | None = 0,
    extra_state: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` (in place) for ``epochs`` passes, cross-entropy on ``(images, targets["label"])``.

    Args:
        optimizer: ``"adamw"`` or ``"sgd"`` (``build_optimizer``: new layers of a pretrained
            model get ``new_layer_lr_mult * lr``); schedule: per step (``build_scheduler``).
        device: default ``get_device()``; under torchrun, ``cuda:LOCAL_RANK`` on GPUs.
        amp: ``"auto"``: autocast on CUDA, bf16 where supported, else fp16 with a gradient
            scaler; ``False`` off; ``"bf16"``/``"fp16"`` to force one.
        channels_last: NHWC memory format; ``"auto"``: on (also on CPUs, ~30% faster there).
        bn_recalibrate: re-estimate BatchNorm statistics after training, attention modules off.
        checkpoint_dir, resume: ``checkpoint.pt`` is written there (atomically) after every epoch;
            ``resume`` continues from it when it exists (same settings).
        progress: tqdm bars and one line per epoch, on rank 0.
        seed, extra_state: the seed of a fresh run (``None``: leave the RNGs); saved with the checkpoint.

    Returns the ``TrainResult``; the model is left on ``device`` in eval mode.
    """
    _check_train_arguments(epochs, lr, weight_decay, momentum, new_layer_lr_mult, seed)
    run = _prepare(model, train_loader, epochs, optimizer, lr, schedule, weight_decay, momentum, new_layer_lr_mult,
                   device, amp, channels_last, seed, checkpoint_dir)
    result = TrainResult(epochs=epochs)
    start_epoch = _start(run, result, resume, seed)
    run.model = _wrap_distributed(model, run)
    started = time.perf_counter()
    for epoch in range(start_epoch, epochs):
        epoch_start = time.perf_counter()
        stats = train_one_epoch(run.model, train_loader, run.optimizer, run.scheduler, run.scaler, run.device,
                                epoch=epoch, epochs=epochs, amp_dtype=run.amp_dtype, memory_format=run.memory_format,
                                progress=progress)
        result.step_losses += stats.pop("step_losses")
        result.history.append({"epoch": epoch + 1, **stats, "seconds": time.perf_counter() - epoch_start})
        _end_of_epoch(run, result, epoch, epochs, progress, started, extra_state)
    if bn_recalibrate and start_epoch < epochs:
        _recalibrate_and_save(run, train_loader)
    result.seconds += time.perf_counter() - started
    result.steps = len(result.step_losses)
    result.checkpoint = run.path
    run.net.eval()
    return result


def _prepare(
    model: nn.Module, train_loader: Any, epochs: int, optimizer: str, lr: float, schedule: str, weight_decay: float,
    momentum: float, new_layer_lr_mult: float, device: torch.device | str | None, amp: str | bool,
    channels_last: str | bool, seed: int | None, checkpoint_dir: str | Path | None,
) -> _Run:  # fmt: skip
    """Device, precision, memory format, optimiser, schedule and scaler of one run."""
    info = distributed_info()
    if device is None:
        device = torch.device("cuda", info.local_rank) if info.enabled and torch.cuda.is_available() else get_device()
    device = torch.device(device)
    # "auto": on. Measured on the small net on 2 CPU cores too: ~30% faster than NCHW.
    memory_format = torch.channels_last if (channels_last == "auto" or channels_last) else torch.contiguous_format
    amp_dtype = _amp_dtype(amp, device)
    net = getattr(model, "module", model)
    net.to(device=device, memory_format=memory_format)
    steps_per_epoch = len(train_loader)
    opt = build_optimizer(net, optimizer, lr, weight_decay, momentum, new_layer_lr_mult)
    settings = {
        "epochs": epochs, "optimizer": optimizer, "lr": lr, "schedule": schedule,
        "weight_decay": weight_decay, "momentum": momentum, "new_layer_lr_mult": new_layer_lr_mult,
        "seed": seed, "world_size": info.world_size, "steps_per_epoch": steps_per_epoch,
    }  # fmt: skip
    return _Run(
        net=net, model=net, optimizer=opt, scheduler=build_scheduler(opt, schedule, epochs, steps_per_epoch),
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16), device=device,
        amp_dtype=amp_dtype, memory_format=memory_format, generators=_generators(net, train_loader),
        settings=settings, path=Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None,
    )  # fmt: skip


def _start(run: _Run, result: TrainResult, resume: bool, seed: int | None) -> int:
    """The first epoch to run: after the checkpoint's when resuming (every state restored),
    else 0 with the random number generators seeded."""
    info = distributed_info()
    if not (resume and run.path is not None and run.path.is_file()):
        if seed is not None:
            seed_everything(seed + info.rank)
        return 0
    state = load_checkpoint(run.path, map_location=run.device)
    _require_fields(state, _RESUME_FIELDS, run.path)
    _check_resume(state["train_config"], run.settings, run.path)
    run.net.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"][info.rank] if isinstance(state["rng"], list) else state["rng"], run.generators)
    result.resumed_from_epoch = state["epoch"]
    result.history = list(state["history"])
    result.step_losses = list(state["step_losses"])
    result.seconds = state.get("seconds", 0.0)
    return state["epoch"]


def _wrap_distributed(model: nn.Module, run: _Run) -> nn.Module:
    """The model the loop calls: DistributedDataParallel around the network under torchrun."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model
    if not distributed_info().enabled:
        return run.net
    ids = [run.device.index] if run.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(run.net, device_ids=ids)


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    device: torch.device,
    *,
    epoch: int,
    epochs: int,
    amp_dtype: torch.dtype | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
    progress: bool = True,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> dict[str, Any]:
    """One pass over ``loader``, stepping ``optimizer`` and the per-step ``scheduler``.

    ``loss_fn(logits, labels)`` defaults to the network's own ``training_loss`` (a ``WSOLNet``'s
    is cross-entropy), else cross-entropy. Returns this epoch's ``loss`` (mean per
    image) and ``acc`` (percent) over all ranks, the last ``lr``, and every step's loss on this rank.
    """
    from tqdm.auto import tqdm

    loss_fn = loss_fn or getattr(getattr(model, "module", model), "training_loss", None) or nn.CrossEntropyLoss()
    model.train()
    _set_epoch(loader, epoch)
    totals = torch.zeros(3, device=device, dtype=torch.float64)  # loss sum, correct, count
    losses: list[Tensor] = []
    bar = tqdm(loader, total=len(loader), desc=f"epoch {epoch + 1}/{epochs}",  # type: ignore[arg-type]
               disable=not (progress and is_main_process()), leave=False)
    for step, (images, targets) in enumerate(bar):
        images = images.to(device, non_blocking=True, memory_format=memory_format)
        labels = targets["label"].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(images)
            loss = loss_fn(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        loss = loss.detach()
        losses.append(loss)
        totals[0] += loss.double() * len(labels)
        totals[1] += (logits.argmax(1) == labels).sum()
        totals[2] += len(labels)
        if step % 20 == 0 and not bar.disable:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    totals = all_reduce_sum(totals)
    return {"loss": float(totals[0] / totals[2]), "acc": float(100.0 * totals[1] / totals[2]),
            "lr": float(scheduler.get_last_lr()[-1]), "step_losses": torch.stack(losses).tolist() if losses else []}


def _end_of_epoch(run: _Run, result: TrainResult, epoch: int, epochs: int, progress: bool, started: float,
                  extra_state: Mapping[str, Any] | None) -> None:
    """One log line on rank 0, then the checkpoint that lets the next epoch resume."""
    if progress and is_main_process():
        from tqdm.auto import tqdm

        h = result.history[-1]
        tqdm.write(f"epoch {epoch + 1}/{epochs}: loss {h['loss']:.4f} acc {h['acc']:.1f}% ({h['seconds']:.1f}s)")
    if run.path is not None:
        _write_epoch_checkpoint(run.path, run.net, run.optimizer, run.scheduler, run.scaler, run.generators,
                                run.settings, result, epoch + 1, started, extra_state)


def _recalibrate_and_save(run: _Run, train_loader: Iterable) -> None:
    """BatchNorm re-estimation after training, written into the last checkpoint."""
    recalibrate_batchnorm(run.net, train_loader, run.device)
    if run.path is not None and is_main_process():
        state = load_checkpoint(run.path, map_location="cpu")
        state["model"] = run.net.state_dict()
        state["bn_recalibrated"] = True
        save_checkpoint(run.path, state)
    barrier()


#: What ``resume=True`` reads from a checkpoint.
_RESUME_FIELDS = ("train_config", "model", "optimizer", "scheduler", "scaler", "rng", "epoch", "history",
                  "step_losses")


def _write_epoch_checkpoint(
    path: Path, net: nn.Module, opt: torch.optim.Optimizer, scheduler: Any, scaler: Any,
    generators: list[torch.Generator], settings: Mapping[str, Any], result: TrainResult,
    epoch: int, started: float, extra_state: Mapping[str, Any] | None,
) -> None:  # fmt: skip
    info = distributed_info()
    rng = _rng_state(generators)
    if info.enabled:
        gathered: list[Any] = [None] * info.world_size
        dist.all_gather_object(gathered, rng)
        rng = gathered
    if info.is_main:
        save_checkpoint(path, {
            "format": 1,
            "epoch": epoch,
            "model": net.state_dict(),
            "model_config": _plain(getattr(net, "build_config", None)),
            "optimizer": opt.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": rng,
            "train_config": _plain(dict(settings)),
            "history": _plain(result.history),
            "step_losses": result.step_losses,
            "seconds": result.seconds + time.perf_counter() - started,
            "extra": _plain(dict(extra_state or {})),
        })  # fmt: skip
    barrier()


# --------------------------------------------------------------------------------------------
# Cached training for notebooks
# --------------------------------------------------------------------------------------------
def config_hash(config: Mapping[str, Any]) -> str:
    """A short, stable hash of a JSON-able configuration (keys sorted)."""
    text = json.dumps(dict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def train_or_load(
    name: str,
    build_fn: Callable[[], nn.Module],
    train_fn: Callable[[nn.Module], Any],
    config: Mapping[str, Any],
    cache_dir: str | Path | None = None,
) -> nn.Module:
    """Return a trained model, training it only when the cache has none for this configuration.

    The cache file is ``<data_dir>/models/<name>.pt``, keyed by a hash of ``config``, which must
    hold everything that determines the weights. A missing, unreadable or stale file (different hash) is retrained and
    rewritten atomically. ``build_fn()`` makes a fresh model; ``train_fn(model)`` trains it in
    place; its return value, a ``TrainResult`` or a dict like ``TrainResult.to_dict()``, is kept
    as ``model.train_result``.
    """
    full = dict(config)
    key = config_hash(full)
    path = Path(cache_dir) if cache_dir is not None else data_dir() / "models"
    path = path / f"{name}.pt"
    model = build_fn()
    if path.is_file():
        try:
            cached = load_checkpoint(path)
            if cached.get("hash") == key:
                model.load_state_dict(cached["model"])
                model.train_result = cached.get("train_result")
                return model.eval()
        except (CheckpointError, OSError, RuntimeError, KeyError) as error:
            warnings.warn(f"ignoring unreadable cached model {path}: {error}", stacklevel=2)
    outcome = train_fn(model)
    if isinstance(outcome, TrainResult):
        outcome = outcome.to_dict()
    model.train_result = dict(outcome) if isinstance(outcome, Mapping) else None
    net = getattr(model, "module", model)
    save_checkpoint(path, {
        "hash": key, "config": _plain(full), "model": net.state_dict(),
        "model_config": _plain(getattr(net, "build_config", None)), "train_result": _plain(model.train_result),
    })  # fmt: skip
    return model.eval()
