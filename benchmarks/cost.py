"""Cost: forward + backward step time of each module alone and of each backbone with and without
ADL / DGDM at the standard insertion points.

Variants of one comparison run in the same process, interleaved: every repetition times one step
of each variant, in an order rotated from one repetition to the next, so a burst of load from
elsewhere hits all of them alike. The ratio to the plain backbone is taken within a repetition;
the page reports its median and quartiles over repetitions.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import nn

#: The paper claims "no computation overhead"; the issue's targets for DGDM / backbone.
TARGET_RATIO = {"cpu": 1.05, "cuda": 1.03}


@dataclass(frozen=True)
class BackboneCase:
    arch: str
    size: int
    batch: int


CPU_BACKBONES = (BackboneCase("small", 64, 64), BackboneCase("vgg16", 224, 2), BackboneCase("resnet50", 224, 2))
CUDA_BACKBONES = (BackboneCase("small", 64, 256), BackboneCase("vgg16", 224, 32), BackboneCase("resnet50", 224, 32))
BACKBONE_METHODS = ("cam", "adl", "dgdm")
MODULE_SHAPE = (64, 512, 14, 14)


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    if len(ordered) == 1:
        return {"median": ordered[0], "q25": ordered[0], "q75": ordered[0], "min": ordered[0], "max": ordered[0]}
    q = statistics.quantiles(ordered, n=4, method="inclusive")
    return {"median": statistics.median(ordered), "q25": q[0], "q75": q[2], "min": ordered[0], "max": ordered[-1]}


def median_interval(values: Sequence[float], level: float = 0.95, resamples: int = 2000,
                    seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median of ``values`` (seeded, so the page is reproducible
    from the same timings)."""
    rng = random.Random(seed)
    n = len(values)
    medians = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(resamples))
    tail = (1.0 - level) / 2.0
    return medians[int(tail * (resamples - 1))], medians[int((1.0 - tail) * (resamples - 1))]


def ratio_summary(ratios: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, extremes and the 95% bootstrap interval of the median of per-repetition ratios."""
    low, high = median_interval(ratios)
    return {**_quantiles(ratios), "ci_low": low, "ci_high": high}


def verdict(ratio: dict[str, float], target: float) -> str:
    """``"below target"`` or ``"above target"`` when the 95% interval of the median ratio lies on one
    side of ``target``; ``"not resolved"`` when the timing noise leaves it straddling the target."""
    low, high = ratio.get("ci_low", ratio["median"]), ratio.get("ci_high", ratio["median"])
    if high < target:
        return "below target"
    if low > target:
        return "above target"
    return "not resolved"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(steps: dict[str, Callable[[], None]], reps: int, warmup: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds per call of each step, ``reps`` rounds, each round calling every step once in a
    rotated order (after ``warmup`` untimed rounds)."""
    names = list(steps)
    times: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(warmup + reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            _sync(device)
            began = time.perf_counter()
            steps[name]()
            _sync(device)
            if rep >= warmup:
                times[name].append(time.perf_counter() - began)
    return times


def _autocast(device: torch.device, amp: bool):
    if not amp:
        return nullcontext()
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def module_cases(generator_seed: int = 0) -> dict[str, nn.Module]:
    """The paper's modules and the control, with their default hyperparameters, in train mode."""
    from dgdm_lib.modules import ADL, CAGD, DGDM, SAGD, RandomDropBlock

    return {
        "ADL": ADL(),
        "CAGD": CAGD(),
        "SAGD stage 1": SAGD(),
        "SAGD stage 1+2": SAGD(delta_l=0.1),
        "DGDM": DGDM(),
        "RandomDropBlock": RandomDropBlock(block_size=3),
    }


def time_modules(device: torch.device, shape: Sequence[int] = MODULE_SHAPE, reps: int = 15, warmup: int = 3,
                 seed: int = 0) -> dict[str, Any]:
    """Forward + backward of each module alone on a rectified random ``F`` of ``shape``."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    base = torch.randn(*shape, generator=gen).relu().to(device)
    grad = torch.randn(*shape, generator=gen).to(device)
    torch.manual_seed(seed)
    steps: dict[str, Callable[[], None]] = {}

    def step_for(module: nn.Module) -> Callable[[], None]:
        module.train()

        def step() -> None:
            features = base.detach().requires_grad_(True)
            module(features).backward(grad)

        return step

    steps["identity (F * 1)"] = step_for(_Identity())
    for name, module in module_cases().items():
        steps[name] = step_for(module.to(device))
    times = interleaved(steps, reps, warmup, device)
    return {"shape": list(shape), "reps": reps,
            "ms": {name: {k: v * 1000 for k, v in _quantiles(t).items()} for name, t in times.items()}}


class _Identity(nn.Module):
    """A reference with the same autograd bookkeeping as a mask: ``F * 1``."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features * 1.0


def _train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
                amp: bool) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        with _autocast(device, amp):
            loss = nnf.cross_entropy(model(images).float(), labels)
        loss.backward()

    return step


def time_backbone(case: BackboneCase, device: torch.device, methods: Sequence[str] = BACKBONE_METHODS,
                  reps: int = 10, warmup: int = 2, amp: bool = False, seed: int = 0) -> dict[str, Any]:
    """One training step (forward, cross-entropy, backward; no optimiser) of ``case.arch`` with
    each method at its default insertion points, channels-last as ``dgdm_lib.training`` trains."""
    from dgdm_lib.models import ARCHS, build_model

    torch.manual_seed(seed)
    num_classes = ARCHS[case.arch].num_classes if case.arch == "small" else 200
    reference = build_model(case.arch, "cam", num_classes=num_classes)
    state = reference.state_dict()
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(case.batch, 3, case.size, case.size, generator=gen)
    labels = torch.randint(0, num_classes, (case.batch,), generator=gen)
    images = images.to(device).contiguous(memory_format=torch.channels_last)
    labels = labels.to(device)
    steps = {}
    positions = {}
    for method in methods:
        model = reference if method == "cam" else build_model(case.arch, method, num_classes=num_classes)
        model.load_state_dict(state)
        model.to(device=device, memory_format=torch.channels_last).train()
        positions[method] = list(model.positions)
        steps[method] = _train_step(model, images, labels, device, amp)
    times = interleaved(steps, reps, warmup, device)
    base = times["cam"]
    out: dict[str, Any] = {"arch": case.arch, "input": case.size, "batch": case.batch, "amp": amp, "reps": reps,
                           "positions": positions, "ms": {}, "ratio": {}}
    for method in methods:
        out["ms"][method] = {k: v * 1000 for k, v in _quantiles(times[method]).items()}
        if method != "cam":
            out["ratio"][method] = ratio_summary([t / b for t, b in zip(times[method], base)])
    return out


def time_forward_share(device: torch.device, batch: int = 64, backbone_reps: int = 3, module_reps: int = 30,
                       seed: int = 0) -> dict[str, Any]:
    """One DGDM forward (train mode) on ``F`` of shape (batch, 512, 14, 14), the map VGG16-GAP's
    conv5_3 gives at 224 px, against one VGG16-GAP forward of the same batch; no gradients, both
    channels-last. The methods issue asks for a share under 5% on CPU."""
    from dgdm_lib.models import build_model
    from dgdm_lib.modules import DGDM

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_model("vgg16", "cam", num_classes=200).to(device=device, memory_format=torch.channels_last).train()
    images = torch.randn(batch, 3, 224, 224, generator=gen).to(device).contiguous(memory_format=torch.channels_last)
    features = torch.randn(batch, 512, 14, 14, generator=gen).relu().to(device)
    features = features.contiguous(memory_format=torch.channels_last)
    module = DGDM().train()
    with torch.no_grad():
        backbone = interleaved({"vgg16": lambda: model(images)}, backbone_reps, 1, device)["vgg16"]
        dgdm = interleaved({"dgdm": lambda: module(features)}, module_reps, 3, device)["dgdm"]
    vgg_ms, dgdm_ms = (statistics.median(t) * 1000 for t in (backbone, dgdm))
    return {"batch": batch, "backbone_reps": backbone_reps, "module_reps": module_reps,
            "vgg16_forward_ms": _quantiles([t * 1000 for t in backbone]),
            "dgdm_forward_ms": _quantiles([t * 1000 for t in dgdm]), "share": dgdm_ms / vgg_ms}


def run_cost(
    devices: Sequence[str] | None = None,
    backbones: dict[str, Sequence[BackboneCase]] | None = None,
    module_reps: int = 60,
    module_shape: Sequence[int] = MODULE_SHAPE,
    backbone_reps: dict[str, int] | None = None,
    log: Callable[[str], None] = print,
    forward_share: int = 64,
) -> dict[str, Any]:
    """The cost section: CPU always, CUDA (with AMP) when present."""
    from benchmarks.environment import load_average

    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    backbones = backbones or {"cpu": CPU_BACKBONES, "cuda": CUDA_BACKBONES}
    # The small net's step (~0.16 s on 2 cores) varies by +-7% from one step to the next on a shared
    # machine: 120 repetitions pin its median ratio to about +-0.015.
    backbone_reps = backbone_reps or {"small": 120, "vgg16": 10, "resnet50": 10}
    out: dict[str, Any] = {"devices": {}}
    for name in devices:
        device = torch.device(name)
        threads = torch.get_num_threads()
        label = (torch.cuda.get_device_name(device) if device.type == "cuda"
                 else f"CPU, {threads} torch thread{'s' if threads != 1 else ''}")
        entry: dict[str, Any] = {"device": label, "threads": torch.get_num_threads(), "load_before": load_average()}
        began = time.perf_counter()
        log(f"[cost] {name}: modules alone on {tuple(module_shape)} ...")
        entry["modules"] = time_modules(device, module_shape, reps=module_reps if name == "cpu" else 3 * module_reps)
        if forward_share:
            log(f"[cost] {name}: one DGDM forward against one VGG16-GAP forward, batch {forward_share} ...")
            entry["forward_share"] = time_forward_share(device, batch=forward_share)
            log(f"[cost]   DGDM adds {100 * entry['forward_share']['share']:.2f}% to the VGG16-GAP forward")
        entry["backbones"] = []
        amp_modes = (False, True) if device.type == "cuda" else (False,)
        for case in backbones[device.type]:
            for amp in amp_modes:
                reps = backbone_reps.get(case.arch, 10) * (3 if device.type == "cuda" else 1)
                log(f"[cost] {name}: {case.arch} {case.size}px batch {case.batch}{' AMP' if amp else ''}, {reps} reps ...")
                row = time_backbone(case, device, reps=reps, amp=amp)
                entry["backbones"].append(row)
                ratios = ", ".join(f"{m} x{r['median']:.3f}" for m, r in row["ratio"].items())
                log(f"[cost]   cam {row['ms']['cam']['median']:.1f} ms/step; {ratios}")
        entry["seconds"] = round(time.perf_counter() - began, 1)
        entry["load_after"] = load_average()
        entry["target_ratio"] = TARGET_RATIO[device.type]
        out["devices"][name] = entry
    return out
