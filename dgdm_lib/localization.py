"""From a normalised CAM to boxes, and box IoU (docs/methods.md, "Metrics").

The box rule follows the reference evaluator of "Evaluating WSOL Methods Right" (Choe et al.,
``wsolevaluation``) exactly, quirks included, so numbers compare with published ones:

1. the map (values in [0, 1]) is quantised to ``uint8`` as ``floor(map * 255)``;
2. a pixel is foreground when its quantised value is *strictly above* ``int(tau * max)``, where
   ``max`` is the largest quantised value of this map (so ``tau`` is relative to the peak);
3. regions are OpenCV contours (``RETR_TREE``, so hole boundaries count as contours too); the
   largest by ``cv2.contourArea`` is kept, or all of them in the multi-contour variant;
4. a contour's box is ``x, y, x + w, y + h`` from ``cv2.boundingRect``, clipped to ``W - 1, H - 1``
   (one pixel wider and taller than the region unless clipped: the reference's convention);
5. no foreground gives the box ``[0, 0, 0, 0]``.

Boxes here are *inclusive integer pixel* boxes ``x0, y0, x1, y1``. Datasets and transforms use
pixel-edge ``XYXY`` boxes instead. Two conversions exist (docs/methods.md, "Box conventions"):
``reference_boxes`` is the reference evaluator's (keep ``x + w``, scale with ``int()``; the default
for real photographs), ``edges_to_inclusive`` the library's own (``round``, then ``x1 - 1``; the
beetles, whose boxes are exact pixel boxes).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

__all__ = [
    "box_iou",
    "boxes_at_thresholds",
    "boxes_from_cam",
    "edges_to_inclusive",
    "foreground_mask",
    "inclusive_to_edges",
    "largest_region_box",
    "quantize_cam",
    "reference_boxes",
    "region_boxes",
    "threshold_binaries",
]

NO_BOX = np.zeros((1, 4), dtype=np.int64)


def _as_numpy(array: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(array, Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def quantize_cam(cam: Tensor | np.ndarray) -> np.ndarray:
    """The reference's ``uint8`` map ``floor(cam * 255)`` of a normalised CAM (H, W) in [0, 1].

    The product is taken in float64, as the reference does with its float maps.
    """
    cam = _as_numpy(cam)
    if cam.ndim != 2:
        raise ValueError(f"a CAM must be one (H, W) map, got shape {cam.shape}")
    cam = cam.astype(np.float64, copy=False)
    if np.isnan(cam).any():
        raise ValueError("the CAM contains NaN: check the network output before normalising")
    if cam.size and (cam.min() < 0.0 or cam.max() > 1.0):
        raise ValueError(
            f"a CAM for boxes must lie in [0, 1], got min {cam.min():.4g}, max {cam.max():.4g}: "
            f"normalise it first with dgdm_lib.cam.normalize_cams"
        )
    return (cam * 255).astype(np.uint8)


def _cut(tau: float, peak: int) -> int:
    """The quantised cut ``int(tau * max)``; pixels strictly above it are foreground."""
    return int(float(tau) * float(peak))


def foreground_mask(cam: Tensor | np.ndarray, tau: float) -> np.ndarray:
    """Bool (H, W): pixels whose quantised value is strictly above ``int(tau * max)``."""
    quantised = quantize_cam(cam)
    return quantised > _cut(tau, int(quantised.max(initial=0)))


def region_boxes(binary: np.ndarray) -> tuple[np.ndarray, int]:
    """Boxes (n, 4) of every OpenCV contour (``RETR_TREE``) of a binary ``uint8`` map (H, W), in
    OpenCV's order, and the index of the largest contour by ``cv2.contourArea`` (the first of equal
    areas, as the reference's ``max``). No contour gives ``([[0, 0, 0, 0]], 0)``."""
    height, width = binary.shape
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if len(contours) == 0:
        return NO_BOX.copy(), 0
    largest = int(np.argmax([cv2.contourArea(contour) for contour in contours]))
    boxes = np.array([cv2.boundingRect(contour) for contour in contours], dtype=np.int64).reshape(-1, 4)
    boxes[:, 2] = np.minimum(boxes[:, 0] + boxes[:, 2], width - 1)
    boxes[:, 3] = np.minimum(boxes[:, 1] + boxes[:, 3], height - 1)
    return boxes, largest


def threshold_binaries(
    cam: Tensor | np.ndarray, taus: Sequence[float] | np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct foreground maps of ``cam`` over ``taus``, and for each tau the index of its map.

    Taus whose cuts ``int(tau * max)`` leave the same pixels above them share one ``uint8`` map
    (0/255), so a caller finds each map's contours once.
    """
    quantised = quantize_cam(cam)
    peak = int(quantised.max(initial=0))
    # pixels strictly above cut c: total minus those <= c; equal counts mean equal foregrounds
    at_most = np.cumsum(np.bincount(quantised.ravel(), minlength=256))
    taus = np.asarray(taus, dtype=np.float64).reshape(-1)
    if taus.size == 0 or np.isnan(taus).any() or (taus < 0).any() or (taus > 1).any():
        raise ValueError(f"CAM thresholds tau must lie in [0, 1], got {taus.tolist()[:8]}")
    cuts = np.array([_cut(tau, peak) for tau in taus], dtype=np.int64)
    above = quantised.size - at_most[cuts]
    _, first, index = np.unique(above, return_index=True, return_inverse=True)
    binaries = [np.where(quantised > cuts[i], np.uint8(255), np.uint8(0)) for i in first]
    return binaries, index.reshape(-1)


def boxes_at_thresholds(
    cam: Tensor | np.ndarray, taus: Sequence[float] | np.ndarray, multi_contour: bool = False
) -> list[np.ndarray]:
    """``boxes_from_cam`` at every ``tau`` of ``taus``, sharing work between taus that give the same cut.

    Returns one int64 (k_t, 4) array per tau (k_t = 1 unless ``multi_contour``).
    """
    binaries, index = threshold_binaries(cam, taus)
    found = [region_boxes(binary) for binary in binaries]
    per_map = [boxes if multi_contour else boxes[largest : largest + 1] for boxes, largest in found]
    return [per_map[i] for i in index]


def boxes_from_cam(cam: Tensor | np.ndarray, tau: float = 0.2, multi_contour: bool = False) -> np.ndarray:
    """Boxes (k, 4) int64, inclusive ``x0, y0, x1, y1``, of a normalised CAM (H, W) at threshold ``tau``.

    The largest region's box (k = 1), or with ``multi_contour`` one box per OpenCV contour in
    OpenCV's order. No foreground gives ``[[0, 0, 0, 0]]``. See the module docstring for the rule.
    """
    return boxes_at_thresholds(cam, [tau], multi_contour)[0]


def largest_region_box(cam: Tensor | np.ndarray, tau: float = 0.2) -> np.ndarray:
    """The box (4,) of the largest region of ``cam`` at ``tau``: the paper's predicted box."""
    return boxes_from_cam(cam, tau, multi_contour=False)[0]


def _check_boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    boxes = np.asarray(boxes)
    if boxes.ndim == 1 and boxes.shape[0] == 4:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must be (n, 4) boxes x0, y0, x1, y1, got shape {boxes.shape}")
    if (boxes < 0).any():
        raise ValueError(
            f"{name} has negative coordinates (first bad row {boxes[(boxes < 0).any(axis=1)][0].tolist()}): "
            f"inclusive pixel boxes are >= 0; drop padding rows such as [-1, -1, -1, -1]"
        )
    if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        bad = boxes[(boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])][0]
        raise ValueError(f"{name} needs x1 >= x0 and y1 >= y0, got {bad.tolist()}: are they x, y, w, h boxes?")
    return boxes


def box_iou(boxes_a: Tensor | np.ndarray, boxes_b: Tensor | np.ndarray) -> np.ndarray:
    """IoU (n, m) between inclusive pixel boxes ``a`` (n, 4) and ``b`` (m, 4), "+1" convention.

    ``area = (x1 - x0 + 1) * (y1 - y0 + 1)``; so ``[0, 0, 0, 0]`` is one pixel. Values lie in [0, 1].
    """
    a = _check_boxes(_as_numpy(boxes_a), "boxes_a").astype(np.float64)
    b = _check_boxes(_as_numpy(boxes_b), "boxes_b").astype(np.float64)
    a, b = a[:, None, :], b[None, :, :]
    overlap_w = np.maximum(0.0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    overlap_h = np.maximum(0.0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    intersection = overlap_w * overlap_h
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    return intersection / (area_a + area_b - intersection)


def edges_to_inclusive(boxes: Tensor | np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel-edge ``XYXY`` boxes (k, 4) (datasets, transforms) -> inclusive integer boxes (k, 4).

    ``x0 = round(x0)``, ``y0 = round(y0)``, ``x1 = round(x1) - 1``, ``y1 = round(y1) - 1``, clipped
    to the ``width`` x ``height`` image, with ``x1 >= x0`` and ``y1 >= y0``.
    """
    boxes = _as_numpy(boxes).astype(np.float64).reshape(-1, 4)
    out = np.rint(boxes).astype(np.int64)
    out[:, 2:] -= 1
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width - 1)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height - 1)
    out[:, 2] = np.maximum(out[:, 2], out[:, 0])
    out[:, 3] = np.maximum(out[:, 3], out[:, 1])
    return out


def reference_boxes(
    source_boxes: Sequence[Sequence[float]] | np.ndarray, source_size: tuple[int, int], size: tuple[int, int]
) -> np.ndarray:
    """Annotation boxes (k, 4) ``x0, y0, x1, y1`` of an image of ``source_size`` = (h, w), resized to
    ``size`` = (H, W), the way the reference evaluator converts them: ``int(x * W / w)`` per
    coordinate, in float64, with ``x1 = x + w`` kept (no ``- 1``) and no clipping.

    The result is used as an inclusive box, so a box is one pixel wider than the annotated extent:
    the same convention as the predicted boxes of ``region_boxes``, which is why a map covering the
    object exactly scores IoU 1 here and 0.826 on a 10 x 10 object with ``edges_to_inclusive``.
    """
    boxes = np.asarray(source_boxes, dtype=np.float64).reshape(-1, 4)
    (src_h, src_w), (dst_h, dst_w) = source_size, size
    if min(src_h, src_w, dst_h, dst_w) <= 0:
        raise ValueError(f"image sizes must be positive, got source {source_size} and target {size}")
    if (boxes < 0).any():
        raise ValueError(f"annotation boxes must be >= 0, got {boxes[(boxes < 0).any(axis=1)][0].tolist()}")
    scale = np.array([dst_w, dst_h, dst_w, dst_h], dtype=np.float64)
    source = np.array([src_w, src_h, src_w, src_h], dtype=np.float64)
    # (x * W) / w, left to right as the reference's Python floats: x * W is exact for integer
    # annotations, so a coordinate that scales to a whole number stays whole before int().
    return np.floor(boxes * scale / source).astype(np.int64)


def inclusive_to_edges(boxes: np.ndarray) -> Tensor:
    """Inclusive integer boxes (k, 4) -> pixel-edge ``XYXY`` float boxes (k, 4): ``x1 + 1``, ``y1 + 1``."""
    out = torch.as_tensor(np.asarray(boxes), dtype=torch.float32).reshape(-1, 4).clone()
    out[:, 2:] += 1
    return out
