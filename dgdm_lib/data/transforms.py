"""Image transforms that carry boxes and masks (torchvision v2), and the normalisation constants.

Boxes travel as ``tv_tensors.BoundingBoxes`` (XYXY, pixel edges) and masks as ``tv_tensors.Mask``,
so every resize, crop and flip moves them with the image: the boxes a batch holds are always in
the frame of the image the network sees (docs/methods.md, "Metrics").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

#: ImageNet statistics, used for every dataset (the beetles' colour statistics are close enough).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _to_float_normalized(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]


def standard_transforms(train: bool, resize: int = 256, crop: int = 224, hflip: bool = True) -> v2.Compose:
    """The usual WSOL transforms (as in "Evaluating WSOL Methods Right").

    train: resize to (resize, resize), random crop (crop, crop), horizontal flip with p = 0.5 (unless
    ``hflip`` is False);
    test: resize to (crop, crop). Then float in [0, 1] and ImageNet normalisation. Boxes are
    clamped to the image after the crop, and a box the crop removed entirely is dropped.
    """
    if crop > resize:
        raise ValueError(
            f"crop ({crop}) must not exceed resize ({resize}): the random crop is taken from the resized image"
        )
    if train:
        geometry = [
            v2.Resize((resize, resize), antialias=True),
            v2.RandomCrop(crop),
            *([v2.RandomHorizontalFlip(p=0.5)] if hflip else []),
            v2.ClampBoundingBoxes(),
            v2.SanitizeBoundingBoxes(min_size=1, labels_getter=None),
        ]
    else:
        geometry = [v2.Resize((crop, crop), antialias=True)]
    return v2.Compose([v2.ToImage(), *geometry, *_to_float_normalized(IMAGENET_MEAN, IMAGENET_STD)])


def beetles_transforms(train: bool, hflip_p: float = 0.5) -> v2.Compose:
    """Beetles images stay at their native size; train adds a horizontal flip. Normalised as ImageNet."""
    flips = [v2.RandomHorizontalFlip(p=hflip_p)] if train and hflip_p > 0 else []
    return v2.Compose([v2.ToImage(), *flips, *_to_float_normalized(IMAGENET_MEAN, IMAGENET_STD)])


def _channel_stats(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (-1, 1, 1) if images.dim() == 3 else (1, -1, 1, 1)
    m = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(shape)
    s = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(shape)
    return m, s


def normalize(
    images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """uint8 (or float in [0, 1]) images (B, 3, H, W) or (3, H, W) -> float32 network input."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    m, s = _channel_stats(x, mean, std)
    return (x - m) / s


def denormalize(
    images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """Network input (B, 3, H, W) or (3, H, W) -> float images in [0, 1] for display."""
    m, s = _channel_stats(images, mean, std)
    return (images.float() * s + m).clamp(0.0, 1.0)
