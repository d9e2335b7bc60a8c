"""Class activation maps (dgdm_lib.cam, docs/methods.md and chapter 02)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dgdm_lib.cam import (
    capture_features,
    class_activation_maps,
    localization_cams,
    normalize_cams,
    upsample_cams,
)


def test_cam_is_the_class_weighted_sum_of_feature_channels() -> None:
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])  # (1, 2, 2, 2)
    weight = torch.tensor([[1.0, 0.0], [2.0, -1.0], [0.5, 0.5]])
    cams = class_activation_maps(features, weight, torch.tensor([1]))
    assert cams.tolist() == [[[2.0, 3.0], [6.0, 7.0]]]


def test_cam_averages_to_the_logit_without_its_bias() -> None:
    torch.manual_seed(0)
    features, head = torch.randn(3, 5, 4, 4), nn.Linear(5, 7)
    classes = torch.tensor([0, 6, 2])
    logits = head(features.mean(dim=(2, 3)))
    cams = class_activation_maps(features, head.weight, classes)
    expected = logits.gather(1, classes[:, None])[:, 0] - head.bias[classes]
    assert torch.allclose(cams.mean(dim=(1, 2)), expected, atol=1e-6)


def test_cam_rejects_a_weight_whose_width_differs_from_the_channels() -> None:
    with pytest.raises(ValueError, match=r"\(K, C\) with C = 4"):
        class_activation_maps(torch.rand(1, 4, 2, 2), torch.rand(3, 5), torch.tensor([0]))


def test_cam_rejects_a_class_outside_the_classifier() -> None:
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        class_activation_maps(torch.rand(1, 4, 2, 2), torch.rand(3, 4), torch.tensor([3]))


def test_normalised_cams_span_zero_to_one_per_image_and_a_constant_map_becomes_zeros() -> None:
    ramp, constant = torch.arange(6.0).view(2, 3) - 10, torch.full((2, 3), 4.0)
    cams = torch.stack([ramp, constant, torch.tensor([[0.0, 8, 2], [4, 6, 8]])])
    out = normalize_cams(cams)
    assert out[0].min() == 0 and out[0].max() == 1
    assert out[1].eq(0).all()
    assert out[2].tolist() == [[0.0, 1.0, 0.25], [0.5, 0.75, 1.0]]


def test_normalize_keeps_numpy_arrays_as_numpy_and_accepts_one_map() -> None:
    out = normalize_cams(np.array([[1.0, 3.0]]))
    assert isinstance(out, np.ndarray) and out.tolist() == [[0.0, 1.0]]


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest"])
def test_upsampling_reaches_the_input_size(mode: str) -> None:
    assert upsample_cams(torch.rand(2, 4, 5), (16, 20), mode=mode).shape == (2, 16, 20)


def test_upsampling_rejects_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="bilinear"):
        upsample_cams(torch.rand(1, 2, 2), (4, 4), mode="area")


def test_localization_cams_are_upsampled_and_normalised() -> None:
    maps = localization_cams(torch.rand(2, 3, 4, 4), torch.rand(5, 3), torch.tensor([1, 4]), (8, 8))
    assert maps.shape == (2, 8, 8)
    assert torch.allclose(maps.amin(dim=(1, 2)), torch.zeros(2))
    assert torch.allclose(maps.amax(dim=(1, 2)), torch.ones(2))


def test_capture_features_records_the_layer_output_and_removes_its_hook() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    with capture_features(net[1]) as store:
        net(torch.rand(2, 3, 6, 6))
    assert store.output.shape == (2, 4, 6, 6)
    assert len(net[1]._forward_hooks) == 0


def test_capture_features_removes_its_hook_after_an_error() -> None:
    layer = nn.ReLU()
    with pytest.raises(RuntimeError, match="boom"), capture_features(layer):
        raise RuntimeError("boom")
    assert len(layer._forward_hooks) == 0


def test_reading_features_before_any_forward_says_what_to_do() -> None:
    with capture_features(nn.ReLU()) as store, pytest.raises(RuntimeError, match="inside the"):
        _ = store.output
