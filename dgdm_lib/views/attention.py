"""Chapter 03-05 views: what ADL, CAGD and SAGD would drop on real feature maps.

Every ``*_view`` is a pure function of its arguments that returns a matplotlib ``Figure``; the
sliders of the notebooks call them through ``dgdm_lib.widgets.slider_view``. Feature maps ``F`` are
(N, C, h, w) tensors (the output of a layer where a module sits), images (N, H, W, 3) floats in
[0, 1] (``plotting.to_display_images``). Maps of the feature-map grid are shown with each of their
cells as an ``H/h`` square of pixels, so the blocks of SAGD stay visible as blocks.

To keep a redraw under the book's budget, several small pictures are tiled into one RGB montage
and drawn with a single ``imshow`` (``dgdm_lib.views.data.montage``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

import matplotlib
import numpy as np
import torch
import torch.nn.functional as nnf
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_rgba_array
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FormatStrFormatter, NullLocator
from torch import Tensor, nn

from dgdm_lib.cam import capture_features, class_activation_maps
from dgdm_lib.modules import (
    RandomDropBlock,
    adl_masks,
    cagd_channel_mask,
    normalize_attention,
    resolve_block_size,
    sagd_drop_region,
    spatial_attention,
)
from dgdm_lib.plotting import CMAP, framed_axes, hide_axis
from dgdm_lib.views.data import montage

__all__ = [
    "adl_view",
    "DROPPED_SHADE",
    "DROP_METHODS",
    "STAGE1_COLOR",
    "STAGE2_COLOR",
    "block_expansion_view",
    "cagd_view",
    "channel_gallery_view",
    "channel_keep_shares",
    "channel_object_shares",
    "delta_sweep_view",
    "drop_area_curve_view",
    "drop_masks_view",
    "drop_regions",
    "drop_share",
    "features_at_positions",
    "heat_rgb",
    "keep_share_view",
    "peak_left",
    "sagd_view",
    "shade_dropped",
]

#: Colours of the drop region's core: stage 1 (An > delta_h) and stage 2 (An < delta_l).
STAGE1_COLOR = (1.0, 0.55, 0.0)
STAGE2_COLOR = (0.15, 0.45, 1.0)
#: Brightness left to an erased position in the "what the next layer sees" pictures.
DROPPED_SHADE = 0.15
_BLOCK_GROWTH_COLOR = (1.0, 0.92, 0.55)
_DPI = 80


def _single_threaded(view: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``view`` (a view or a helper on small maps) with one torch thread, then restore the setting.

    The maps here are tiny (N x 64 x 16 x 16): torch's thread pool only adds synchronisation, which
    costs tens of milliseconds per operation on a busy CPU and would break the redraw budget.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return view(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper


# --------------------------------------------------------------------------------------------
# Small helpers (numbers the notebooks print and assert)
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def features_at_positions(model: nn.Module, images: Tensor, positions: Sequence[str] | None = None) -> dict[str, Tensor]:
    """The feature maps ``F`` (N, C, h, w) where the attention modules sit, for ``images`` (N, 3, H, W).

    ``positions`` are insertion-point names (default: the architecture's, e.g. ``block4``, ``block5``
    for ``small``), read with ``dgdm_lib.cam.capture_features`` in eval mode, so a plain CAM network
    shows what a module would receive there.
    """
    from dgdm_lib.models import ARCHS

    spec = ARCHS[model.arch]
    layers = dict(model.features.named_modules())
    names = list(positions) if positions is not None else list(model.positions or spec.positions)
    paths = {n: spec.aliases.get(n, n) for n in names}
    missing = [n for n, path in paths.items() if path not in layers]
    if missing:
        raise ValueError(f"no layer for insertion point(s) {missing} in {model.arch}: use one of {list(spec.positions)}")
    was_training = model.training
    model.eval()
    try:
        with ExitStack() as stack:
            stores = {n: stack.enter_context(capture_features(layers[path])) for n, path in paths.items()}
            model.forward_features(images)
            return {n: store.output.detach().cpu().float() for n, store in stores.items()}
    finally:
        model.train(was_training)


@_single_threaded
def channel_keep_shares(features: Tensor, beta: float = 3.0, keep_ratio: float | None = None) -> Tensor:
    """Share of channels CAGD marks important (always kept), per sample: (N,) in [0, 1].

    With the ``beta`` rule, ``|S_c| >= beta * min_c |S_c|``; a dead channel (``S_c = 0``) makes the
    threshold 0 and the share 1, and scores all within a factor ``beta`` of the weakest make it 0
    (``cagd_rule_regimes``). With ``keep_ratio`` it is ``ceil(keep_ratio * C) / C``.
    """
    _, _, important = cagd_channel_mask(features, beta=beta, alpha=0.0, keep_ratio=keep_ratio)
    return important.float().mean(dim=1)


@_single_threaded
def drop_share(features: Tensor, delta_l: float = 0.1, delta_h: float = 0.8, block_size: int | str = 3) -> Tensor:
    """Share of positions SAGD's ``D_block`` covers, per sample: (N,) in [0, 1]."""
    return sagd_drop_region(features, delta_l, delta_h, block_size)["region"].flatten(1).mean(dim=1)


def _grid_to_pixels(maps: np.ndarray, size: int) -> np.ndarray:
    """(N, h, w) maps -> (N, size, size) by repeating each cell (nearest, no smoothing)."""
    factor = size // maps.shape[-1]
    return maps.repeat(factor, axis=-2).repeat(factor, axis=-1)


def heat_rgb(values: np.ndarray, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """Values (..., h, w) -> RGB (..., h, w, 3) floats through the book's colour map ``CMAP``."""
    scaled = np.clip((np.asarray(values, dtype=np.float64) - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    return matplotlib.colormaps[CMAP](scaled)[..., :3]


def shade_dropped(images: np.ndarray, dropped: np.ndarray) -> np.ndarray:
    """Images (N, H, W, 3) with the positions where ``dropped`` (N, H, W) is 1 darkened: what survives."""
    keep = 1.0 - (1.0 - DROPPED_SHADE) * dropped[..., None]
    return images * keep


def _paint(images: np.ndarray, where: np.ndarray, color: Sequence[float], strength: float = 0.75) -> np.ndarray:
    """Blend ``color`` into ``images`` (N, H, W, 3) where ``where`` (N, H, W) is true."""
    out = images.copy()
    out[where] = (1.0 - strength) * out[where] + strength * np.asarray(color)
    return out


def _uint8(rows: list[np.ndarray]) -> list[np.ndarray]:
    return [np.clip(np.round(r * 255.0), 0, 255).astype(np.uint8) for r in rows]


def _as_batch(features: Tensor, images: np.ndarray) -> tuple[Tensor, np.ndarray]:
    if features.dim() == 3:
        features = features[None]
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 3:
        images = images[None]
    if features.dim() != 4 or images.ndim != 4 or len(features) != len(images):
        raise ValueError(
            f"expected features (N, C, h, w) and images (N, H, W, 3) for the same N images, got shapes "
            f"{tuple(features.shape)} and {images.shape}: pass one image per feature map"
        )
    if images.shape[1] % features.shape[-2] or images.shape[2] % features.shape[-1]:
        raise ValueError(
            f"image size {images.shape[1:3]} must be a multiple of the feature map size {tuple(features.shape[-2:])}"
        )
    return features.detach().float().cpu(), images


def _montage_axes(fig: Figure, rect: tuple[float, float, float, float], rows: list[np.ndarray],
                  row_names: Sequence[str], gap: int = 4):
    """Draw a montage of ``rows`` (each (N, H, W, 3) in [0, 1]) on one axis, names at the left."""
    ax = fig.add_axes(rect)
    ax.imshow(montage(_uint8(rows), gap=gap), interpolation="nearest")
    height = rows[0].shape[1]
    for r, name in enumerate(row_names):
        ax.text(-3, r * (height + gap) + height / 2, name, ha="right", va="center", fontsize=8)
    hide_axis(ax)
    return ax


def _heat_colorbar(fig: Figure, rect: tuple[float, float, float, float], label: str, vmax: float = 1.0) -> None:
    cax = fig.add_axes(rect)
    fig.colorbar(ScalarMappable(Normalize(0.0, vmax), CMAP), cax=cax, label=label, ticks=[0.0, vmax / 2, vmax])
    cax.tick_params(labelsize=7)
    cax.yaxis.label.set_size(8)


# --------------------------------------------------------------------------------------------
# Chapter 03: ADL
# --------------------------------------------------------------------------------------------
@_single_threaded
def adl_view(features: Tensor, image: np.ndarray, gamma: float = 0.8, drop_rate: float = 0.75) -> Figure:
    """ADL on one feature map ``F`` (1, C, h, w): the image, ``A = mean_c F``, ``I = sigmoid(A)``,
    ``M = 1[A < gamma max A]``, and what the next layer receives: ``F * M`` with probability
    ``drop_rate``, else ``F * I`` (both shown as their channel mean).

    ``A``, ``F * M`` and ``F * I`` share one colour scale (0 to ``max A``); ``I`` is on its own
    0-1 scale; ``M`` is white where kept and black where dropped.
    """
    features, images = _as_batch(features, image)
    features = features[:1]
    importance, drop_mask = adl_masks(features, gamma)
    means = spatial_attention(torch.cat([features, features * drop_mask, features * importance]))[:, 0].numpy()
    vmax = max(float(means[0].max()), 1e-12)
    size = images.shape[1]
    a_scaled = heat_rgb(_grid_to_pixels(means, size), 0.0, vmax)
    mask = _grid_to_pixels(drop_mask[:, 0].numpy(), size)[0]
    tiles = [images[0], a_scaled[0], heat_rgb(_grid_to_pixels(importance[:, 0].numpy(), size))[0],
             np.repeat(mask[..., None], 3, axis=-1), a_scaled[1], a_scaled[2]]
    titles = ["input", "A = mean_c F", "I = sigmoid(A)\nscale 0-1", f"M (gamma={gamma:.2f})\nkeeps {100 * mask.mean():.0f}%",
              f"mean_c F*M\n(p={drop_rate:.2f})", f"mean_c F*I\n(p={1 - drop_rate:.2f})"]
    fig = Figure(figsize=(10.0, 2.5), dpi=_DPI)
    ax = _montage_axes(fig, (0.01, 0.03, 0.87, 0.72), [np.stack(tiles)], [""], gap=6)
    for k, title in enumerate(titles):
        ax.text(k * (size + 6) + size / 2, -2, title, ha="center", va="bottom", fontsize=8)
    # a grey frame keeps M's white (kept) cells apart from the white page
    ax.add_patch(Rectangle((3 * (size + 6) - 1, -1), size + 1, size + 1, fill=False, ec="0.6", lw=0.8))
    _heat_colorbar(fig, (0.9, 0.1, 0.012, 0.6), "A, F*M, F*I", vmax=vmax)
    return fig


# --------------------------------------------------------------------------------------------
# Chapter 04: CAGD
# --------------------------------------------------------------------------------------------
@_single_threaded
def channel_object_shares(features: Tensor, masks: Tensor) -> Tensor:
    """Per sample and channel, the share of the channel's activation mass on the object: (N, C).

    ``masks`` (N, H, W) object masks are average-pooled to the (h, w) grid of ``F`` (N, C, h, w);
    a channel with no activation gets NaN.
    """
    factor = masks.shape[-1] // features.shape[-1]
    on_grid = nnf.avg_pool2d(masks.float()[:, None], factor)[:, 0]
    mass = features.sum(dim=(2, 3))
    inside = (features * on_grid[:, None]).sum(dim=(2, 3))
    return torch.where(mass > 0, inside / mass.clamp_min(1e-12), torch.full_like(mass, float("nan")))


@_single_threaded
def channel_gallery_view(features: Tensor, image: np.ndarray, count: int = 6) -> Figure:
    """The ``count`` channels of one map ``F`` (1, C, h, w) with the largest and the smallest ``|S_c|``.

    Each channel map is shown on its own scale (its maximum is red), titled with its rank and
    ``S_c``; the image comes first. What CAGD's ranking looks like on real features.
    """
    features, images = _as_batch(features, image)
    scores = features[0].mean(dim=(1, 2))
    order = torch.argsort(scores.abs(), descending=True, stable=True)
    picks = torch.cat([order[:count], order[-count:]])
    size, gap = images.shape[1], 12
    maps = features[0, picks].numpy()
    peaks = np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-12)
    channel_rgb = heat_rgb(_grid_to_pixels(maps / peaks, size))
    rows = [np.concatenate([images[:1], channel_rgb[:count]]),
            np.concatenate([np.ones_like(images[:1]), channel_rgb[count:]])]
    fig = Figure(figsize=(1.05 * (count + 1) + 0.9, 3.0), dpi=_DPI)
    ax = _montage_axes(fig, (0.02, 0.02, 0.86, 0.8), rows, ["", ""], gap=gap)
    channels = len(scores)
    for j, c in enumerate(picks.tolist()):
        rank = j + 1 if j < count else channels - 2 * count + j + 1
        row, col = divmod(j, count)
        x = (col + 1) * (size + gap) + size / 2
        ax.text(x, row * (size + gap) - 1, f"#{rank}: S={float(scores[c]):.3f}", ha="center", va="bottom", fontsize=7)
    _heat_colorbar(fig, (0.9, 0.2, 0.015, 0.5), "F_c / its max")
    fig.suptitle(f"Channels ranked by |S_c| = |GAP(F)_c|: top {count} (upper row), bottom {count} (lower row), "
                 f"each on its own scale", fontsize=9)
    return fig


@_single_threaded
def keep_share_view(features: Tensor, betas: Sequence[float] = (2.0, 2.5, 3.0, 3.5), keep_ratio: float = 0.5) -> Figure:
    """Histogram over N maps ``F`` (N, C, h, w) of the share of channels CAGD marks important, for
    each ``beta`` of the paper, with the fixed share of the ``keep_ratio`` form as a dashed line."""
    fig = Figure(figsize=(6.0, 3.0), dpi=_DPI, layout="constrained")
    ax = fig.subplots()
    channels = features.shape[1]
    bins = (np.arange(channels + 2) - 0.5) / channels
    for beta in betas:
        shares = channel_keep_shares(features, beta=beta).numpy()
        ax.hist(shares, bins=bins, histtype="step", lw=1.5, label=f"beta={beta:g}: mean {100 * shares.mean():.0f}%")
    ax.axvline(math.ceil(keep_ratio * channels) / channels, color="black", ls="--", lw=1,
               label=f"keep_ratio={keep_ratio:g}")
    ax.set_xlabel("share of channels marked important (always kept)")
    ax.set_ylabel("feature maps")
    ax.set_xlim(0, 1.02)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"Channels the beta rule always keeps, over {len(features)} feature maps", fontsize=10)
    return fig


@_single_threaded
def cagd_view(
    features: Tensor,
    image: np.ndarray,
    weight: Tensor,
    label: int,
    beta: float = 3.0,
    alpha: float = 0.5,
    keep_ratio: float = 0.0,
    seed: int = 0,
) -> Figure:
    """CAGD on one feature map ``F`` (1, C, h, w) of the last block: which channels survive one draw.

    Left: channels ranked by ``|S_c|`` (``S = GAP(F)``), coloured important (always kept), kept by
    chance, or dropped (probability ``alpha``); the dashed line is the threshold ``t = beta * min |S|``
    (or the top-k cut when ``keep_ratio > 0``; ``keep_ratio = 0`` means the ``beta`` rule). Right:
    ``A = mean_c F`` and the class-``label`` CAM (classifier ``weight`` (K, C)) before and after
    ``F * Mdrop1``, each pair on the scale of its "before" map.
    """
    features, images = _as_batch(features, image)
    features = features[:1]
    generator = torch.Generator().manual_seed(int(seed))
    ratio = keep_ratio if keep_ratio > 0 else None
    mask, scores, important = cagd_channel_mask(features, beta, alpha, ratio, generator)
    fig = Figure(figsize=(10.0, 3.4), dpi=_DPI)
    _cagd_bars(fig, scores[0].abs().numpy(), mask[0].numpy() > 0, important[0].numpy(), ratio, beta, alpha)
    _cagd_maps(fig, features, features * mask[:, :, None, None], images, weight, label)
    fig.suptitle(f"CAGD on the last block's features F ({features.shape[1]} channels), draw seed {seed}", fontsize=10)
    return fig


def _cagd_bars(fig: Figure, magnitude: np.ndarray, kept: np.ndarray, important: np.ndarray, ratio: float | None,
               beta: float, alpha: float) -> None:
    """Left of ``cagd_view``: channels ranked by ``|S_c|``, coloured by their fate, and the threshold."""
    order = np.argsort(-magnitude, kind="stable")
    kept, imp = kept[order], important[order]
    # RGBA rows, not C colour names: parsing a name per bar took a sixth of a redraw
    palette = to_rgba_array(["0.82", "lightskyblue", "tab:blue"])
    colours = palette[np.where(imp, 2, np.where(kept, 1, 0))]
    peak = max(float(magnitude.max()), 1e-12)
    floor = peak * 1e-3  # log scale, so the weak channels CAGD may drop stay visible; zeros sit on the floor

    def draw_frame(ax: Any) -> None:
        ax.set_yscale("log")
        ax.set_xlim(-1, len(order))
        ax.set_ylim(floor, 2 * peak)
        ax.set_xlabel("channels ranked by |S_c| (blue: important, light: kept this draw, grey: dropped)", fontsize=8)
        ax.set_ylabel("|S_c| = |GAP(F)_c| (log)", fontsize=8)
        ax.set_xticks(np.arange(0, len(order), 16))
        # plain labels, no minor ticks: mathtext and minor ticks would cost a third of a redraw
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.tick_params(labelsize=7)
        _heat_colorbar(ax.figure, (0.9, 0.2, 0.013, 0.5), "share of the\n'before' range")

    bars = framed_axes(fig, (0.07, 0.16, 0.42, 0.66), draw_frame, key=("cagd bars", peak, len(order)))
    # one LineCollection draws several times faster than C bar patches (slider budget)
    bars.vlines(np.arange(len(order)), floor, np.maximum(magnitude[order], floor), colors=colours, linewidth=3.0)
    if ratio is None:
        threshold = beta * float(magnitude.min())
        bars.axhline(max(threshold, floor), color="black", ls="--", lw=1)
        rule = f"beta={beta:.2f}: t = beta*min|S| = {threshold:.2g}"
    else:
        cut = int(imp.sum())
        bars.axvline(cut - 0.5, color="black", ls="--", lw=1)
        rule = f"keep_ratio={ratio:.2f}: top {cut} kept"
    bars.set_title(f"{rule}; important {int(imp.sum())}/{len(imp)}, dropped {int((~kept).sum())} (alpha={alpha:.2f})",
                   fontsize=9)


def _cagd_maps(fig: Figure, features: Tensor, after: Tensor, images: np.ndarray, weight: Tensor, label: int) -> None:
    """Right of ``cagd_view``: ``A`` and the class-``label`` CAM before and after ``F * Mdrop1``."""
    stacked = torch.cat([features, after])
    attention = spatial_attention(stacked)[:, 0].numpy()
    cams = class_activation_maps(stacked, weight.detach().float().cpu(), torch.tensor([label, label])).numpy()
    size, gap = images.shape[1], 6
    a_scale = max(float(attention[0].max()), 1e-12)
    attention_rgb = heat_rgb(_grid_to_pixels(attention / a_scale, size))
    cam_rgb = heat_rgb(_grid_to_pixels(cams, size), float(cams[0].min()), float(cams[0].max()))
    rows = [np.stack([images[0], attention_rgb[0], attention_rgb[1]]),
            np.stack([np.ones_like(images[0]), cam_rgb[0], cam_rgb[1]])]
    ax = _montage_axes(fig, (0.58, 0.04, 0.3, 0.78), rows, ["", ""], gap=gap)
    for k, name in enumerate(["input", "before", "after"]):
        ax.text(k * (size + gap) + size / 2, -2, name, ha="center", va="bottom", fontsize=8)
    ax.text(size / 2, 1.5 * size + gap, f"top row:\nA = mean_c F\n\nbottom row:\nCAM, class {label}",
            ha="center", va="center", fontsize=7)


# --------------------------------------------------------------------------------------------
# Chapter 05: SAGD, ADL and the random-block control
# --------------------------------------------------------------------------------------------
@_single_threaded
def sagd_view(
    features: Tensor,
    images: np.ndarray,
    delta_l: float = 0.1,
    delta_h: float = 0.8,
    block_size: int | str = 3,
) -> Figure:
    """SAGD's drop region on N feature maps ``F`` (N, C, h, w) and their images (N, H, W, 3).

    Rows: the input; ``An`` (normalised ``A = mean_c F``); the core ``D`` (orange: ``An > delta_h``,
    stage 1; blue: ``An < delta_l``, stage 2) with the cells that block expansion adds in pale
    yellow; what the next layer keeps with ``Mdrop2 = 1 - D_block`` (dropped cells darkened).
    """
    features, images = _as_batch(features, images)
    try:  # the functional op checks the thresholds; a slider pair it refuses becomes a message, not a traceback
        maps = sagd_drop_region(features, delta_l, delta_h, block_size)
    except ValueError as error:
        return _message_figure(f"{error}.\nMove one of the sliders.")
    size = images.shape[1]
    grid = {k: _grid_to_pixels(maps[k][:, 0].numpy(), size) for k in ("normalized_attention", "stage1", "stage2", "region")}
    region_row = _paint(images * 0.6 + 0.4, grid["region"] > 0, _BLOCK_GROWTH_COLOR, 0.9)
    region_row = _paint(region_row, grid["stage1"] > 0, STAGE1_COLOR, 0.95)
    region_row = _paint(region_row, grid["stage2"] > 0, STAGE2_COLOR, 0.95)
    rows = [images, heat_rgb(grid["normalized_attention"]), region_row, shade_dropped(images, grid["region"])]
    n = len(images)
    fig = Figure(figsize=(1.05 * n + 1.9, 4.6), dpi=_DPI)
    _montage_axes(fig, (0.14, 0.03, 0.74, 0.84), rows, ["input", "An", "D, D_block", "kept: Mdrop2"])
    _heat_colorbar(fig, (0.9, 0.5, 0.015, 0.22), "An")
    shares = maps["region"].flatten(1).mean(1)
    k = resolve_block_size(block_size, features.shape[-2])
    fig.suptitle(
        f"SAGD: delta_h={delta_h:.2f} (orange), delta_l={delta_l:.2f} (blue), block {k} (pale: grown)\n"
        f"drops {100 * float(shares.mean()):.0f}% of the positions on average",
        fontsize=9,
    )
    return fig


#: The erasing methods ``drop_regions`` compares, in display order.
DROP_METHODS = ("adl", "sagd_stage1", "sagd_stage12", "random")


@_single_threaded
def drop_regions(
    features: Tensor,
    gamma: float = 0.8,
    delta_h: float = 0.8,
    delta_l: float = 0.1,
    block_size: int | str = 3,
    random_p: float = 0.1,
    seed: int = 0,
) -> dict[str, Tensor]:
    """What each method would erase on ``F`` (N, C, h, w): 0/1 regions (N, 1, h, w) by ``DROP_METHODS`` key.

    ``adl``: ``1 - M`` with ``M = 1[A < gamma max A]``; ``sagd_stage1``: ``D_block`` with
    ``delta_l = 0``; ``sagd_stage12``: ``D_block`` with both stages; ``random``: one draw of
    ``RandomDropBlock(block_size, p=random_p)`` (the nearest odd block size, seeded by ``seed``).
    """
    k = resolve_block_size(block_size, features.shape[-2])
    _, adl_keep = adl_masks(features, gamma)
    control = RandomDropBlock(block_size=k if k % 2 else k + 1, p=random_p, generator=torch.Generator().manual_seed(seed))
    return {
        "adl": 1.0 - adl_keep,
        "sagd_stage1": sagd_drop_region(features, 0.0, delta_h, k)["region"],
        "sagd_stage12": sagd_drop_region(features, delta_l, delta_h, k)["region"],
        "random": 1.0 - control.masks(features)["drop_mask"],
    }


@_single_threaded
def peak_left(features: Tensor, region: Tensor) -> Tensor:
    """The strongest normalised attention ``An`` left outside an erased ``region`` (N, 1, h, w): (N,).

    1 means the hottest cell survived; a low value means the erasing removed the evidence around it.
    """
    normalised = normalize_attention(spatial_attention(features.detach()))
    return torch.where(region > 0, torch.zeros_like(normalised), normalised).flatten(1).max(dim=1).values


@_single_threaded
def drop_masks_view(
    features: Tensor,
    images: np.ndarray,
    gamma: float = 0.8,
    delta_h: float = 0.8,
    delta_l: float = 0.1,
    block_size: int | str = 3,
    random_p: float = 0.1,
    seed: int = 0,
    methods: Sequence[str] = DROP_METHODS,
) -> Figure:
    """The paper's Fig. 4 on our features: what ADL, SAGD and a random DropBlock erase.

    Rows for N maps ``F`` (N, C, h, w): input; ``An``; then one row per entry of ``methods`` (keys
    of ``drop_regions``: ADL's pixel mask, SAGD stage 1, SAGD stages 1+2, random blocks). Dropped
    cells are darkened; each row's label gives its mean dropped share.
    """
    unknown = [m for m in methods if m not in DROP_METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}: choose from {DROP_METHODS}")
    features, images = _as_batch(features, images)
    size = images.shape[1]
    k = resolve_block_size(block_size, features.shape[-2])
    regions = drop_regions(features, gamma, delta_h, delta_l, k, random_p, seed)
    titles = {
        "adl": f"ADL M (gamma {gamma:.2f})",
        "sagd_stage1": f"SAGD stage 1 (k={k})",
        "sagd_stage12": f"SAGD stages 1+2\n(delta_l {delta_l:.2f})",
        "random": f"random blocks (p={random_p:.2f})",
    }
    normalised = normalize_attention(spatial_attention(features))[:, 0].numpy()
    rows = [images, heat_rgb(_grid_to_pixels(normalised, size))]
    names = ["input", "An"]
    for method in methods:
        region = regions[method]
        rows.append(shade_dropped(images, _grid_to_pixels(region[:, 0].numpy(), size)))
        names.append(f"{titles[method]}\ndrops {100 * float(region.mean()):.0f}%")
    n = len(images)
    height = 1.05 * len(rows) + 0.5
    fig = Figure(figsize=(1.05 * n + 2.4, height), dpi=_DPI)
    _montage_axes(fig, (0.2, 0.02, 0.7, 1 - 0.5 / height), rows, names)
    _heat_colorbar(fig, (0.92, 1 - 2.1 / height, 0.015, 0.8 / height), "An")
    thresholds = f"; delta_h={delta_h:.2f}" if any(m.startswith("sagd") for m in methods) else ""
    fig.suptitle(f"What each method erases (darkened) on the same features{thresholds}", fontsize=9)
    return fig


@_single_threaded
def block_expansion_view(
    features: Tensor,
    image: np.ndarray,
    delta_h: float = 0.8,
    block_sizes: Sequence[int | str] = (1, 2, 3, 5, "adaptive"),
) -> Figure:
    """Block expansion on one map ``F`` (1, C, h, w): ``D = 1[An > delta_h]`` grown to each block size.

    Each panel is the image with ``D`` in orange and the cells ``D_block`` adds in pale yellow,
    titled with the share of positions dropped. Even sizes grow up and to the left.
    """
    features, images = _as_batch(features, image)
    features, images = features[:1], images[:1]
    size = images.shape[1]
    core = None
    panels, names = [], []
    for block in block_sizes:
        maps = sagd_drop_region(features, 0.0, delta_h, block)
        core = _grid_to_pixels(maps["stage1"][:, 0].numpy(), size)
        region = _grid_to_pixels(maps["region"][:, 0].numpy(), size)
        panel = _paint(_paint(images * 0.6 + 0.4, region > 0, _BLOCK_GROWTH_COLOR, 0.9), core > 0, STAGE1_COLOR, 0.95)
        panels.append(panel[0])
        k = resolve_block_size(block, features.shape[-2])
        label = f"adaptive={k}" if block == "adaptive" else f"block {k}"
        names.append(f"{label}: {100 * float(maps['region'].mean()):.0f}%")
    fig = Figure(figsize=(1.45 * len(panels), 2.0), dpi=_DPI)
    ax = _montage_axes(fig, (0.01, 0.02, 0.98, 0.72), [np.stack(panels)], [""])
    for k, name in enumerate(names):
        ax.text(k * (size + 4) + size / 2, -3, name, ha="center", va="bottom", fontsize=8)
    fig.suptitle(f"D = An > {delta_h:.2f} (orange) grown into D_block (pale) by block size; % = share dropped",
                 fontsize=9)
    return fig


@_single_threaded
def delta_sweep_view(
    features: Tensor,
    images: np.ndarray,
    parameter: str = "delta_h",
    values: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
    delta_l: float = 0.0,
    delta_h: float = 0.8,
    block_size: int | str = 3,
) -> Figure:
    """One row per value of ``parameter`` (``"delta_h"`` or ``"delta_l"``), the other held fixed:
    N images with the positions SAGD would drop darkened, each row labelled with its mean share."""
    if parameter not in ("delta_h", "delta_l"):
        raise ValueError(f"parameter must be 'delta_h' or 'delta_l', got {parameter!r}")
    features, images = _as_batch(features, images)
    size = images.shape[1]
    rows, names = [images], ["input"]
    for value in values:
        low, high = (delta_l, value) if parameter == "delta_h" else (value, delta_h)
        region = sagd_drop_region(features, low, high, block_size)["region"]
        rows.append(shade_dropped(images, _grid_to_pixels(region[:, 0].numpy(), size)))
        names.append(f"{parameter}={value:.2f}\ndrops {100 * float(region.mean()):.0f}%")
    fixed = f"delta_l={delta_l:.2f}" if parameter == "delta_h" else f"delta_h={delta_h:.2f}"
    n = len(images)
    fig = Figure(figsize=(1.05 * n + 1.6, 1.05 * len(rows) + 0.4), dpi=_DPI)
    _montage_axes(fig, (0.15, 0.02, 0.83, 0.9), rows, names)
    k = resolve_block_size(block_size, features.shape[-2])
    fig.suptitle(f"Sweeping {parameter} ({fixed}, block {k}): darkened = dropped by SAGD", fontsize=9)
    return fig


@_single_threaded
def drop_area_curve_view(
    features: Tensor,
    deltas: Sequence[float] = (0.01, 0.02, *np.round(np.arange(0.05, 1.0, 0.05), 2).tolist()),
    block_sizes: Sequence[int | str] = (1, 3),
    adl_gamma: float | None = 0.8,
) -> Figure:
    """Mean share of positions dropped over N maps ``F`` (N, C, h, w) as the thresholds move.

    Solid: stage 1 alone at ``delta_h`` (x axis); dashed: stage 2 alone at ``delta_l`` (x axis);
    one colour per block size. A cross marks ADL's pixel mask at ``adl_gamma`` for scale.
    """
    features = features.detach().float().cpu()
    fig = Figure(figsize=(8.0, 3.3), dpi=_DPI, layout="constrained")
    ax = fig.subplots()
    for colour, block in zip(("tab:blue", "tab:orange", "tab:green", "tab:purple"), block_sizes):
        k = resolve_block_size(block, features.shape[-2])
        high = [100 * float(drop_share(features, 0.0, d, k).mean()) for d in deltas]
        low = [100 * float(drop_share(features, d, 1.0, k).mean()) for d in deltas]
        ax.plot(deltas, high, color=colour, label=f"stage 1 (x = delta_h), block {k}")
        ax.plot(deltas, low, color=colour, ls="--", label=f"stage 2 (x = delta_l), block {k}")
    if adl_gamma is not None:
        _, keep = adl_masks(features, adl_gamma)
        ax.plot([adl_gamma], [100 * float(1 - keep.mean())], "kx", ms=8, label=f"ADL M at gamma={adl_gamma:g}")
    ax.set_xlabel("threshold on the normalised attention An")
    ax.set_ylabel("positions dropped (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"How much SAGD drops, mean over {len(features)} feature maps", fontsize=10)
    return fig


def _message_figure(text: str) -> Figure:
    fig = Figure(figsize=(6.0, 1.0), dpi=_DPI)
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, wrap=True)
    return fig
