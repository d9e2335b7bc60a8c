"""Chapter 01 views: what the beetles show at a given pattern contrast."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from dgdm_lib.data import PATTERNS, BeetlesConfig, generate_beetles
from dgdm_lib.plotting import GT_COLOR, hide_axis

#: Grey that replaces the head in the "head hidden" row.
HIDDEN_GREY = 128
_GAP = 4


def hide_heads(images: np.ndarray, head_masks: np.ndarray) -> np.ndarray:
    """Copies of ``images`` (N, H, W, 3) uint8 with every head pixel painted grey: the body's cue alone."""
    hidden = images.copy()
    hidden[head_masks] = HIDDEN_GREY
    return hidden


def montage(rows: list[np.ndarray], gap: int = _GAP) -> np.ndarray:
    """Tile R rows of N images (N, H, W, 3) uint8 into one (R*(H+gap), N*(W+gap), 3) picture, white gaps.

    One ``imshow`` of a tiled picture redraws several times faster than N*R small axes, which keeps
    a slider's response under the book's 200 ms budget.
    """
    n, h, w, _ = rows[0].shape
    canvas = np.full((len(rows) * (h + gap), n * (w + gap), 3), 255, dtype=np.uint8)
    for r, images in enumerate(rows):
        for k in range(n):
            canvas[r * (h + gap) : r * (h + gap) + h, k * (w + gap) : k * (w + gap) + w] = images[k]
    return canvas


def contrast_view(contrast: float = 0.09, seed: int = 0, num_classes: int = 8) -> Figure:
    """One beetle per class at ``pattern_contrast = contrast``: as generated (with its box), then head hidden.

    The second row is what a network has left once the head is gone: the body's texture, whose
    strength is the contrast. At 0 every body looks the same and only the head names the class.
    """
    arrays = generate_beetles(num_classes, seed, BeetlesConfig(pattern_contrast=contrast, num_classes=num_classes))
    hidden = hide_heads(arrays.images, arrays.head_masks)
    size = arrays.images.shape[1]
    fig = Figure(figsize=(1.2 * num_classes, 3.0), dpi=80)
    ax = fig.add_axes((0, 0, 1, 0.86))
    ax.imshow(montage([arrays.images, hidden]), interpolation="nearest")
    for k in range(num_classes):
        x0, y0, x1, y1 = arrays.boxes[k]
        left = k * (size + _GAP)
        ax.add_patch(Rectangle((left + x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, color=GT_COLOR, lw=1.2))
        ax.text(left + size / 2, -2, f"class {k}", ha="center", va="bottom", fontsize=8)
        ax.text(left + size / 2, 2 * size + _GAP + 1, PATTERNS[k % len(PATTERNS)], ha="center", va="top", fontsize=7)
    hide_axis(ax)
    fig.suptitle(f"pattern contrast {contrast:.2f}: top, as seen (GT box red); bottom, head hidden", fontsize=10)
    return fig


def texture_strength(contrast: float, n: int = 64, seed: int = 0) -> float:
    """Mean standard deviation of the grey level inside the body (object mask minus head), 0-255 scale.

    It measures how much texture there is to see: at contrast 0 only pixel noise and the legs remain.
    """
    arrays = generate_beetles(n, seed, BeetlesConfig(pattern_contrast=contrast))
    grey = arrays.images.astype(np.float64).mean(axis=-1)
    body = arrays.masks & ~arrays.head_masks
    return float(np.mean([grey[k][body[k]].std() for k in range(n)]))
