"""Chapter 04-05 views (dgdm_lib.views.attention): figures of CAGD's and SAGD's masks, without widgets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from dgdm_lib.plotting import FRAME_GID
from dgdm_lib.views.attention import (
    DROPPED_SHADE,
    block_expansion_view,
    cagd_view,
    channel_gallery_view,
    channel_keep_shares,
    channel_object_shares,
    delta_sweep_view,
    drop_area_curve_view,
    drop_masks_view,
    drop_regions,
    drop_share,
    features_at_positions,
    keep_share_view,
    peak_left,
    sagd_view,
)
from dgdm_lib.views.data import montage
from dgdm_lib.widgets import render

GAP = 4  # the montage gap the views use


def _features(n: int = 3, channels: int = 8, size: int = 8, seed: int = 0) -> torch.Tensor:
    """Rectified feature maps (n, C, size, size): a smooth bump per map (so An takes every value
    between 0 and 1) times random positive channel gains, plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.arange(size, dtype=torch.float32)
    maps = []
    for k in range(n):
        cy, cx = (k * 3) % size, (k * 5 + 2) % size
        bump = torch.exp(-((grid[:, None] - cy) ** 2 + (grid[None, :] - cx) ** 2) / (2 * (size / 3) ** 2))
        gains = torch.rand(channels, 1, 1, generator=g) + 0.2
        maps.append(gains * bump + 0.05 * torch.rand(channels, size, size, generator=g))
    return torch.relu(torch.stack(maps))


def _white(n: int, size: int) -> np.ndarray:
    return np.ones((n, size, size, 3))


def _montage_of(fig: Figure) -> np.ndarray:
    """The one tiled picture of a view (the first axis that shows an image, pasted frames aside)."""
    return np.asarray(next(ax for ax in fig.axes if ax.images and ax.get_gid() != FRAME_GID).images[0].get_array())


def _row(picture: np.ndarray, row: int, size: int) -> np.ndarray:
    """The image cells of one montage row, gaps cut away: (N*size, size) per channel 0."""
    band = picture[row * (size + GAP) : row * (size + GAP) + size, :, 0]
    columns = [band[:, k * (size + GAP) : k * (size + GAP) + size] for k in range(band.shape[1] // (size + GAP))]
    return np.concatenate(columns, axis=1)


def _bar_colours(fig: Figure) -> list[str]:
    return [to_hex(c) for c in fig.axes[0].collections[0].get_colors()]


def _bar_heights(fig: Figure) -> list[float]:
    return [float(segment[1, 1]) for segment in fig.axes[0].collections[0].get_segments()]


# --------------------------------------------------------------------------------------------
# CAGD
# --------------------------------------------------------------------------------------------
def test_beta_rule_keeps_every_channel_when_one_channel_is_dead():
    features = _features(n=2)
    features[:, 3] = 0.0  # a dead channel after ReLU: min |S| = 0, so t = 0
    assert channel_keep_shares(features, beta=3.0).tolist() == [1.0, 1.0]


def test_keep_ratio_keeps_the_same_share_whatever_the_scores():
    features = _features(n=2, channels=8)
    features[:, 3] = 0.0
    assert channel_keep_shares(features, keep_ratio=0.25).tolist() == [0.25, 0.25]


def test_cagd_view_ranks_channels_and_colours_the_top_keep_ratio_share_as_important():
    features, weight = _features(n=1, channels=8), torch.randn(4, 8)
    fig = cagd_view(features, _white(1, 32)[0], weight, label=1, keep_ratio=0.25, alpha=1.0)
    heights = _bar_heights(fig)
    colours = _bar_colours(fig)
    assert isinstance(fig, Figure)
    assert heights == sorted(heights, reverse=True)
    assert colours[:2] == [to_hex("tab:blue")] * 2
    assert set(colours[2:]) == {to_hex("0.82")}  # alpha = 1 drops every unimportant channel


def test_cagd_view_with_the_beta_rule_shows_everything_important_on_a_dead_channel():
    features = _features(n=1, channels=8)
    features[:, 5] = 0.0
    fig = cagd_view(features, _white(1, 32)[0], torch.randn(4, 8), label=0, beta=3.0, alpha=1.0)
    assert set(_bar_colours(fig)) == {to_hex("tab:blue")}


def _tile(picture: np.ndarray, row: int, col: int, size: int, gap: int) -> np.ndarray:
    return picture[row * (size + gap) : row * (size + gap) + size, col * (size + gap) : col * (size + gap) + size]


@pytest.mark.parametrize("row", [0, 1], ids=["attention", "cam"])
def test_cagd_view_after_map_equals_before_only_when_nothing_is_dropped(row: int):
    features, weight, size, gap = _features(n=1, channels=8), torch.randn(4, 8), 32, 6
    keep_all = _montage_of(cagd_view(features, _white(1, size)[0], weight, 0, keep_ratio=0.25, alpha=0.0))
    drop_all = _montage_of(cagd_view(features, _white(1, size)[0], weight, 0, keep_ratio=0.25, alpha=1.0))
    assert np.array_equal(_tile(keep_all, row, 1, size, gap), _tile(keep_all, row, 2, size, gap))
    assert not np.array_equal(_tile(drop_all, row, 1, size, gap), _tile(drop_all, row, 2, size, gap))


def test_channel_gallery_view_titles_the_strongest_channel_first():
    features = _features(n=1, channels=8)
    features[0, 5] *= 10.0
    fig = channel_gallery_view(features, _white(1, 32)[0], count=2)
    titles = [t.get_text() for t in fig.axes[0].texts if t.get_text().startswith("#")]
    assert titles[0] == f"#1: S={float(features[0, 5].mean()):.3f}"
    assert [t.split(":")[0] for t in titles] == ["#1", "#2", "#7", "#8"]


def test_channel_object_shares_is_one_for_a_channel_inside_the_object_and_nan_when_empty():
    features = torch.zeros(1, 2, 4, 4)
    features[0, 0, 1, 1] = 3.0
    masks = torch.zeros(1, 16, 16, dtype=torch.bool)
    masks[0, 4:8, 4:8] = True
    shares = channel_object_shares(features, masks)
    assert shares[0, 0] == 1.0 and torch.isnan(shares[0, 1])


def test_features_at_positions_reads_both_insertion_points_and_the_last_one_is_f():
    from dgdm_lib.models import build_model

    model = build_model("small", "cam", num_classes=3).eval()
    images = torch.randn(2, 3, 32, 32)
    features = features_at_positions(model, images)
    assert list(features) == ["block4", "block5"]
    assert torch.allclose(features["block5"], model.forward_features(images))
    assert not model.training


def test_keep_share_view_draws_one_histogram_per_beta():
    fig = keep_share_view(_features(n=4), betas=(2.0, 3.0), keep_ratio=0.5)
    assert len(fig.axes[0].patches) == 2
    assert fig.axes[0].lines[0].get_xdata()[0] == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------
# SAGD
# --------------------------------------------------------------------------------------------
def test_sagd_view_darkens_exactly_the_positions_of_d_block():
    features, size = _features(n=3), 32
    fig = sagd_view(features, _white(3, size), delta_l=0.1, delta_h=0.7, block_size=3)
    kept_row = _row(_montage_of(fig), 3, size)
    dark = kept_row == round(DROPPED_SHADE * 255)
    assert dark.mean() == pytest.approx(float(drop_share(features, 0.1, 0.7, 3).mean()))


@pytest.mark.parametrize("parameter,values", [("delta_h", (0.9, 0.6, 0.3)), ("delta_l", (0.1, 0.4, 0.7))])
def test_sagd_view_drops_more_as_the_slider_opens_the_region(parameter: str, values: tuple[float, ...]):
    features, size = _features(n=3), 32
    shares = []
    for value in values:
        kwargs = {"delta_l": 0.0, "delta_h": 0.95, parameter: value}
        kept_row = _row(_montage_of(sagd_view(features, _white(3, size), block_size=1, **kwargs)), 3, size)
        shares.append(float((kept_row < 255).mean()))
    assert shares[0] < shares[1] < shares[2]


def test_sagd_view_explains_impossible_thresholds_instead_of_raising():
    fig = sagd_view(_features(), _white(3, 32), delta_l=0.8, delta_h=0.5)
    assert "delta_l < delta_h" in fig.texts[0].get_text()


def test_views_reject_features_and_images_of_different_counts():
    with pytest.raises(ValueError, match="same N images"):
        sagd_view(_features(n=3), _white(2, 32))


def test_block_expansion_view_drops_more_with_bigger_blocks():
    fig = block_expansion_view(_features(n=1), _white(1, 32)[0], delta_h=0.8, block_sizes=(1, 2, 3, "adaptive"))
    labels = [t.get_text() for t in fig.axes[0].texts if "%" in t.get_text()]
    shares = [int(label.split(": ")[1].rstrip("%")) for label in labels]
    assert labels[-1].startswith("adaptive=2")  # ceil(8 / 7)
    assert shares[0] < shares[1] < shares[2]


def test_drop_masks_view_random_row_drops_nothing_at_p_zero_and_adl_row_matches_gamma():
    features, size = _features(n=2), 32
    fig = drop_masks_view(features, _white(2, size), gamma=0.5, random_p=0.0)
    picture = _montage_of(fig)
    assert (_row(picture, 5, size) == 255).all()
    attention = features.mean(dim=1)
    expected = (attention >= 0.5 * attention.flatten(1).max(1).values[:, None, None]).float().mean()
    assert (_row(picture, 2, size) < 255).mean() == pytest.approx(float(expected))


def test_peak_left_is_one_when_nothing_is_erased_and_drops_when_the_peak_is_erased():
    features = _features(n=2)
    nothing = torch.zeros(2, 1, 8, 8)
    assert peak_left(features, nothing).tolist() == [1.0, 1.0]
    stage1 = drop_regions(features, delta_h=0.5, block_size=1)["sagd_stage1"]
    assert bool((peak_left(features, stage1) <= 0.5).all())


def test_drop_regions_random_block_share_follows_p():
    features = _features(n=16, size=16)
    shares = [float(drop_regions(features, random_p=p, seed=1)["random"].mean()) for p in (0.0, 0.1, 0.3)]
    assert shares[0] == 0.0
    assert 0.05 < shares[1] < shares[2]


def test_drop_masks_view_rejects_unknown_methods():
    with pytest.raises(ValueError, match="unknown methods"):
        drop_masks_view(_features(n=1), _white(1, 32), methods=("adl", "cutout"))


def test_delta_sweep_view_rows_drop_less_as_delta_h_rises():
    features, size = _features(n=2), 32
    picture = _montage_of(delta_sweep_view(features, _white(2, size), "delta_h", values=(0.3, 0.6, 0.9), block_size=1))
    shares = [float((_row(picture, r, size) < 255).mean()) for r in (1, 2, 3)]
    assert shares[0] > shares[1] > shares[2]


def test_drop_area_curve_falls_with_delta_h_and_rises_with_delta_l():
    fig = drop_area_curve_view(_features(n=3), deltas=(0.2, 0.5, 0.8), block_sizes=(1,), adl_gamma=None)
    stage1, stage2 = (np.asarray(line.get_ydata()) for line in fig.axes[0].lines)
    assert np.all(np.diff(stage1) <= 0) and stage1[0] > stage1[-1]
    assert np.all(np.diff(stage2) >= 0) and stage2[0] < stage2[-1]


def test_montage_gap_matches_the_views():
    assert montage([np.zeros((2, 5, 5, 3), np.uint8)], gap=GAP).shape == (5 + GAP, 2 * (5 + GAP), 3)


# --------------------------------------------------------------------------------------------
# Redraw budget of the two slider views, at the notebooks' sizes (64 channels, 16x16, 64 px, 1 or 4 maps)
# --------------------------------------------------------------------------------------------
def _noise_images(n: int, size: int = 64) -> np.ndarray:
    """Noisy pictures: the slowest case for the PNG encoding a redraw includes."""
    return np.random.default_rng(0).random((n, size, size, 3))


# Redraw speed is measured by the notebooks (printed) and `make bench` ("Book cost"), never asserted
# here: `make test` must pass on a busy laptop. These check that a slider's view renders a picture.
def test_cagd_slider_view_renders_a_png():
    features, weight = _features(n=1, channels=64, size=16), torch.randn(8, 64)
    png = render(cagd_view(features=features, image=_noise_images(1)[0], weight=weight, label=0, keep_ratio=0.5))
    assert png.startswith(b"\x89PNG")


def test_sagd_slider_view_renders_a_png():
    png = render(sagd_view(features=_features(n=4, channels=64, size=16), images=_noise_images(4), delta_l=0.1))
    assert png.startswith(b"\x89PNG")


def test_views_leave_torch_thread_setting_as_they_found_it():
    before = torch.get_num_threads()
    sagd_view(_features(n=1), _white(1, 32))
    assert torch.get_num_threads() == before
