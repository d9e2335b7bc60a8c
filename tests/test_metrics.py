"""WSOL metrics (dgdm_lib.metrics, docs/methods.md, "Metrics"), against hand cases and the reference's golden values."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dgdm_lib.cam import normalize_cams, upsample_cams
from dgdm_lib.config import repo_root
from dgdm_lib.metrics import (
    BoxAccumulator,
    ClassificationLocalization,
    PxAPAccumulator,
    gt_known_loc,
    max_box_acc,
    max_box_acc_v2,
    pxap,
    top1_clas,
    top1_loc,
)

# Copied from the reference evaluator's output (shared/golden); committed so CI always runs them.
GOLDEN = repo_root() / "tests" / "golden"


@pytest.fixture(scope="module")
def golden() -> tuple[dict, dict]:
    cases = np.load(GOLDEN / "metrics_cases.npz")
    expected = json.loads((GOLDEN / "metrics_expected.json").read_text())
    data = {
        "cams": cases["cams"],
        "masks": cases["masks"],
        "gt_boxes": [boxes[(boxes >= 0).all(axis=1)] for boxes in cases["gt_boxes"]],  # -1 rows pad
    }
    return data, expected


def _square_cam(size: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    cam = np.zeros((size, size))
    cam[y0 : y1 + 1, x0 : x1 + 1] = 1.0
    return cam


# --------------------------------------------------------------------------------------------
# Golden values of the reference evaluator
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("multi_contour", [False, True])
def test_max_box_acc_equals_the_reference_evaluator_exactly(golden: tuple, multi_contour: bool) -> None:
    data, expected = golden
    result = max_box_acc(data["cams"], data["gt_boxes"], multi_contour=multi_contour)
    assert result == {float(d): v for d, v in expected[f"max_box_acc_multi_contour_{multi_contour}"].items()}


def test_pxap_equals_the_reference_evaluator(golden: tuple) -> None:
    data, expected = golden
    assert abs(pxap(data["cams"], data["masks"]) - expected["pxap"]) < 1e-9


def test_accumulating_batch_by_batch_gives_the_one_shot_values(golden: tuple) -> None:
    data, expected = golden
    boxes, pixels = BoxAccumulator(multi_contour=True), PxAPAccumulator()
    for start in range(0, 60, 16):
        part = slice(start, start + 16)
        boxes.accumulate(torch.from_numpy(data["cams"][part]), data["gt_boxes"][part])
        pixels.accumulate(list(data["cams"][part]), torch.from_numpy(data["masks"][part]))
    assert len(boxes) == 60
    assert boxes.compute() == {float(d): v for d, v in expected["max_box_acc_multi_contour_True"].items()}
    assert boxes.compute(multi_contour=False)[0.5] == expected["max_box_acc_multi_contour_False"]["0.5"]
    assert abs(pixels.compute() - expected["pxap"]) < 1e-9


# --------------------------------------------------------------------------------------------
# Hand cases
# --------------------------------------------------------------------------------------------
def test_max_box_acc_counts_an_image_when_its_best_iou_reaches_the_threshold() -> None:
    # image 0: CAM box [2, 2, 10, 10] vs GT [2, 2, 9, 9] -> IoU 64 / 81 = 0.79; image 1: CAM far away
    cams = [_square_cam(16, 2, 2, 9, 9), _square_cam(16, 12, 12, 14, 14)]
    gt = [np.array([[2, 2, 9, 9]]), np.array([[0, 0, 5, 5]])]
    assert max_box_acc(cams, gt, iou_thresholds=(0.5, 0.8)) == {0.5: 50.0, 0.8: 0.0}


def test_best_iou_over_several_gt_boxes_counts() -> None:
    cams = [_square_cam(16, 2, 2, 9, 9)]
    gt = [np.array([[12, 12, 15, 15], [2, 2, 9, 9]])]
    assert max_box_acc(cams, gt, iou_thresholds=(0.7,))[0.7] == 100.0


def test_multi_contour_finds_a_second_object_the_largest_region_misses() -> None:
    cam = _square_cam(24, 1, 1, 10, 10) + _square_cam(24, 16, 16, 19, 19)
    gt = [np.array([[16, 16, 20, 20]])]
    assert max_box_acc([cam], gt, iou_thresholds=(0.5,), multi_contour=True)[0.5] == 100.0
    assert max_box_acc([cam], gt, iou_thresholds=(0.5,), multi_contour=False)[0.5] == 0.0
    assert max_box_acc_v2([cam], gt) == 100.0


def test_best_tau_picks_the_threshold_that_isolates_the_object() -> None:
    # object at 1.0, a halo at 0.4 around it: taus below 0.4 box the halo, above it the object
    cam = np.zeros((20, 20))
    cam[2:18, 2:18] = 0.4
    cam[6:12, 6:12] = 1.0
    acc = BoxAccumulator(cam_thresholds=np.arange(0, 1, 0.1), multi_contour=False)
    acc.accumulate([cam], [np.array([[6, 6, 12, 12]])])
    curve = acc.accuracy_curve(0.5)
    assert curve[:4].tolist() == [0.0] * 4 and curve[4:].tolist() == [100.0] * 6
    assert acc.best_tau() == pytest.approx(0.4)
    assert acc.accuracy_at(0.2) == 0.0


def test_gt_known_loc_ignores_the_class_and_top1_loc_requires_it() -> None:
    cams = [_square_cam(16, 2, 2, 9, 9)] * 2
    gt = [np.array([[2, 2, 9, 9]])] * 2
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
    labels = torch.tensor([0, 0])
    assert top1_clas(logits, labels) == 50.0
    assert gt_known_loc(cams, gt, tau=0.2) == 100.0
    assert top1_loc(cams, gt, logits, labels, tau=0.2) == 50.0


def test_classification_localization_reports_each_tau_over_batches() -> None:
    good, bad = _square_cam(16, 2, 2, 9, 9), _square_cam(16, 12, 12, 14, 14)
    gt = np.array([[2, 2, 9, 9]])
    metric = ClassificationLocalization(taus=(0.2, 0.5))
    metric.accumulate(torch.tensor([0, 1]), torch.tensor([0, 0]), np.stack([good, good]), [gt, gt])
    metric.accumulate(np.array([[0.1, 0.9]]), np.array([1]), [bad], [gt])
    result = metric.compute()
    assert len(metric) == 3
    assert result["top1_clas"] == pytest.approx(200 / 3)
    assert result["gt_known_loc"] == {0.2: pytest.approx(200 / 3), 0.5: pytest.approx(200 / 3)}
    assert result["top1_loc"] == {0.2: pytest.approx(100 / 3), 0.5: pytest.approx(100 / 3)}


def test_accuracy_at_a_tau_that_was_not_swept_says_how_to_add_it() -> None:
    acc = BoxAccumulator(cam_thresholds=[0.1, 0.3])
    acc.accumulate([_square_cam(8, 1, 1, 4, 4)], [np.array([[1, 1, 4, 4]])])
    with pytest.raises(ValueError, match="add it to cam_thresholds"):
        acc.accuracy_at(0.2)


def test_empty_accumulator_and_missing_gt_boxes_give_clear_errors() -> None:
    with pytest.raises(ValueError, match="no images accumulated"):
        BoxAccumulator().compute()
    with pytest.raises(ValueError, match="no GT box"):
        BoxAccumulator().accumulate([np.zeros((4, 4))], [np.zeros((0, 4))])


def test_pxap_is_100_for_a_map_equal_to_the_mask_and_lower_when_inverted() -> None:
    mask = np.zeros((2, 10, 10), dtype=bool)
    mask[:, 2:6, 3:8] = True
    assert pxap(mask.astype(float), mask) == pytest.approx(100.0)
    assert pxap(1.0 - mask.astype(float), mask) < 30.0


def test_pxap_ignores_pixels_marked_255() -> None:
    cam = np.random.default_rng(0).random((1, 12, 12))
    mask = np.zeros((1, 12, 12), dtype=np.uint8)
    mask[0, 3:9, 3:9] = 1
    ignored = mask.copy()
    ignored[0, 0, :] = 255
    cam_without_row = cam.copy()
    cam_without_row[0, 0, :] = 1.0  # would be false positives if counted
    assert pxap(cam_without_row, ignored) == pytest.approx(pxap(cam, np.where(ignored == 255, 255, mask)))
    assert pxap(cam_without_row, ignored) > pxap(cam_without_row, mask)


def test_pxap_rejects_masks_with_other_values() -> None:
    with pytest.raises(ValueError, match="255 ignore"):
        pxap(np.zeros((1, 3, 3)), np.full((1, 3, 3), 2, dtype=np.uint8))


@pytest.mark.slow
def test_box_metrics_over_500_maps_and_100_thresholds_give_percentages() -> None:
    # their speed is part of what `make bench` measures, never asserted in a unit test
    generator = torch.Generator().manual_seed(0)
    cams = normalize_cams(upsample_cams(torch.randn(500, 16, 16, generator=generator), (64, 64)))
    acc = BoxAccumulator()
    acc.accumulate(cams, [np.array([[10, 12, 40, 50]])] * 500)
    for result in (acc.compute(), acc.compute(multi_contour=False)):
        assert all(0.0 <= value <= 100.0 for value in result.values())
