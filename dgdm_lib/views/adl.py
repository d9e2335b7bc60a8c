"""Chapter 03 view: ADL's self-attention A, importance map I and drop mask M on real feature maps."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from dgdm_lib.modules import adl_masks, spatial_attention
from dgdm_lib.plotting import CMAP


def adl_view(features: torch.Tensor, image: np.ndarray, gamma: float = 0.8, drop_rate: float = 0.75) -> Figure:
    """ADL on one feature map ``F`` (1, C, h, w): the image, ``A = mean_c F``, ``I = sigmoid(A)``,
    ``M = 1[A < gamma max A]``, and what the next layer receives: ``F * M`` with probability
    ``drop_rate``, else ``F * I`` (both shown as their channel mean).
    """
    importance, drop_mask = adl_masks(features, gamma)
    attention = spatial_attention(features)[0, 0]
    dropped = spatial_attention(features * drop_mask)[0, 0]
    weighted = spatial_attention(features * importance)[0, 0]
    kept = float(drop_mask.mean())
    panels = [
        ("A = mean_c F", attention, CMAP),
        ("I = sigmoid(A), scale 0-1", importance[0, 0], CMAP),
        (f"M (gamma={gamma:.2f}): keeps {100 * kept:.0f}%", drop_mask[0, 0], "gray"),
        (f"mean_c F*M  (p={drop_rate:.2f})", dropped, CMAP),
        (f"mean_c F*I  (p={1 - drop_rate:.2f})", weighted, CMAP),
    ]
    # A fixed layout and one colour bar per scale: constrained layout with five bars cost ~150 ms a redraw.
    fig = Figure(figsize=(12.5, 2.6), dpi=80)
    fig.subplots_adjust(left=0.005, right=0.93, bottom=0.03, top=0.86, wspace=0.08)
    axes = fig.subplots(1, 6)
    axes[0].imshow(image)
    axes[0].set_title("input", fontsize=9)
    vmax = float(attention.max())
    for ax, (title, values, cmap) in zip(axes[1:], panels):
        unit_scale = cmap == "gray" or title.startswith("I ")
        shown = ax.imshow(values.detach().numpy(), cmap=cmap, vmin=0, vmax=1 if unit_scale else vmax)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        if cmap != "gray":  # the 0/1 mask keeps its frame (white on white would vanish), the others lose it
            ax.spines[:].set_visible(False)
    axes[0].set_axis_off()
    bar = fig.colorbar(shown, cax=fig.add_axes((0.94, 0.1, 0.01, 0.7)))
    bar.set_label("A, F*M, F*I", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return fig
