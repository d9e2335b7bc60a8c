"""The lead's slider views (chapters 01-03) and the slider wiring, without widgets."""

import numpy as np
import torch
from matplotlib.figure import Figure

from dgdm_lib.views.attention import adl_view
from dgdm_lib.views.cams import box_area, box_coverage, cam_threshold_view
from dgdm_lib.views.data import contrast_view, hide_heads, montage, texture_strength
from dgdm_lib.widgets import float_slider, render, slider_view


def _png(fig: Figure) -> np.ndarray:
    import io

    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(render(fig)))


def test_contrast_view_changes_the_picture_when_contrast_changes():
    flat, striped = _png(contrast_view(0.0, seed=1)), _png(contrast_view(0.2, seed=1))
    assert flat.shape == striped.shape
    assert np.abs(flat - striped).mean() > 0.002


def test_texture_strength_grows_with_pattern_contrast():
    assert texture_strength(0.0, n=16) < texture_strength(0.06, n=16) < texture_strength(0.12, n=16)


def test_hide_heads_paints_only_head_pixels():
    images = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    heads = np.zeros((1, 4, 4), dtype=bool)
    heads[0, 1, 2] = True
    hidden = hide_heads(images, heads)
    assert hidden[0, 1, 2].tolist() == [128, 128, 128] and hidden.sum() == 3 * 128
    assert images.sum() == 0, "the input is not modified"


def test_montage_tiles_rows_of_images_with_gaps():
    rows = [np.full((3, 2, 2, 3), 10, np.uint8), np.full((3, 2, 2, 3), 20, np.uint8)]
    canvas = montage(rows, gap=1)
    assert canvas.shape == (2 * 3, 3 * 3, 3)
    assert canvas[0, 0, 0] == 10 and canvas[3, 3, 0] == 20 and canvas[2, 0, 0] == 255


def test_box_coverage_of_a_box_around_the_head_only():
    masks = np.zeros((1, 10, 10), dtype=bool)
    masks[0, 2:8, 2:8] = True
    heads = np.zeros_like(masks)
    heads[0, 2:4, 2:4] = True
    cam = np.zeros((1, 10, 10))
    cam[0, 2:4, 2:4] = 1.0  # a CAM that lights the head only
    head_cov, body_cov = box_coverage(cam, masks, heads, tau=0.2)
    assert head_cov[0] == 1.0
    # The reference's box is x, y, x+w, y+h: one pixel wider than the 2x2 region, so the 3x3 box
    # takes in 5 of the 32 body pixels.
    assert body_cov[0] == 5 / 32
    assert box_area(np.array([[2, 2, 3, 3]]))[0] == 4


class _FakeCamSet:
    def __init__(self):
        gen = torch.Generator().manual_seed(0)
        self.images = torch.randn(2, 3, 32, 32, generator=gen)
        yy, xx = np.mgrid[:32, :32]
        blob = np.exp(-((xx - 10) ** 2 + (yy - 12) ** 2) / 40.0)
        self.cams = np.stack([blob, blob[::-1]]).astype(np.float32)
        self.gt_boxes = [np.array([[4, 4, 20, 22]]), np.array([[5, 5, 25, 25]])]
        self.labels = torch.tensor([1, 2])


def test_cam_threshold_view_box_grows_as_tau_falls():
    camset = _FakeCamSet()
    low, high = _png(cam_threshold_view(camset, 0, 0.1)), _png(cam_threshold_view(camset, 0, 0.8))
    assert np.abs(low - high).mean() > 0.001


def test_adl_view_draws_six_panels_and_reacts_to_gamma():
    features = torch.rand(1, 8, 16, 16)
    image = np.zeros((32, 32, 3))
    fig = adl_view(features, image, gamma=0.5)
    picture = next(ax for ax in fig.axes if ax.images).images[0].get_array()
    assert picture.shape[1] == 6 * (32 + 6), "six 32-pixel panels side by side: input, A, I, M, F*M, F*I"
    assert np.abs(_png(adl_view(features, image, 0.3)) - _png(adl_view(features, image, 0.95))).mean() > 0.001


def test_slider_view_redraws_on_change_and_records_the_time():
    calls = []

    def draw(x):
        calls.append(x)
        return f"x = {x}"

    slider = float_slider("x", 0.5, 0.0, 1.0, 0.1)
    view = slider_view(draw, x=slider)
    assert calls == [0.5] and view.last_ms >= 0
    slider.value = 0.7
    assert calls == [0.5, 0.7]
    assert slider.continuous_update is False


def test_check_redraw_prints_a_slow_draw_and_never_fails(capsys):
    import time

    from dgdm_lib import widgets

    def slow():
        time.sleep(0.03)
        return "done"

    assert widgets.check_redraw(slow, budget_ms=1000) >= 30
    assert "within the 1000 ms aim" in capsys.readouterr().out
    assert widgets.check_redraw(slow, budget_ms=5) >= 30  # measured and printed, not asserted
    assert "over the 5 ms aim" in capsys.readouterr().out


def test_check_redraw_measures_again_when_over_budget_and_keeps_the_best(monkeypatch, capsys):
    from dgdm_lib import widgets

    measured = iter([250.0, 120.0])
    monkeypatch.setattr(widgets, "redraw_ms", lambda draw, **values: next(measured))
    monkeypatch.setattr(widgets.time, "sleep", lambda seconds: None)
    assert widgets.check_redraw(lambda: "x", budget_ms=200) == 120.0
    always_slow = iter([250.0, 240.0, 230.0, 100.0])
    monkeypatch.setattr(widgets, "redraw_ms", lambda draw, **values: next(always_slow))
    assert widgets.check_redraw(lambda: "x", budget_ms=200) == 230.0
    assert "250 ms, then 240 ms, then 230 ms (over the 200 ms aim" in capsys.readouterr().out.splitlines()[-1]


def test_framed_axes_pastes_the_frame_where_it_would_have_been_drawn():
    from dgdm_lib.plotting import framed_axes

    def frame(ax):
        ax.plot([0, 1], [0, 1], color="black")
        ax.set_xlabel("x label")
        ax.set_ylim(0, 2)

    direct = Figure(figsize=(3, 2), dpi=80)
    frame(direct.add_axes((0.2, 0.25, 0.7, 0.65)))
    pasted = Figure(figsize=(3, 2), dpi=80)
    ax = framed_axes(pasted, (0.2, 0.25, 0.7, 0.65), frame, key="test frame")
    assert ax.get_ylim() == (0, 2) and not ax.lines
    difference = np.abs(_png(direct)[..., :3] - _png(pasted)[..., :3])
    assert difference.max() == 0, "the frame is pasted pixel for pixel"
    again = Figure(figsize=(3, 2), dpi=80)
    framed_axes(again, (0.2, 0.25, 0.7, 0.65), lambda ax: None, key="test frame")  # cached: not drawn again
    assert np.abs(_png(again)[..., :3] - _png(pasted)[..., :3]).max() == 0
