"""Figures of the book: one look for every chapter.

Conventions (as in the paper): ground-truth boxes red, predicted boxes green, object masks as a
translucent overlay with a contour, heatmaps in ``CMAP`` with a colour bar. Figures are built
with ``matplotlib.figure.Figure`` (no pyplot state), so a notebook cell shows a returned figure
once and scripts call ``fig.savefig``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import NullLocator

from dgdm_lib.data.transforms import IMAGENET_MEAN, IMAGENET_STD

#: The one colour map for every heatmap (CAMs, attention maps, importance maps).
CMAP = "jet"
GT_COLOR = "red"
PRED_COLOR = "lime"
MASK_COLOR = "cyan"


def show_figures_inline() -> bool:
    """Inside a notebook kernel, display returned ``Figure`` objects as PNG images.

    The book's figures are built without pyplot, so IPython only shows them as images once a
    PNG formatter is registered for ``Figure`` (what ``%matplotlib inline`` does). Called when
    this module is imported; returns whether a kernel was found.
    """
    import sys

    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return False
    from IPython.core.pylabtools import select_figure_formats

    select_figure_formats(shell, {"png"})
    return True


def hide_axis(ax: Axes) -> None:
    """No frame, ticks or tick labels on ``ax`` (an image panel).

    ``set_axis_off`` alone still lays out the ticks at every draw (for the title's position),
    about 10 ms an axis: slider redraws have a 200 ms budget.
    """
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(NullLocator())
        axis.set_minor_locator(NullLocator())  # a log scale's minor ticks would be laid out too
    ax.set_axis_off()


#: Pictures of unchanging axes content, newest last: ``{key: (pinned objects, RGBA, scales)}``.
_FRAMES: OrderedDict[tuple, tuple[tuple, np.ndarray, dict[str, Any]]] = OrderedDict()
_FRAMES_KEPT = 16
#: ``gid`` of the full-figure axes that holds a pasted frame picture (for code that inspects figures).
FRAME_GID = "dgdm-frame"


def framed_axes(
    fig: Figure, rect: tuple[float, float, float, float], draw_frame: Callable[[Axes], None],
    key: Hashable, pinned: tuple = (),
) -> Axes:
    """An axes at ``rect`` whose unchanging part is pasted from a picture drawn once per ``key``.

    ``draw_frame(ax)`` draws what a slider never changes (scales, limits, ticks, labels, legend,
    fixed curves; it may add other fixed things, such as a colour bar, to ``ax.figure``). It runs
    on a transparent figure of ``fig``'s size and dpi the first time a ``key`` is seen; later
    calls paste that rendering under a bare, transparent axes with the same scales and limits,
    which is returned for the artists that do change. Ticks and text are most of a redraw's cost,
    so this roughly halves it. ``pinned`` objects (e.g. the data behind the frame, when ``key``
    holds their ``id``) are kept alive with the picture so an ``id`` is never reused. The last
    ``_FRAMES_KEPT`` pictures are kept. The figure must be shown at its own dpi (as ``render`` does).
    """
    full_key = (key, tuple(fig.get_size_inches()), fig.dpi, rect)
    if full_key not in _FRAMES:
        frame_fig = Figure(figsize=fig.get_size_inches(), dpi=fig.dpi, facecolor="none")
        frame_ax = frame_fig.add_axes(rect)
        draw_frame(frame_ax)
        canvas = FigureCanvasAgg(frame_fig)
        canvas.draw()
        scales = {"xscale": frame_ax.get_xscale(), "yscale": frame_ax.get_yscale(),
                  "xlim": frame_ax.get_xlim(), "ylim": frame_ax.get_ylim()}
        _FRAMES[full_key] = (pinned, np.asarray(canvas.buffer_rgba()).copy(), scales)
        while len(_FRAMES) > _FRAMES_KEPT:
            _FRAMES.popitem(last=False)
    _FRAMES.move_to_end(full_key)
    _, picture, scales = _FRAMES[full_key]
    ax = fig.add_axes(rect)
    ax.set(**scales)
    hide_axis(ax)
    ax.patch.set_visible(False)
    under = fig.add_axes((0.0, 0.0, 1.0, 1.0), zorder=-1, gid=FRAME_GID)
    under.imshow(picture, interpolation="nearest", aspect="auto")
    hide_axis(under)
    return ax


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def to_display_images(images: Any, normalized: bool | None = None) -> list[np.ndarray]:
    """Images as a list of (H, W, 3) float arrays in [0, 1].

    Accepts (N, 3, H, W) or (N, H, W, 3), tensor or array, uint8 (0-255) or float. Float images
    with values outside [0, 1] are taken as ImageNet-normalised network input (``normalized=None``);
    say ``normalized=True`` / ``False`` to decide it yourself.
    """
    array = _numpy(images)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or 3 not in (array.shape[1], array.shape[-1]):
        raise ValueError(f"expected images (N, 3, H, W) or (N, H, W, 3), got shape {array.shape}")
    if array.shape[1] == 3 and array.shape[-1] != 3:
        array = array.transpose(0, 2, 3, 1)
    if array.dtype == np.uint8:
        return list(array.astype(np.float32) / 255.0)
    array = array.astype(np.float32)
    if normalized is None:
        normalized = bool(array.min() < 0.0 or array.max() > 1.0)
    if normalized:
        array = array * np.array(IMAGENET_STD, np.float32) + np.array(IMAGENET_MEAN, np.float32)
    return list(np.clip(array, 0.0, 1.0))


def _per_image_boxes(boxes: Any, count: int) -> list[np.ndarray]:
    """A (N, 4) array or a sequence of N (k, 4) arrays -> list of N (k, 4) float arrays."""
    if isinstance(boxes, (torch.Tensor, np.ndarray)) and _numpy(boxes).ndim == 2:
        return [row[None] for row in _numpy(boxes).astype(np.float64)]
    out = [_numpy(b).astype(np.float64).reshape(-1, 4) for b in boxes]
    if len(out) != count:
        raise ValueError(f"got boxes for {len(out)} images but {count} images")
    return out


def draw_boxes(ax: Axes, boxes: Any, color: str = GT_COLOR, inclusive: bool = False, linewidth: float = 1.5) -> None:
    """Draw (k, 4) XYXY boxes on an image axis.

    Pixel-edge boxes (datasets, transforms) by default; ``inclusive=True`` for the metrics' inclusive
    integer boxes. Pixel ``i`` is drawn over ``[i - 0.5, i + 0.5]`` as ``imshow`` does.
    """
    for x0, y0, x1, y1 in _numpy(boxes).reshape(-1, 4).astype(np.float64):
        if inclusive:
            x1, y1 = x1 + 1, y1 + 1
        corner = (x0 - 0.5, y0 - 0.5)
        ax.add_patch(Rectangle(corner, x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=linewidth))


def overlay_mask(ax: Axes, mask: Any, color: str = MASK_COLOR, alpha: float = 0.15) -> None:
    """A translucent fill and a contour of a (H, W) binary mask."""
    mask = _numpy(mask).astype(bool)
    rgba = np.zeros((*mask.shape, 4), np.float32)
    rgba[mask] = to_rgba(color, alpha)
    ax.imshow(rgba, interpolation="nearest")
    if mask.any() and not mask.all():
        ax.contour(mask.astype(np.float32), levels=[0.5], colors=[color], linewidths=0.8)


def image_grid(
    count: int, ncols: int = 8, panel_size: float = 1.7, title: str | None = None
) -> tuple[Figure, list[Axes]]:
    """An empty figure with ``count`` image panels (axes off), ``ncols`` to a row."""
    ncols = max(1, min(ncols, count))
    nrows = -(-count // ncols)
    fig = Figure(figsize=(panel_size * ncols, panel_size * nrows + (0.4 if title else 0.0)), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes:
        hide_axis(ax)
    if title:
        fig.suptitle(title)
    return fig, list(axes[:count])


def show_samples(
    images: Any,
    boxes: Any = None,
    masks: Any = None,
    labels: Sequence[int] | Any = None,
    pred_boxes: Any = None,
    ncols: int = 8,
    title: str | None = "Samples with ground-truth boxes (red) and object masks",
    class_names: Sequence[str] | None = None,
    inclusive: bool = False,
    normalized: bool | None = None,
    panel_size: float = 1.7,
) -> Figure:
    """A grid of images with ground-truth boxes (red), predicted boxes (green) and masks.

    images: (N, 3, H, W) or (N, H, W, 3), uint8, float in [0, 1] or normalised network input;
    boxes / pred_boxes: (N, 4) or N sequences of (k, 4) XYXY pixel-edge boxes (``inclusive=True``
    for inclusive integer boxes); masks: (N, H, W); labels: N ints, shown as titles (through
    ``class_names`` when given).
    """
    pictures = to_display_images(images, normalized)
    count = len(pictures)
    gt = _per_image_boxes(boxes, count) if boxes is not None else None
    pred = _per_image_boxes(pred_boxes, count) if pred_boxes is not None else None
    mask_list = list(_numpy(masks)) if masks is not None else None
    label_list = [int(v) for v in _numpy(labels).reshape(-1)] if labels is not None else None
    fig, axes = image_grid(count, ncols, panel_size, title)
    for k, ax in enumerate(axes):
        ax.imshow(pictures[k], interpolation="nearest")
        if mask_list is not None:
            overlay_mask(ax, mask_list[k])
        if gt is not None:
            draw_boxes(ax, gt[k], GT_COLOR, inclusive)
        if pred is not None:
            draw_boxes(ax, pred[k], PRED_COLOR, inclusive)
        if label_list is not None:
            name = class_names[label_list[k]] if class_names is not None else f"class {label_list[k]}"
            ax.set_title(name, fontsize=8)
        height, width = pictures[k].shape[:2]
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
    return fig


show_figures_inline()
