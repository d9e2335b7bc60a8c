"""From a model and a loader to the metrics of docs/methods.md, "Metrics" (dgdm_lib.evaluation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgdm_lib.cam import localization_cams
from dgdm_lib.evaluation import (
    CamSet,
    activation_shares,
    collect_cams,
    evaluate,
    evaluate_val_test,
)
from dgdm_lib.metrics import max_box_acc, pxap
from dgdm_lib.models import build_model
from dgdm_lib.views.cams import comparison_figure

SIZE = 32


def _box_map(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    cam = np.zeros((SIZE, SIZE), np.float32)
    cam[y0 : y1 + 1, x0 : x1 + 1] = 1.0
    return cam


@pytest.fixture()
def hand_made() -> CamSet:
    """Four images with the object at x 8..23, y 8..23. CAMs 0 and 1 cover it exactly, 2 and 3 sit in a
    corner; images 0 and 2 are classified correctly."""
    gt = np.array([[8, 8, 23, 23]])
    cams = np.stack([_box_map(8, 8, 23, 23), _box_map(8, 8, 23, 23), _box_map(0, 0, 5, 5), _box_map(26, 26, 31, 31)])
    masks = np.stack([_box_map(8, 8, 23, 23).astype(bool)] * 4)
    heads = np.zeros_like(masks)
    heads[:, 8:12, 8:12] = True
    logits = torch.tensor([[5.0, 0.0], [5.0, 0.0], [0.0, 5.0], [0.0, 5.0]])
    labels = torch.tensor([0, 1, 1, 0])
    return CamSet(logits, labels, cams, None, [gt] * 4, masks, heads)


def test_evaluate_counts_hand_made_hits_and_class_errors(hand_made: CamSet) -> None:
    result = evaluate(hand_made, tau=0.2)
    assert result["n_images"] == 4
    assert result["top1_clas"] == 50.0
    assert result["gt_known_loc@0.2"] == 50.0  # images 0 and 1
    assert result["top1_loc@0.2"] == 25.0  # image 0 only: image 1 is misclassified
    assert result["maxboxacc"] == 50.0 and result["gt_known_loc@best"] == 50.0
    assert result["best_tau"] == 0.0  # first of the tied thresholds


def test_evaluate_agrees_with_the_reference_metric_functions(hand_made: CamSet) -> None:
    result = evaluate(hand_made)
    by_iou = max_box_acc(list(hand_made.cams), hand_made.gt_boxes, multi_contour=True)
    assert result["maxboxacc_v2"] == pytest.approx(np.mean(list(by_iou.values())))
    assert result["maxboxacc_v2@0.7"] == by_iou[0.7]
    assert result["pxap"] == pytest.approx(pxap(list(hand_made.cams), list(hand_made.masks)))


def test_activation_shares_split_the_cam_mass_between_head_body_and_background(hand_made: CamSet) -> None:
    shares = activation_shares(hand_made.cams[:1], hand_made.masks[:1], hand_made.head_masks[:1])
    assert shares["head_share"] == pytest.approx(100 * 16 / 256)
    assert shares["body_share"] == pytest.approx(100 * 240 / 256)
    assert shares["background_share"] == pytest.approx(0.0, abs=1e-9)
    corner = activation_shares(hand_made.cams[2:3], hand_made.masks[2:3], hand_made.head_masks[2:3])
    assert corner["background_share"] == pytest.approx(100.0)
    result = evaluate(hand_made)
    assert result["head_share"] + result["body_share"] + result["background_share"] == pytest.approx(100.0)


def _loader(n_batches: int = 2, batch: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n_batches):
        images = torch.randn(batch, 3, SIZE, SIZE, generator=g)
        targets = {
            "label": torch.randint(0, 4, (batch,), generator=g),
            "boxes": [torch.tensor([[3.0, 4.0, 11.0, 12.0]])] * batch,
            "mask": torch.zeros(batch, SIZE, SIZE, dtype=torch.bool),
            "image_id": [f"img{i}" for i in range(batch)],
        }
        targets["mask"][:, 4:12, 3:11] = True
        batches.append((images, targets))
    return batches


def test_collect_cams_keeps_normalised_gt_class_cams_at_image_size_and_inclusive_boxes() -> None:
    torch.manual_seed(0)
    model = build_model("small", "dgdm", num_classes=4).train()
    loader = _loader()
    camset = collect_cams(model, loader, keep_images=4)
    assert model.training  # restored
    assert camset.cams.shape == (6, SIZE, SIZE) and camset.pred_cams.shape == (6, SIZE, SIZE)
    assert camset.cams.min() >= 0.0 and camset.cams.max() <= 1.0
    images, targets = loader[1]
    with torch.no_grad():
        expected = localization_cams(model.eval().forward_features(images), model.classifier.weight,
                                     targets["label"], (SIZE, SIZE))
    np.testing.assert_allclose(camset.cams[3:], expected.numpy(), atol=1e-6)
    np.testing.assert_array_equal(camset.gt_boxes[0], [[3, 4, 10, 11]])  # pixel edges -> inclusive
    assert camset.images.shape == (4, 3, SIZE, SIZE) and camset.image_ids[:2] == ["img0", "img1"]
    assert camset.head_masks is None and camset.masks.dtype == bool


def test_collect_cams_stops_after_max_images() -> None:
    camset = collect_cams(build_model("small", num_classes=4), _loader(3), max_images=4, keep_pred_cams=False)
    assert len(camset) == 4 and camset.pred_cams is None and len(camset.gt_boxes) == 4


def test_threshold_chosen_on_validation_is_the_best_one_when_validation_is_the_test_split() -> None:
    torch.manual_seed(0)
    model = build_model("small", num_classes=4)
    loader = _loader()
    result = evaluate_val_test(model, loader, loader)
    assert result["tau_val"] == result["best_tau"] == result["val/best_tau"]
    assert result["gt_known_loc@tau_val"] == result["gt_known_loc@best"]
    assert "gt_known_loc@0.2" in result and "pxap" in result


def test_comparison_figure_shows_the_inputs_and_one_row_per_method() -> None:
    torch.manual_seed(0)
    loader = _loader(1, batch=4)
    sets = {m: collect_cams(build_model("small", m, num_classes=4), loader) for m in ("cam", "adl")}
    fig = comparison_figure(sets, n=4)
    panels = [ax for ax in fig.axes if ax.images]  # the colour bar's axes hold no image
    titles = [ax.get_title() for ax in panels]
    assert len(panels) == 3 * 4
    assert len(fig.axes) == 3 * 4 + 1, "one colour bar for the CAM scale"
    assert titles[0].startswith("input") and titles[4].startswith("cam IoU=") and titles[8].startswith("adl IoU=")
    colours = {patch.get_edgecolor()[:3] for ax in fig.axes[4:8] for patch in ax.patches}
    assert (1.0, 0.0, 0.0) in colours and (0.0, 1.0, 0.0) in colours  # GT red, prediction green


def test_streaming_evaluation_gives_the_same_numbers_as_collect_then_evaluate() -> None:
    from dgdm_lib.evaluation import evaluate_loader

    torch.manual_seed(0)
    model = build_model("small", "adl", num_classes=4)
    loader = _loader(3)
    for _, targets in loader:
        targets["head_mask"] = torch.zeros_like(targets["mask"])
        targets["head_mask"][:, 4:7, 3:6] = True
    streamed = evaluate_loader(model, loader, extra_taus=[0.205])  # 0.205 is off the 0.01 grid
    collected = evaluate(collect_cams(model, loader), extra_taus=[0.205])
    assert streamed.keys() == collected.keys() and "gt_known_loc@0.205" in streamed and "head_share" in streamed
    for key in streamed:
        assert streamed[key] == pytest.approx(collected[key]), key
