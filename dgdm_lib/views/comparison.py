"""Chapters 06-07 views: methods side by side (CAMs and boxes, threshold curves, PR curves, shares).

Two kinds of functions live here. ``method_curves`` turns each method's ``CamSet`` into the curves
the views plot (computed once, then every slider move only draws). The ``*_view`` functions are
pure: values in, a ``matplotlib.figure.Figure`` out, cheap enough to redraw within the book's
200 ms budget (one ``imshow`` of a tiled picture instead of a grid of small axes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from dgdm_lib.evaluation import CamSet
from dgdm_lib.localization import box_iou, boxes_from_cam
from dgdm_lib.metrics import CAM_THRESHOLDS, BoxAccumulator, PxAPAccumulator
from dgdm_lib.plotting import CMAP, GT_COLOR, PRED_COLOR, framed_axes, hide_axis, to_display_images
from dgdm_lib.views.data import montage

__all__ = [
    "MethodCurves",
    "cam_montage_view",
    "method_curves",
    "metric_bars_view",
    "overlay_cams",
    "paint_box",
    "pr_curves_view",
    "region_means",
    "region_means_view",
    "shares_view",
    "tau_curves_view",
    "threshold_view",
]

_GAP = 4
#: Inches per 64-px montage tile: about one screen pixel per image pixel at dpi 80 (cheap to redraw).
_TILE_INCHES = 0.85
#: Opacity of the CAM over the image in the montages.
CAM_ALPHA = 0.5
#: One colour per method, in the order the methods are given.
METHOD_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink")


# --------------------------------------------------------------------------------------------
# Data behind the views
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MethodCurves:
    """One method's threshold curves on one split (N images).

    Attributes:
        taus: (T,) the CAM thresholds swept.
        gt_known: (T,) GT-known Loc(tau) in percent: largest-region box with IoU >= 0.5.
        precision, recall: (T + 2,) the pixel precision-recall curve behind PxAP, from the
            highest score bin down (``PxAPAccumulator.curve``); None without object masks.
        pxap: PxAP in percent (nan without masks).
    """

    taus: np.ndarray
    gt_known: np.ndarray
    precision: np.ndarray | None
    recall: np.ndarray | None
    pxap: float

    def at(self, tau: float) -> float:
        """GT-known Loc at the swept threshold closest to ``tau``."""
        return float(self.gt_known[self.index(tau)])

    def index(self, tau: float) -> int:
        """Index of the swept threshold closest to ``tau``."""
        return int(np.argmin(np.abs(self.taus - tau)))

    def best_tau(self) -> float:
        """The threshold that maximises GT-known Loc on this split (first among ties)."""
        return float(self.taus[int(np.argmax(self.gt_known))])

    def pixel_point(self, tau: float) -> tuple[float, float]:
        """(recall, precision) of the pixels scoring ``>= tau`` (the PR curve's point for ``tau``)."""
        if self.precision is None or self.recall is None:
            raise ValueError("this split has no object masks, so there is no pixel PR curve")
        k = len(self.taus) + 1 - self.index(tau)
        return float(self.recall[k]), float(self.precision[k])


def method_curves(
    camsets: Mapping[str, CamSet], cam_thresholds: Sequence[float] | np.ndarray = CAM_THRESHOLDS
) -> dict[str, MethodCurves]:
    """GT-known Loc(tau) and the pixel PR curve of every method, from its ``CamSet``.

    Uses the metrics' own accumulators (``BoxAccumulator``, ``PxAPAccumulator``), so the curves
    agree with ``evaluate`` and the benchmark.
    """
    taus = np.asarray(cam_thresholds, dtype=np.float64)
    out = {}
    for name, camset in camsets.items():
        boxes = BoxAccumulator(taus, (0.5,), multi_contour=False)
        boxes.accumulate(camset.cams, camset.gt_boxes)
        precision = recall = None
        pxap = float("nan")
        if camset.masks is not None:
            pixels = PxAPAccumulator(taus)
            pixels.accumulate(camset.cams, camset.masks)
            precision, recall = pixels.curve()
            pxap = pixels.compute()
        out[name] = MethodCurves(taus, boxes.accuracy_curve(0.5, multi_contour=False), precision, recall, pxap)
    return out


def region_means(camset: CamSet) -> dict[str, float]:
    """Mean normalised CAM value over the head, body (object minus head) and background pixels of
    a beetles split: where the map is high, regardless of how much area each region has."""
    if camset.masks is None or camset.head_masks is None:
        raise ValueError("region_means needs object and head masks (the beetles dataset has both)")
    head = np.asarray(camset.head_masks, dtype=bool)
    body = np.asarray(camset.masks, dtype=bool) & ~head
    background = ~np.asarray(camset.masks, dtype=bool)
    return {name: float(camset.cams[region].mean()) for name, region in
            (("head", head), ("body", body), ("background", background))}


def overlay_cams(images: np.ndarray, cams: np.ndarray, alpha: float = CAM_ALPHA) -> np.ndarray:
    """Images (N, H, W, 3) float in [0, 1] with CAMs (N, H, W) in [0, 1] blended on top in ``CMAP``;
    returns uint8 (N, H, W, 3)."""
    colours = matplotlib.colormaps[CMAP](np.clip(cams, 0.0, 1.0))[..., :3]
    blended = (1.0 - alpha) * images + alpha * colours
    return np.round(blended * 255).astype(np.uint8)


def _shown_images(camset: CamSet, start: int, n: int) -> np.ndarray:
    if camset.images is None or len(camset.images) == 0:
        raise ValueError("the CamSet kept no images: collect it with collect_cams(..., keep_images=16)")
    stop = min(start + n, len(camset.images))
    if start < 0 or start >= stop:
        raise ValueError(f"start={start} is outside the {len(camset.images)} images this CamSet kept")
    return np.stack(to_display_images(camset.images[start:stop], normalized=True))


def paint_box(tile: np.ndarray, box: np.ndarray, colour: str) -> None:
    """Paint the outline of an inclusive pixel box (x0, y0, x1, y1) into ``tile`` (H, W, 3) uint8, in place.

    Boxes painted into the picture cost nothing to redraw, unlike one ``Rectangle`` artist each."""
    rgb = np.round(np.array(to_rgb(colour)) * 255).astype(np.uint8)
    height, width = tile.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, x1 = np.clip([x0, x1], 0, width - 1)
    y0, y1 = np.clip([y0, y1], 0, height - 1)
    tile[y0 : y1 + 1, [x0, x1]] = rgb
    tile[[y0, y1], x0 : x1 + 1] = rgb


def _colour_strip(height: int, width: int = 6) -> np.ndarray:
    """A vertical uint8 strip (height, width, 3) of ``CMAP`` from 1 (top) to 0 (bottom): the colour
    bar, tiled into the montage itself (a separate colour-bar axes costs more than the whole picture)."""
    values = np.linspace(1.0, 0.0, height)[:, None].repeat(width, axis=1)
    return np.round(matplotlib.colormaps[CMAP](values)[..., :3] * 255).astype(np.uint8)


def _with_colour_bar(ax: Any, picture: np.ndarray, top: int, height: int) -> np.ndarray:
    """``picture`` with a colour strip on its right, rows ``top .. top + height``, labelled 0 and 1."""
    strip = _colour_strip(height)
    out = np.full((picture.shape[0], picture.shape[1] + 3 * _GAP + strip.shape[1], 3), 255, dtype=np.uint8)
    out[:, : picture.shape[1]] = picture
    left = picture.shape[1] + _GAP
    out[top : top + height, left : left + strip.shape[1]] = strip
    right = left + strip.shape[1] + 1
    ax.text(right, top, "1", ha="left", va="top", fontsize=7)
    ax.text(right, top + height - 1, "0", ha="left", va="bottom", fontsize=7)
    ax.text(right + 5, top + height / 2, "normalised CAM", rotation=90, ha="left", va="center", fontsize=7)
    return out


# --------------------------------------------------------------------------------------------
# CAMs and boxes, method by method
# --------------------------------------------------------------------------------------------
def _draw_montage(ax: Any, camsets: Mapping[str, CamSet], tau: float, start: int, n: int) -> list[list[float]]:
    """Rows: input, then each method's CAM over the image; GT boxes red, boxes at ``tau`` green.

    Returns the IoU of every predicted box with the GT, one list per method."""
    names = list(camsets)
    pictures = _shown_images(camsets[names[0]], start, n)
    count, size = len(pictures), pictures.shape[1]
    gt = camsets[names[0]].gt_boxes[start : start + count]
    rows = [np.round(pictures * 255).astype(np.uint8)]
    rows += [overlay_cams(pictures, camsets[name].cams[start : start + count]) for name in names]
    ious = []
    for r, row in enumerate(rows):
        for k in range(count):
            for box in gt[k]:
                paint_box(row[k], box, GT_COLOR)
        if r == 0:
            continue
        cams = camsets[names[r - 1]].cams[start : start + count]
        predicted = [boxes_from_cam(cam, tau) for cam in cams]
        for k, pred in enumerate(predicted):
            paint_box(row[k], pred[0], PRED_COLOR)
        ious.append([float(box_iou(pred, boxes).max()) for pred, boxes in zip(predicted, gt)])
    step = size + _GAP
    picture = _with_colour_bar(ax, montage(rows, _GAP), step, len(names) * step - _GAP)
    ax.imshow(picture, interpolation="nearest")
    ax.text(-3, size / 2, "input", ha="right", va="center", fontsize=8)
    for r, (name, row_ious) in enumerate(zip(names, ious), start=1):
        hits = sum(iou >= 0.5 for iou in row_ious)
        ax.text(-3, r * step + size / 2, f"{name}\n{hits}/{count} hit", ha="right", va="center", fontsize=8)
    hide_axis(ax)
    return ious


def cam_montage_view(camsets: Mapping[str, CamSet], tau: float = 0.2, start: int = 0, n: int = 6) -> Figure:
    """Images ``start .. start + n`` of the test split: first row the input with its GT box (red),
    then one row per method with its GT-class CAM and the largest-region box at ``tau`` (green).

    The paper's Fig. 5 as one picture: cheap enough for a slider over ``tau`` and ``start``.
    """
    rows = 1 + len(camsets)
    fig = Figure(figsize=(_TILE_INCHES * n + 1.6, _TILE_INCHES * rows + 0.55), dpi=80)
    ax = fig.add_axes((0.1, 0.02, 0.8, 0.86))
    ious = _draw_montage(ax, camsets, tau, start, n)
    mean = ", ".join(f"{name} {np.mean(row):.2f}" for name, row in zip(camsets, ious))
    fig.suptitle(f"GT-class CAMs; GT boxes red, boxes at tau = {tau:.2f} green (hit: IoU >= 0.5)\n"
                 f"mean IoU: {mean}", fontsize=9)
    return fig


# --------------------------------------------------------------------------------------------
# Threshold curves
# --------------------------------------------------------------------------------------------
def _draw_tau_frame(ax: Any, curves: Mapping[str, MethodCurves], chosen: Mapping[str, float] | None) -> None:
    """What does not move with the slider: each method's GT-known Loc(tau) curve, a star at its
    validation-chosen tau (``chosen``), the axes and the legend."""
    for colour, (name, curve) in zip(METHOD_COLORS, curves.items()):
        label = name
        if chosen and name in chosen:
            label += f" (val tau {chosen[name]:.2f}: {curve.at(chosen[name]):.1f}%)"
            ax.plot([chosen[name]], [curve.at(chosen[name])], marker="*", ms=11, color=colour, mec="black", mew=0.6,
                    ls="none")
        ax.plot(curve.taus, curve.gt_known, color=colour, lw=1.6, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 100)
    ax.set_yticks([0, 25, 50, 75, 100])
    ax.set_xlabel("CAM threshold tau")
    ax.set_ylabel("GT-known Loc (IoU >= 0.5), %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.14), ncols=2, frameon=False)


def _mark_tau(ax: Any, curves: Mapping[str, MethodCurves], tau: float) -> str:
    """What moves with the slider: a dot on every curve at ``tau`` and a dashed line there.
    Returns the values read off, as ``"CAM 5.0%, ADL 27.3%"``."""
    for colour, curve in zip(METHOD_COLORS, curves.values()):
        ax.plot([tau], [curve.at(tau)], marker="o", ms=6, color=colour, mec="black", mew=0.6, ls="none")
    ax.axvline(tau, color="grey", ls="--", lw=1)
    return ", ".join(f"{name} {curve.at(tau):.1f}%" for name, curve in curves.items())


def tau_curves_view(
    curves: Mapping[str, MethodCurves], tau: float = 0.2, chosen: Mapping[str, float] | None = None
) -> Figure:
    """GT-known Loc as a function of the CAM threshold, one curve per method; dots at ``tau``
    (dashed line), stars at each method's threshold chosen on validation (``chosen``).

    MaxBoxAcc is the top of each curve; the paper's protocol reads every curve at tau = 0.2.
    """
    fig = Figure(figsize=(7.0, 4.2), dpi=80)
    ax = fig.add_axes((0.09, 0.33, 0.88, 0.6))
    _draw_tau_frame(ax, curves, chosen)
    values = _mark_tau(ax, curves, tau)
    ax.set_title(f"GT-known Loc on test at tau = {tau:.2f} (dots): {values}\nstars: tau chosen on val", fontsize=9)
    return fig


def threshold_view(
    curves: Mapping[str, MethodCurves],
    camsets: Mapping[str, CamSet],
    tau: float = 0.2,
    chosen: Mapping[str, float] | None = None,
    start: int = 0,
    n: int = 4,
) -> Figure:
    """``tau_curves_view`` (left) beside ``cam_montage_view`` (right) at the same ``tau``: the number
    and the boxes it counts. The curves are drawn once per ``curves`` and ``chosen``
    (``plotting.framed_axes``); a redraw adds only the dots, the line and the montage."""
    fig = Figure(figsize=(9.6, 4.2), dpi=80)
    curve_ax = framed_axes(fig, (0.07, 0.33, 0.5, 0.57), lambda ax: _draw_tau_frame(ax, curves, chosen),
                           key=("tau curves", id(curves), tuple(sorted((chosen or {}).items()))), pinned=(curves,))
    values = _mark_tau(curve_ax, curves, tau)
    _draw_montage(fig.add_axes((0.64, 0.01, 0.35, 0.88)), camsets, tau, start, n)
    fig.text(0.5, 0.985, f"tau = {tau:.2f}: GT-known Loc on test {values} (dots; stars: tau chosen on val),\n"
             "and the boxes it counts", ha="center", va="top", fontsize=9)
    return fig


# --------------------------------------------------------------------------------------------
# Pixel precision-recall
# --------------------------------------------------------------------------------------------
def pr_curves_view(curves: Mapping[str, MethodCurves], tau: float = 0.2) -> Figure:
    """Pixel precision-recall curves of the CAM scores against the object masks (the area under
    each is PxAP), with each method's operating point at score threshold ``tau`` marked."""
    fig = Figure(figsize=(5.6, 4.0), dpi=80)
    ax = fig.add_axes((0.11, 0.12, 0.85, 0.8))
    for colour, (name, curve) in zip(METHOD_COLORS, curves.items()):
        if curve.precision is None:
            continue
        ok = ~np.isnan(curve.precision)
        ax.plot(curve.recall[ok], curve.precision[ok], color=colour, lw=1.6, label=f"{name}: PxAP {curve.pxap:.1f}")
        recall, precision = curve.pixel_point(tau)
        ax.plot([recall], [precision], marker="o", ms=7, color=colour, mec="black", mew=0.6, ls="none")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("pixel recall (share of object pixels scoring >= tau)")
    ax.set_ylabel("pixel precision")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(f"Pixel PR curves of the CAMs (test); dots: pixels with CAM >= {tau:.2f}", fontsize=9)
    return fig


# --------------------------------------------------------------------------------------------
# Bars
# --------------------------------------------------------------------------------------------
_SHARE_PARTS = (("head_share", "head", "tab:red"), ("body_share", "body (object minus head)", "tab:olive"),
                ("background_share", "background", "tab:gray"))


def shares_view(results: Mapping[str, Mapping[str, float]], title: str | None = None) -> Figure:
    """Where each method's CAM mass goes: stacked bars of head / body / background shares (percent).

    ``results`` maps a method name to a metrics dict with ``head_share``, ``body_share`` and
    ``background_share`` (``experiments.measure`` or ``evaluation.evaluate`` on beetles).
    """
    names = list(results)
    fig = Figure(figsize=(6.4, 0.5 * len(names) + 1.4), dpi=80, layout="constrained")
    ax = fig.add_subplot()
    left = np.zeros(len(names))
    for key, label, colour in _SHARE_PARTS:
        values = np.array([float(results[name][key]) for name in names])
        ax.barh(names, values, left=left, color=colour, label=label, edgecolor="white")
        for y, (x, v) in enumerate(zip(left, values)):
            if v >= 6:
                ax.text(x + v / 2, y, f"{v:.0f}", ha="center", va="center", fontsize=8, color="white")
        left += values
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of CAM mass, % (mean over test images)")
    ax.legend(fontsize=7, ncols=3, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    ax.set_title(title or "Where the CAM mass lies: head, rest of the body, background", fontsize=9, pad=22)
    return fig


def metric_bars_view(
    summary: Sequence[Mapping[str, Any]], keys: Sequence[str], labels: Sequence[str] | None = None,
    by: str = "label", title: str | None = None,
) -> Figure:  # fmt: skip
    """Grouped bars: one group per row of ``summary`` (``experiments.summarize``'s output: each key
    holds ``(mean, sd, half-width)``), one bar per metric in ``keys``, error bars = sd when n > 1."""
    labels = list(labels or keys)
    fig = Figure(figsize=(1.2 + 1.25 * len(summary), 3.4), dpi=80, layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(keys)
    x = np.arange(len(summary))
    for j, (key, label) in enumerate(zip(keys, labels)):
        means = np.array([row[key][0] for row in summary])
        sds = np.array([row[key][1] if row["n"] > 1 else 0.0 for row in summary])
        ax.bar(x + (j - (len(keys) - 1) / 2) * width, means, width, yerr=sds, capsize=2, label=label,
               color=METHOD_COLORS[j % len(METHOD_COLORS)])
    ax.set_xticks(x, [f"{row[by]}\n(n={row['n']})" for row in summary], fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncols=min(len(keys), 3), loc="upper left")
    ax.set_title(title or "Test metrics per method (mean; error bars: sd over seeds)", fontsize=9)
    return fig


def region_means_view(means: Mapping[str, Mapping[str, float]], title: str | None = None) -> Figure:
    """Grouped bars: for each method (``region_means`` output), the mean CAM value on head, body
    and background pixels."""
    names = list(means)
    fig = Figure(figsize=(1.6 + 1.3 * len(names), 3.2), dpi=80, layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(names))
    parts = [(key.removesuffix("_share"), label, colour) for key, label, colour in _SHARE_PARTS]
    for j, (key, label, colour) in enumerate(parts):
        values = [means[name][key] for name in names]
        ax.bar(x + (j - 1) * 0.26, values, 0.26, color=colour, label=label)
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean normalised CAM")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncols=3, loc="upper right")
    ax.set_title(title or "How high the CAM is, on average, on each part of the image (test)", fontsize=9)
    return fig
