"""The chapter 06-07 views: curves agree with the metrics, and each figure follows its slider."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from dgdm_lib.evaluation import CamSet
from dgdm_lib.metrics import gt_known_loc, pxap
from dgdm_lib.plotting import PRED_COLOR
from dgdm_lib.views.comparison import (
    cam_montage_view,
    method_curves,
    metric_bars_view,
    overlay_cams,
    paint_box,
    pr_curves_view,
    region_means,
    region_means_view,
    shares_view,
    tau_curves_view,
    threshold_view,
)
from dgdm_lib.widgets import render

SIZE = 64


def _blob_camset(n: int = 8, spread: float = 8.0, seed: int = 0) -> CamSet:
    """n images with one square object each; the CAM is a Gaussian blob on the object's left part."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    cams, boxes, masks, heads = [], [], [], []
    for _ in range(n):
        x0, y0 = rng.integers(4, 24, size=2)
        side = int(rng.integers(24, 36))
        box = np.array([[x0, y0, x0 + side - 1, y0 + side - 1]])
        mask = (xx >= x0) & (xx <= x0 + side - 1) & (yy >= y0) & (yy <= y0 + side - 1)
        head = mask & (xx < x0 + side // 4)
        cx, cy = x0 + side // 4, y0 + side // 2
        cam = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * spread**2))
        cams.append((cam - cam.min()) / (cam.max() - cam.min()))
        boxes.append(box)
        masks.append(mask)
        heads.append(head)
    images = torch.from_numpy(rng.normal(0.0, 1.0, size=(n, 3, SIZE, SIZE)).astype(np.float32))
    logits = torch.from_numpy(rng.normal(size=(n, 8)).astype(np.float32))
    return CamSet(logits=logits, labels=logits.argmax(1), cams=np.stack(cams).astype(np.float32), pred_cams=None,
                  gt_boxes=boxes, masks=np.stack(masks), head_masks=np.stack(heads), images=images)


@pytest.fixture(scope="module")
def camsets() -> dict[str, CamSet]:
    return {"CAM": _blob_camset(spread=5.0), "ADL": _blob_camset(spread=9.0), "SAGD": _blob_camset(spread=13.0),
            "DGDM": _blob_camset(spread=18.0)}


@pytest.fixture(scope="module")
def curves(camsets):
    return method_curves(camsets)


def _green_pixels(fig: Figure) -> int:
    """Pixels painted in the prediction colour in the figure's montage (box outlines)."""
    green = np.round(np.array(to_rgb(PRED_COLOR)) * 255)
    picture = [ax for ax in fig.axes if ax.images][-1].images[0].get_array()
    return int((np.asarray(picture) == green).all(axis=-1).sum())


def test_curves_read_the_same_numbers_as_the_metric_functions(camsets, curves):
    cs, curve = camsets["ADL"], curves["ADL"]
    for tau in (0.1, 0.2, 0.5):
        assert curve.at(tau) == pytest.approx(gt_known_loc(cs.cams, cs.gt_boxes, tau=tau))
    assert curve.pxap == pytest.approx(pxap(cs.cams, cs.masks))
    assert curve.best_tau() == pytest.approx(curve.taus[np.argmax(curve.gt_known)])


def test_pixel_point_is_the_share_of_object_pixels_scoring_at_least_tau(camsets, curves):
    cs, curve = camsets["CAM"], curves["CAM"]
    recall, precision = curve.pixel_point(0.3)
    above = cs.cams >= 0.3
    assert recall == pytest.approx((above & cs.masks).sum() / cs.masks.sum())
    assert precision == pytest.approx((above & cs.masks).sum() / above.sum())


def test_overlay_keeps_shapes_and_moves_towards_the_colour_map():
    images = np.full((2, 4, 4, 3), 0.5)
    cams = np.zeros((2, 4, 4))
    cams[0, 0, 0] = 1.0
    out = overlay_cams(images, cams)
    assert out.shape == (2, 4, 4, 3) and out.dtype == np.uint8
    assert not np.array_equal(out[0, 0, 0], out[0, 1, 1])


def test_predicted_boxes_in_the_montage_shrink_as_tau_rises(camsets):
    assert _green_pixels(cam_montage_view(camsets, tau=0.8)) < _green_pixels(cam_montage_view(camsets, tau=0.1))


def test_painted_box_outlines_the_inclusive_pixels_only():
    tile = np.zeros((8, 8, 3), dtype=np.uint8)
    paint_box(tile, np.array([2, 1, 5, 3]), "red")
    painted = tile[..., 0] == 255
    assert painted.sum() == 2 * 4 + 2 * 3 - 4
    assert painted[1, 2] and painted[3, 5] and not painted[2, 3] and not painted[0].any() and not painted[:, 6:].any()


def test_montage_start_slider_shows_other_images(camsets):
    def picture(start: int) -> np.ndarray:
        return cam_montage_view(camsets, start=start).axes[0].images[0].get_array()

    assert not np.array_equal(picture(0), picture(2))


def test_montage_without_kept_images_says_how_to_keep_them(camsets):
    bare = CamSet(**{**camsets["CAM"].__dict__, "images": None})
    with pytest.raises(ValueError, match="keep_images"):
        cam_montage_view({"CAM": bare})


def test_tau_curves_mark_the_sliders_tau_and_the_chosen_tau(curves):
    fig = tau_curves_view(curves, tau=0.35, chosen={"CAM": 0.1})
    ax = fig.axes[0]
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert [line.get_xdata()[0] for line in dashed] == [0.35]
    stars = [line for line in ax.lines if line.get_marker() == "*"]
    assert len(stars) == 1 and stars[0].get_xdata()[0] == 0.1
    assert stars[0].get_ydata()[0] == pytest.approx(curves["CAM"].at(0.1))
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert [d.get_ydata()[0] for d in dots] == pytest.approx([c.at(0.35) for c in curves.values()])


def test_threshold_view_moves_its_line_and_its_boxes_together(curves, camsets):
    fig_low, fig_high = threshold_view(curves, camsets, tau=0.1), threshold_view(curves, camsets, tau=0.7)
    assert _green_pixels(fig_high) < _green_pixels(fig_low)
    line = next(ln for ln in fig_high.axes[0].lines if ln.get_linestyle() == "--")
    assert line.get_xdata()[0] == 0.7


def test_pr_operating_points_lose_recall_as_tau_rises(curves):
    def recalls(tau: float) -> list[float]:
        ax = pr_curves_view(curves, tau=tau).axes[0]
        return [line.get_xdata()[0] for line in ax.lines if line.get_marker() == "o"]

    assert all(hi < lo for lo, hi in zip(recalls(0.1), recalls(0.8)))


def test_share_bars_have_the_measured_widths():
    results = {"CAM": {"head_share": 50.0, "body_share": 30.0, "background_share": 20.0},
               "DGDM": {"head_share": 10.0, "body_share": 40.0, "background_share": 50.0}}
    ax = shares_view(results).axes[0]
    widths = [p.get_width() for p in ax.patches]
    assert widths == pytest.approx([50, 10, 30, 40, 20, 50])


def test_region_means_average_the_cam_over_each_region(camsets):
    cs = camsets["CAM"]
    means = region_means(cs)
    body = cs.masks & ~cs.head_masks
    assert means["body"] == pytest.approx(cs.cams[body].mean())
    assert means["head"] > means["background"]  # the blob sits on the "head" quarter of the object


def test_region_means_bars_have_the_means_as_heights():
    means = {"CAM": {"head": 0.8, "body": 0.3, "background": 0.1}, "SAGD": {"head": 0.7, "body": 0.5, "background": 0.2}}
    heights = [p.get_height() for p in region_means_view(means).axes[0].patches]
    assert heights == pytest.approx([0.8, 0.7, 0.3, 0.5, 0.1, 0.2])


def test_metric_bars_have_the_means_as_heights():
    summary = [{"label": "cam", "n": 1, "a": (16.0, 0.0, float("nan")), "b": (61.0, 0.0, float("nan"))},
               {"label": "dgdm", "n": 3, "a": (40.0, 2.0, 5.0), "b": (70.0, 1.0, 2.5)}]
    ax = metric_bars_view(summary, ["a", "b"]).axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([16.0, 40.0, 61.0, 70.0])


@pytest.mark.parametrize("view", ["montage", "curves", "threshold", "pr"])
def test_slider_views_render_a_png(view, curves, camsets):
    """Redraw speed is measured by the notebooks and `make bench`, never asserted in a unit test."""
    draw, values = {
        "montage": (lambda **v: cam_montage_view(camsets, **v), {"tau": 0.3, "start": 1}),
        "curves": (lambda **v: tau_curves_view(curves, chosen={"CAM": 0.1}, **v), {"tau": 0.3}),
        "threshold": (lambda **v: threshold_view(curves, camsets, chosen={"CAM": 0.1}, **v), {"tau": 0.3}),
        "pr": (lambda **v: pr_curves_view(curves, **v), {"tau": 0.3}),
    }[view]
    assert render(draw(**values)).startswith(b"\x89PNG")
