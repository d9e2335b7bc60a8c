"""Class activation maps (Zhou et al., CVPR 2016), docs/methods.md and chapter 02.

``CAM_k = sum_c W[k, c] * F[c]`` from the last conv features ``F`` (B, C, h, w) and the classifier
weight ``W`` (K, C) that follows global average pooling: no bias, no ReLU. For localization the map
is upsampled to the input size and min-max normalised per image to [0, 1].

GT-known CAMs use the ground-truth class; Top-1 CAMs use the predicted class ``logits.argmax(1)``.
For a network of your own, ``capture_features`` hooks the layer that gives ``F``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

__all__ = [
    "FeatureCapture",
    "capture_features",
    "class_activation_maps",
    "localization_cams",
    "normalize_cams",
    "upsample_cams",
]

_MODES = ("bilinear", "bicubic", "nearest")


def class_activation_maps(features: Tensor, weight: Tensor, classes: Tensor) -> Tensor:
    """Raw CAMs ``CAM_k = sum_c W[k, c] F[c]`` for one class ``k`` per image.

    Args:
        features: ``F`` (B, C, h, w), last conv features before global average pooling.
        weight: ``W`` (K, C), the linear classifier's weight (its bias is not used).
        classes: (B,) class index per image: the GT class (GT-known) or the predicted one (Top-1).

    Returns:
        (B, h, w) maps, not upsampled, not normalised.
    """
    if features.dim() != 4:
        raise ValueError(f"features F must be (B, C, h, w), got shape {tuple(features.shape)}")
    if weight.dim() != 2 or weight.shape[1] != features.shape[1]:
        raise ValueError(
            f"classifier weight W must be (K, C) with C = {features.shape[1]} channels of F, got shape "
            f"{tuple(weight.shape)}: pass the weight of the linear layer that follows global average pooling"
        )
    classes = torch.as_tensor(classes, device=weight.device).long().reshape(-1)
    if classes.numel() != features.shape[0]:
        raise ValueError(f"need one class per image: {features.shape[0]} images, {classes.numel()} classes")
    if classes.numel() and (classes.min() < 0 or classes.max() >= weight.shape[0]):
        raise ValueError(f"class indices must lie in [0, {weight.shape[0] - 1}], got {classes.tolist()}")
    class_weights = weight[classes].to(features.dtype)
    return torch.einsum("bc,bchw->bhw", class_weights, features)


def upsample_cams(cams: Tensor, size: tuple[int, int], mode: str = "bilinear") -> Tensor:
    """Resize CAMs (B, h, w) to ``size`` = (H, W) of the input image: (B, H, W).

    ``mode`` is ``"bilinear"`` (default), ``"bicubic"`` or ``"nearest"``; ``align_corners=False``.
    Bicubic can overshoot the original range, which ``normalize_cams`` then absorbs.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
    if cams.dim() != 3:
        raise ValueError(f"cams must be (B, h, w), got shape {tuple(cams.shape)}")
    options: dict[str, Any] = {} if mode == "nearest" else {"align_corners": False}
    maps = cams[:, None] if cams.is_floating_point() else cams[:, None].float()
    return nnf.interpolate(maps, size=tuple(size), mode=mode, **options)[:, 0]


def normalize_cams(cams: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """Min-max normalise each map to [0, 1]: ``(CAM - min) / (max - min)``; a constant map gives zeros.

    Accepts (B, H, W) or a single (H, W) map, as a tensor or a NumPy array (the type is kept).
    """
    if isinstance(cams, np.ndarray):
        return normalize_cams(torch.from_numpy(cams)).numpy()
    if cams.dim() not in (2, 3):
        raise ValueError(f"cams must be (B, H, W) or (H, W), got shape {tuple(cams.shape)}")
    flat = cams.reshape(-1 if cams.dim() == 3 else 1, cams.shape[-2] * cams.shape[-1])
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    safe_span = torch.where(span > 0, span, torch.ones_like(span))
    normalised = torch.where(span > 0, (flat - low) / safe_span, torch.zeros_like(flat))
    return normalised.clamp_(0.0, 1.0).reshape(cams.shape)


def localization_cams(
    features: Tensor, weight: Tensor, classes: Tensor, size: tuple[int, int], mode: str = "bilinear"
) -> Tensor:
    """The localization maps of docs/methods.md and chapter 02: CAMs upsampled to ``size`` and normalised, (B, H, W)."""
    return normalize_cams(upsample_cams(class_activation_maps(features, weight, classes), size, mode))


class FeatureCapture:
    """Holds the output of a hooked layer; ``output`` is the last value seen (or raises)."""

    def __init__(self) -> None:
        self._output: Tensor | None = None

    def __call__(self, module: nn.Module, inputs: Any, output: Tensor) -> None:
        self._output = output

    @property
    def output(self) -> Tensor:
        if self._output is None:
            raise RuntimeError(
                "no features captured yet: run the model's forward inside the `with capture_features(layer)` block"
            )
        return self._output


@contextmanager
def capture_features(module: nn.Module) -> Iterator[FeatureCapture]:
    """Hook ``module`` and record its output ``F`` during forwards inside the block.

    The hook is removed on leaving the block, even after an error, so re-running a notebook cell
    never stacks hooks::

        with capture_features(model.layer4) as store:
            logits = model(images)
        cams = class_activation_maps(store.output, model.fc.weight, logits.argmax(1))
    """
    store = FeatureCapture()
    handle = module.register_forward_hook(store)
    try:
        yield store
    finally:
        handle.remove()
