"""From CAM to boxes, IoU and box conventions (dgdm_lib.localization, docs/methods.md, "Metrics")."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dgdm_lib.config import repo_root
from dgdm_lib.localization import (
    box_iou,
    boxes_at_thresholds,
    boxes_from_cam,
    edges_to_inclusive,
    foreground_mask,
    inclusive_to_edges,
    largest_region_box,
)

# The reference evaluator's boxes (shared/golden), committed so CI always checks them.
GOLDEN = repo_root() / "tests" / "golden" / "metrics_cases.npz"


def _blobs(height: int, width: int, *rects: tuple[int, int, int, int, float]) -> np.ndarray:
    """A map with value v on inclusive rectangles (x0, y0, x1, y1, v)."""
    cam = np.zeros((height, width))
    for x0, y0, x1, y1, value in rects:
        cam[y0 : y1 + 1, x0 : x1 + 1] = value
    return cam


def test_box_is_one_pixel_wider_and_taller_than_the_region_as_in_the_reference() -> None:
    cam = _blobs(10, 12, (3, 2, 6, 4, 1.0))
    assert boxes_from_cam(cam, 0.2).tolist() == [[3, 2, 7, 5]]


def test_box_is_clipped_to_the_last_pixel_of_the_image() -> None:
    cam = _blobs(10, 12, (8, 6, 11, 9, 1.0))
    assert boxes_from_cam(cam, 0.2).tolist() == [[8, 6, 11, 9]]


def test_largest_region_wins_and_multi_contour_keeps_every_region() -> None:
    cam = _blobs(20, 20, (1, 1, 3, 3, 1.0), (8, 8, 15, 12, 0.6))
    assert largest_region_box(cam, 0.2).tolist() == [8, 8, 16, 13]
    every = boxes_from_cam(cam, 0.2, multi_contour=True)
    assert sorted(every.tolist()) == [[1, 1, 4, 4], [8, 8, 16, 13]]


def test_tau_is_relative_to_the_maps_own_maximum() -> None:
    cam = _blobs(20, 20, (1, 1, 3, 3, 1.0), (8, 8, 15, 12, 0.6))
    assert largest_region_box(cam, 0.7).tolist() == [1, 1, 4, 4]  # 0.6 < 0.7 * max
    assert largest_region_box(cam * 0.5, 0.7).tolist() == [1, 1, 4, 4]


def test_pixel_equal_to_the_quantised_cut_is_background() -> None:
    # quantised values 51 and 52; the cut at tau 0.2 is int(0.2 * 255) = 51: strictly above it only
    cam = _blobs(8, 8, (0, 0, 2, 2, 51.5 / 255), (5, 5, 6, 6, 52.5 / 255), (7, 0, 7, 0, 1.0))
    mask = foreground_mask(cam, 0.2)
    assert not mask[:3, :3].any()
    assert mask[5:7, 5:7].all()


def test_map_without_foreground_gives_the_zero_box() -> None:
    assert boxes_from_cam(np.zeros((6, 7)), 0.2).tolist() == [[0, 0, 0, 0]]
    assert boxes_from_cam(np.full((6, 7), 0.5), 0.2, multi_contour=True).tolist() != [[0, 0, 0, 0]]


def test_boxes_at_thresholds_equal_one_call_per_threshold() -> None:
    rng = np.random.default_rng(0)
    cam = rng.random((16, 16))
    taus = np.arange(0, 1, 0.05)
    for multi in (False, True):
        together = boxes_at_thresholds(cam, taus, multi)
        assert all(np.array_equal(a, boxes_from_cam(cam, t, multi)) for a, t in zip(together, taus))


def test_cam_outside_zero_one_is_rejected_with_a_pointer_to_normalisation() -> None:
    with pytest.raises(ValueError, match="normalize_cams"):
        boxes_from_cam(np.array([[0.0, 1.5]]), 0.2)
    with pytest.raises(ValueError, match="tau"):
        boxes_from_cam(np.array([[0.0, 1.0]]), 1.2)


def test_boxes_at_tau_02_equal_the_reference_evaluators_exactly() -> None:
    golden = np.load(GOLDEN)
    for i, cam in enumerate(golden["cams"]):
        assert np.array_equal(boxes_from_cam(cam, 0.2)[0], golden["boxes_tau02_largest"][i]), i
        every = boxes_from_cam(cam, 0.2, multi_contour=True)
        ordered = every[np.lexsort(every.T[::-1])]
        assert np.array_equal(ordered, golden[f"boxes_tau02_all_{i}"]), i


def test_iou_uses_the_inclusive_plus_one_convention() -> None:
    a = np.array([[0, 0, 1, 1], [0, 0, 0, 0]])
    b = np.array([[1, 1, 2, 2], [0, 0, 1, 1], [5, 5, 6, 6]])
    expected = [[1 / 7, 1.0, 0.0], [0.0, 1 / 4, 0.0]]
    assert np.allclose(box_iou(a, b), expected)


def test_iou_rejects_padding_rows_and_xywh_boxes() -> None:
    with pytest.raises(ValueError, match="padding"):
        box_iou(np.array([[0, 0, 3, 3]]), np.array([[-1, -1, -1, -1]]))
    with pytest.raises(ValueError, match="x, y, w, h"):
        box_iou(np.array([[5, 5, 2, 2]]), np.array([[0, 0, 3, 3]]))


boxes = hnp.arrays(np.int64, st.tuples(st.integers(1, 4), st.just(4)), elements=st.integers(0, 40)).map(
    lambda b: np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1)
)


@given(a=boxes, b=boxes)
@settings(max_examples=80, deadline=None)
def test_iou_is_symmetric_bounded_and_one_on_itself(a: np.ndarray, b: np.ndarray) -> None:
    ious = box_iou(a, b)
    assert ious.shape == (len(a), len(b))
    assert np.allclose(ious, box_iou(b, a).T)
    assert ((ious >= 0) & (ious <= 1)).all()
    assert np.allclose(np.diag(box_iou(a, a)), 1.0)


@given(
    cam=hnp.arrays(np.float64, st.tuples(st.integers(2, 12), st.integers(2, 12)), elements=st.floats(0, 1)),
    tau=st.sampled_from([0.0, 0.2, 0.5, 0.8]),
)
@settings(max_examples=60, deadline=None)
def test_every_foreground_pixel_lies_in_a_box_and_boxes_stay_in_the_image(cam: np.ndarray, tau: float) -> None:
    height, width = cam.shape
    every = boxes_from_cam(cam, tau, multi_contour=True)
    largest = boxes_from_cam(cam, tau)
    assert any(np.array_equal(largest[0], box) for box in every)
    for box in every:
        assert 0 <= box[0] <= box[2] <= width - 1 and 0 <= box[1] <= box[3] <= height - 1
    covered = np.zeros_like(cam, dtype=bool)
    for x0, y0, x1, y1 in every:
        covered[y0 : y1 + 1, x0 : x1 + 1] = True
    assert covered[foreground_mask(cam, tau)].all()


def test_edges_to_inclusive_drops_the_far_edge_and_clips_to_the_image() -> None:
    edges = np.array([[3.0, 0.0, 11.0, 5.0], [-2.4, 3.6, 30.0, 25.0], [4.0, 4.0, 4.2, 4.0]])
    assert edges_to_inclusive(edges, width=20, height=16).tolist() == [[3, 0, 10, 4], [0, 4, 19, 15], [4, 4, 4, 4]]


def test_inclusive_to_edges_undoes_edges_to_inclusive_for_integer_boxes() -> None:
    inclusive = np.array([[3, 0, 10, 4], [0, 0, 0, 0]])
    assert inclusive_to_edges(inclusive).tolist() == [[3.0, 0.0, 11.0, 5.0], [0.0, 0.0, 1.0, 1.0]]
    assert np.array_equal(edges_to_inclusive(inclusive_to_edges(inclusive), 20, 20), inclusive)
