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
        ("I = sigmoid(A)", importance[0, 0], CMAP),
        (f"M (gamma={gamma:.2f}): keeps {100 * kept:.0f}%", drop_mask[0, 0], "gray"),
        (f"mean_c F*M  (p={drop_rate:.2f})", dropped, CMAP),
        (f"mean_c F*I  (p={1 - drop_rate:.2f})", weighted, CMAP),
    ]
    fig = Figure(figsize=(12.5, 2.7), dpi=80, layout="constrained")
    axes = fig.subplots(1, 6)
    axes[0].imshow(image)
    axes[0].set_title("input", fontsize=9)
    vmax = float(attention.max())
    for ax, (title, values, cmap) in zip(axes[1:], panels):
        scale = (0, 1) if cmap == "gray" or title.startswith("I ") else (0, vmax)
        shown = ax.imshow(values.detach().numpy(), cmap=cmap, vmin=scale[0], vmax=scale[1])
        ax.set_title(title, fontsize=8)
        fig.colorbar(shown, ax=ax, fraction=0.046)
    for k, ax in enumerate(axes):
        if k == 3:  # the 0/1 mask keeps a frame: white on white would vanish
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            ax.set_axis_off()
    return fig
