"""Backbones, insertion points and pretrained loading (dgdm_lib.models). Tiny inputs, no downloads."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dgdm_lib.models import (
    ARCHS,
    METHODS,
    PretrainedWeightsError,
    attention_disabled,
    build_model,
    load_pretrained,
    torchvision_cache_file,
)

# Smallest sensible input per backbone (Inception-v3 needs 75 px).
TINY_INPUT = {"small": 32, "vgg16": 32, "resnet50": 32, "resnet50_se": 32, "inception_v3": 75, "lite0": 32}
FEATURE_CHANNELS = {"small": 64, "vgg16": 1024, "resnet50": 2048, "resnet50_se": 2048, "inception_v3": 1024,
                    "lite0": 1280}
DEFAULT_POSITIONS = {
    "small": ["block4", "block5"],
    "vgg16": ["pool3", "pool4", "conv5_3"],
    "resnet50": ["layer3.0", "layer4.0", "layer4"],
    "resnet50_se": ["layer3.0", "layer4.0", "layer4"],
    "inception_v3": ["Mixed_5d", "Mixed_6e", "head"],
    "lite0": ["stage6", "stage7"],
}


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def big_models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {arch: build_model(arch, "dgdm", num_classes=3).eval() for arch in ARCHS if arch != "small"}


def test_small_net_maps_64px_images_to_16x16_features_with_64_channels() -> None:
    model = build_model("small", num_classes=8).eval()
    features = model.forward_features(torch.randn(2, 3, 64, 64))
    assert features.shape == (2, 64, 16, 16)
    assert 0.08e6 < _count(model) < 0.12e6  # "~0.1 M parameters" (chapter 01)


@pytest.mark.parametrize("arch", [a for a in ARCHS if a != "small"])
def test_big_backbone_forward_gives_logits_and_one_cam_per_image(arch: str, big_models: dict) -> None:
    model = big_models[arch]
    x = torch.randn(2, 3, TINY_INPUT[arch], TINY_INPUT[arch])
    with torch.no_grad():
        features = model.forward_features(x)
        logits, cams = model.cams(x)
    assert model(x).shape == (2, 3)
    assert logits.shape == (2, 3)
    assert features.shape[1] == FEATURE_CHANNELS[arch]
    assert cams.shape == (2, *features.shape[-2:])


@pytest.mark.parametrize("arch", list(ARCHS))
def test_default_insertion_points_follow_the_spec(arch: str, big_models: dict) -> None:
    model = big_models.get(arch) or build_model(arch, "dgdm")
    assert list(model.attention_modules()) == DEFAULT_POSITIONS[arch]
    assert len({id(m) for m in model.attention_modules().values()}) == len(DEFAULT_POSITIONS[arch])


@pytest.mark.parametrize("arch", [a for a in ARCHS if a != "small"])
def test_inserted_modules_add_no_parameters_and_keep_state_dict_keys(arch: str, big_models: dict) -> None:
    plain = build_model(arch, "cam", num_classes=3)
    assert _count(big_models[arch]) == _count(plain)
    assert big_models[arch].state_dict().keys() == plain.state_dict().keys()


@pytest.mark.parametrize("method", [m for m in METHODS if m != "cam"])
def test_every_method_adds_no_parameters_to_the_small_net(method: str) -> None:
    plain, with_module = build_model("small", "cam"), build_model("small", method)
    assert _count(with_module) == _count(plain)
    assert len(with_module.attention_modules()) == 2
    assert with_module.state_dict().keys() == plain.state_dict().keys()


def test_a_cam_checkpoint_loads_into_a_dgdm_network_and_gives_the_same_eval_output() -> None:
    torch.manual_seed(0)
    cam, dgdm = build_model("small", "cam").eval(), build_model("small", "dgdm").eval()
    dgdm.load_state_dict(cam.state_dict())
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(dgdm(x), cam(x))


def test_modules_change_the_training_forward_and_attention_disabled_turns_them_off() -> None:
    torch.manual_seed(0)
    cam, adl = build_model("small", "cam"), build_model("small", "adl", drop_rate=1.0)
    adl.load_state_dict(cam.state_dict())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        reference = cam.train()(x)
        assert not torch.allclose(adl.train()(x), reference)
        with attention_disabled(adl):
            torch.testing.assert_close(adl(x), reference)
        assert not torch.allclose(adl(x), reference)


def test_custom_positions_by_alias_and_by_dotted_path() -> None:
    model = build_model("vgg16", "adl", positions=["pool4", "conv5_3"])
    assert model.positions == {"pool4": "23", "conv5_3": "29"}
    resnet = build_model("resnet50", "adl", positions=["layer2.3"])
    assert list(resnet.attention_modules()) == ["layer2.3"]


def test_unknown_position_error_names_the_valid_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown insertion point 'pool9'.*pool4"):
        build_model("vgg16", "adl", positions=["pool9"])


def test_a_hyperparameter_the_module_does_not_take_is_reported_with_the_ones_it_takes() -> None:
    with pytest.raises(TypeError, match=r"'sagd' \(SAGD\) does not take gamma; it takes .*delta_h"):
        build_model("small", "sagd", gamma=0.5)
    with pytest.raises(TypeError, match="cam"):
        build_model("small", "cam", gamma=0.5)


def test_method_table_gives_stage_one_sagd_and_resnet_adl_gamma() -> None:
    assert build_model("small", "sagd").attention_modules()["block4"].delta_l == 0.0
    assert build_model("resnet50", "adl", positions=["layer4"]).attention_modules()["layer4"].gamma == 0.9
    assert build_model("vgg16", "adl", positions=["pool4"]).attention_modules()["pool4"].gamma == 0.8


def test_resnet50_layer4_keeps_the_resolution_of_layer3() -> None:
    model = build_model("resnet50", num_classes=2).eval()
    sizes = {}
    hooks = [getattr(model.features, name).register_forward_hook(lambda m, i, o, name=name: sizes.__setitem__(name, o.shape[-1]))
             for name in ("layer3", "layer4")]
    with torch.no_grad():
        model.forward_features(torch.randn(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    assert sizes == {"layer3": 4, "layer4": 4}


def test_vgg16_gap_has_no_pool5_and_ends_with_conv6() -> None:
    features = build_model("vgg16").features
    assert sum(isinstance(m, nn.MaxPool2d) for m in features) == 4
    assert isinstance(features[-2], nn.Conv2d) and features[-2].out_channels == 1024


def test_resnet50_se_has_a_squeeze_excitation_in_every_bottleneck() -> None:
    from torchvision.ops import SqueezeExcitation

    model = build_model("resnet50_se")
    assert sum(isinstance(m, SqueezeExcitation) for m in model.modules()) == 3 + 4 + 6 + 3


def test_deepcopy_applies_the_copied_modules_not_the_original_ones() -> None:
    model = build_model("small", "adl", drop_rate=1.0)
    clone = copy.deepcopy(model)
    hook = clone._attention_hooks[0]
    assert hook.module is clone.attention_modules()["block4"]
    assert hook.module is not model.attention_modules()["block4"]


# ---------------------------------------------------------------- pretrained weights (local only)
def _partial_resnet_state() -> dict[str, torch.Tensor]:
    """A few tensors under torchvision's resnet50 names: enough to test loading, small on disk."""
    torch.manual_seed(1)
    reference = build_model("resnet50").features
    return {f"{k}": torch.randn_like(v) if v.is_floating_point() else v
            for k, v in reference.state_dict().items() if k.startswith(("conv1.", "bn1.", "layer1.0."))} | {
        "fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)}


def test_pretrained_local_file_with_torchvision_names_loads_into_the_backbone(tmp_path) -> None:
    state = _partial_resnet_state()
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": state}, path)
    model = build_model("resnet50", "dgdm", num_classes=5, pretrained=path)
    torch.testing.assert_close(model.features.conv1.weight, state["conv1.weight"])
    assert "features.conv1.weight" in model.pretrained_keys
    assert "classifier.weight" not in model.pretrained_keys
    new = {name for name, _ in model.new_parameters()}
    assert "classifier.weight" in new and "features.layer4.0.conv1.weight" in new


def test_pretrained_torchvision_is_looked_up_in_the_local_hub_cache_only(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(PretrainedWeightsError, match=r"resnet50-.*\.pth.*--pretrained none"):
        build_model("resnet50", pretrained="torchvision")
    (tmp_path / "checkpoints").mkdir()
    name = torchvision_cache_file.__globals__["_torchvision_weight_files"]("resnet50")[0]
    torch.save(_partial_resnet_state(), tmp_path / "checkpoints" / name)
    assert torchvision_cache_file("resnet50") == tmp_path / "checkpoints" / name
    model = build_model("resnet50", pretrained=True)
    assert "features.layer1.0.conv1.weight" in model.pretrained_keys


def test_weights_of_another_architecture_are_refused_with_what_went_wrong(tmp_path) -> None:
    path = tmp_path / "vgg.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, path)
    with pytest.raises(PretrainedWeightsError, match="does not fit the resnet50 backbone"):
        load_pretrained(build_model("resnet50"), path)
    with pytest.raises(PretrainedWeightsError, match="does not exist"):
        build_model("small", pretrained=tmp_path / "missing.pth")


# --- A method of one's own: a module class and a METHODS entry, no edit of the loop or the evaluator --
class _EraseLeftHalf(torch.nn.Module):
    """A toy erasing method: in training, zero the left half of F."""

    def __init__(self, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return features
        keep = torch.ones_like(features)
        keep[..., : features.shape[-1] // 2] = 0
        return features * keep


def test_a_new_erasing_method_trains_and_is_evaluated_through_the_registry(monkeypatch) -> None:
    from dgdm_lib.data import beetles_loader
    from dgdm_lib.evaluation import collect_cams
    from dgdm_lib.models import METHODS, MethodSpec, build_model
    from dgdm_lib.training import train

    monkeypatch.setitem(METHODS, "left_half", MethodSpec(_EraseLeftHalf, {}, "Toy: erase the left half of F."))
    model = build_model("small", "left_half", num_classes=8)
    assert all(isinstance(m, _EraseLeftHalf) for m in model.attention_modules().values())
    loader = beetles_loader("train", batch_size=16, size=32, seed=0)
    result = train(model, loader, epochs=1, progress=False)
    camset = collect_cams(model, beetles_loader("val", batch_size=16, size=16))
    assert len(result.step_losses) == 2 and camset.cams.shape == (16, 64, 64)


def test_method_sagd_is_the_module_sagd_and_sagd12_adds_stage_two() -> None:
    """``--method sagd`` builds ``SAGD()`` (stage 1); ``sagd12`` and DGDM's SAGD are ``SAGD(delta_l=0.1)``."""
    from dgdm_lib.modules import SAGD

    def inserted(method):
        return {repr(m) for m in build_model("small", method).attention_modules().values()}

    assert inserted("sagd") == {repr(SAGD())} and SAGD().delta_l == 0.0
    assert inserted("sagd12") == {repr(SAGD(delta_l=0.1))}
    assert {repr(m.sagd) for m in build_model("small", "dgdm").attention_modules().values()} == {repr(SAGD(delta_l=0.1))}
