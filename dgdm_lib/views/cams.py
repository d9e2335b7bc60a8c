"""Chapter 02-03 views: a CAM, its threshold tau, the box it gives, and box sizes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

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
