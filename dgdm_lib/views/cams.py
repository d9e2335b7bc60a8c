"""Chapter 02-03 views: a CAM, its threshold tau, the box it gives, and box sizes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from dgdm_lib.evaluation import CamSet
from dgdm_lib.localization import box_iou, boxes_from_cam, foreground_mask
from dgdm_lib.plotting import CMAP, GT_COLOR, PRED_COLOR, draw_boxes, hide_axis, to_display_images


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas (k,) in pixels of inclusive boxes (k, 4)."""
    boxes = np.asarray(boxes)
    return (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)


def box_coverage(cams: np.ndarray, masks: np.ndarray, head_masks: np.ndarray, tau: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the share of the head's pixels and of the rest of the object's pixels that fall
    inside the predicted box (largest region at ``tau``): ``(head_coverage, body_coverage)``, in [0, 1].

    A box centred on the discriminative part covers the head fully and the body only partly.
    """
    head_cov, body_cov = [], []
    for cam, mask, head in zip(cams, masks, head_masks):
        x0, y0, x1, y1 = boxes_from_cam(cam, tau)[0]
        inside = np.zeros_like(mask, dtype=bool)
        inside[y0 : y1 + 1, x0 : x1 + 1] = True
        body = mask & ~head
        head_cov.append((inside & head).sum() / max(head.sum(), 1))
        body_cov.append((inside & body).sum() / max(body.sum(), 1))
    return np.array(head_cov), np.array(body_cov)


def box_size_ratios(cams: np.ndarray, gt_boxes: list[np.ndarray], tau: float = 0.2) -> np.ndarray:
    """Per image, area of the predicted box (largest region at ``tau``) / area of the GT box.

    Below 1: the CAM box is smaller than the object's. CAM's usual failure is a ratio well below 1.
    """
    return np.array([box_area(boxes_from_cam(cam, tau))[0] / box_area(gt[:1])[0] for cam, gt in zip(cams, gt_boxes)])


def cam_threshold_view(camset, index: int = 0, tau: float = 0.2) -> Figure:
    """One test image: its GT-class CAM (with colour bar), the pixels above ``tau``, and the boxes.

    Left: input with GT box (red). Middle: CAM in [0, 1]. Right: foreground at ``tau`` over the image,
    GT box red, the largest region's box green, with its IoU.
    """
    image = to_display_images(camset.images[index : index + 1], normalized=True)[0]
    cam = camset.cams[index]
    gt = camset.gt_boxes[index]
    pred = boxes_from_cam(cam, tau)
    iou = float(box_iou(pred, gt).max())
    fig = Figure(figsize=(7.8, 2.7), dpi=72)
    left, middle, right = (fig.add_axes((0.01 + 0.33 * k, 0.02, 0.28, 0.84)) for k in range(3))
    left.imshow(image)
    draw_boxes(left, gt, GT_COLOR, inclusive=True)
    left.set_title(f"input, class {int(camset.labels[index])}", fontsize=9)
    shown = middle.imshow(cam, cmap=CMAP, vmin=0, vmax=1)
    fig.colorbar(shown, cax=fig.add_axes((0.625, 0.1, 0.012, 0.68)))
    middle.set_title("GT-class CAM (normalised)", fontsize=9)
    right.imshow(image)
    right.imshow(np.ma.masked_where(~foreground_mask(cam, tau), np.ones_like(cam)), cmap="autumn", alpha=0.45, vmin=0, vmax=1)
    draw_boxes(right, gt, GT_COLOR, inclusive=True)
    draw_boxes(right, pred, PRED_COLOR, inclusive=True)
    right.set_title(f"CAM > tau={tau:.2f}: IoU {iou:.2f}", fontsize=9)
    for ax in (left, middle, right):
        hide_axis(ax)
    return fig


def coverage_histogram(coverages: Mapping[str, np.ndarray], tau: float = 0.2) -> Figure:
    """Histograms of the share of each image's object (head excluded) inside its predicted box,
    one per method: 1 means the box takes in the whole body."""
    fig = Figure(figsize=(6.0, 3.0), dpi=80, layout="constrained")
    ax = fig.subplots()
    bins = np.linspace(0, 1, 21)
    for name, values in coverages.items():
        ax.hist(values, bins=bins, alpha=0.55, label=f"{name} (median {np.median(values):.2f})")
    ax.set_xlabel(f"share of the body (object minus head) inside the box at tau = {tau:g}")
    ax.set_ylabel("test images")
    ax.set_title("How much of the beetle does the box take in?", fontsize=10)
    ax.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
def comparison_figure(camsets: Mapping[str, CamSet], n: int = 8, tau: float = 0.2, title: str | None = None) -> Any:
    """Rows: the input images with GT boxes (red), then one row per method with its GT-class CAM
    over the image, the GT box (red) and the largest-region box at ``tau`` (green), titled with
    the IoU and the predicted class. All ``camsets`` must come from the same images, in order.

    Returns a ``matplotlib.figure.Figure`` (no pyplot state).
    """
    first = next(iter(camsets.values()))
    if first.images is None or len(first.images) == 0:
        raise ValueError("the CamSet kept no images: use collect_cams(..., keep_images=8)")
    n = min(n, len(first.images))
    shown = to_display_images(first.images[:n], normalized=True)
    rows = 1 + len(camsets)
    fig = Figure(figsize=(1.7 * n, 1.8 * rows + 0.3), layout="constrained")
    axes = fig.subplots(rows, n, squeeze=False)
    for j in range(n):
        axes[0, j].imshow(shown[j])
        draw_boxes(axes[0, j], first.gt_boxes[j], GT_COLOR, inclusive=True)
        axes[0, j].set_title(f"input y={int(first.labels[j])}", fontsize=7)
    for i, (name, camset) in enumerate(camsets.items(), start=1):
        for j in range(n):
            ax, cam = axes[i, j], camset.cams[j]
            pred = boxes_from_cam(cam, tau)
            iou = float(np.max(box_iou(pred, camset.gt_boxes[j])))
            ax.imshow(shown[j])
            ax.imshow(cam, cmap=CMAP, alpha=0.5, vmin=0, vmax=1)
            draw_boxes(ax, camset.gt_boxes[j], GT_COLOR, inclusive=True)
            draw_boxes(ax, pred, PRED_COLOR, inclusive=True)
            ax.set_title(f"{name} IoU={iou:.2f} p={int(camset.predictions[j])}", fontsize=7)
    for ax in axes.flat:
        hide_axis(ax)
    fig.colorbar(ScalarMappable(Normalize(0, 1), CMAP), ax=list(axes[1:].flat), fraction=0.015, pad=0.01, label="CAM")
    fig.suptitle(title or f"GT-class CAMs: GT boxes red, boxes at tau={tau:g} green", fontsize=9)
    return fig


def cam_figure(camset: CamSet, n: int = 8, tau: float = 0.2, name: str = "CAM") -> Any:
    """``comparison_figure`` for one model."""
    return comparison_figure({name: camset}, n=n, tau=tau)
