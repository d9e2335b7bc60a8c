"""The attention modules: ADL (baseline), CAGD (paper 3.2), SAGD (paper 3.3) and DGDM (paper Sec. 3).

Every module takes a feature map ``F`` of shape (B, C, H, W) and returns a map of the same shape.
None of them has parameters, and in ``eval()`` mode each one returns ``F`` unchanged. In training
mode each module draws its randomness from ``generator`` (a ``torch.Generator``) when one is given,
so the same seed gives the same masks in teaching figures.

The maths lives in functions (``adl_masks``, ``cagd_channel_mask``, ``sagd_drop_region``,
``expand_blocks``...), in the manner of ``torchvision.ops.drop_block2d``. The modules are thin:
they check their hyperparameters, show them in ``repr``, and choose between the drop mask and the
importance map. ``module.masks(F)`` returns the maps a module would use for ``F``, for plots.

Symbols (docs/methods.md, "The modules"):

* ``A = mean_c F`` (B, 1, H, W), the self-attention map; ``I = sigmoid(A)``, the importance map.
* ADL: ``M = 1[A < gamma * max_hw A]``.
* CAGD: ``S = GAP(F)`` (B, C); channels with ``|S_c| >= beta * min_c |S_c|`` are kept, each other
  channel is zeroed with probability ``alpha``: ``Mdrop1`` (B, C). The rule degenerates when
  ``min_c |S_c| = 0`` (every channel kept) and when ``max_c |S_c| < beta * min_c |S_c|`` (none
  important: every channel, the strongest too, dropped with probability ``alpha``).
* SAGD: ``An`` = ``A`` min-max normalised per sample; ``D = 1[An > delta_h] OR 1[An < delta_l]``;
  ``D_block`` = ``D`` grown to ``block_size`` blocks; ``Mdrop2 = 1 - D_block``.
* DGDM: ``F1 = F * Mdrop1``, then SAGD on ``F1``.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

__all__ = [
    "ABLATION_ROWS",
    "ADL",
    "CAGD",
    "DGDM",
    "RandomDropBlock",
    "SAGD",
    "adaptive_block_size",
    "adl_masks",
    "apply_spatial_choice",
    "cagd_channel_mask",
    "cagd_rule_regimes",
    "expand_blocks",
    "importance_map",
    "normalize_attention",
    "random_block_mask",
    "resolve_block_size",
    "sagd_drop_region",
    "spatial_attention",
]

BlockSize = int | Literal["adaptive"]

# The rows of the paper's Table 1 (ablation on CUB, VGG16-GAP) as DGDM keyword arguments.
ABLATION_ROWS: dict[str, dict[str, object]] = {
    "stage1": {"use_cagd": False, "delta_l": 0.0},
    "stage1+stage2": {"use_cagd": False},
    "stage1+stage2+Mdrop1": {},
}


# --------------------------------------------------------------------------------------------
# Checks shared by the modules
# --------------------------------------------------------------------------------------------
def _check_features(features: Tensor, who: str) -> None:
    if not isinstance(features, Tensor):
        raise TypeError(
            f"{who} expects a torch.Tensor feature map F of shape (B, C, H, W), got {type(features).__name__}"
        )
    if features.dim() != 4:
        hint = " (add a batch dimension with F.unsqueeze(0))" if features.dim() == 3 else ""
        raise ValueError(
            f"{who} expects a feature map F of rank 4, (B, C, H, W); got shape {tuple(features.shape)} "
            f"of rank {features.dim()}{hint}"
        )


def _check_real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


def _check_probability(name: str, value: object) -> float:
    value = _check_real(name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} is a probability and must lie in [0, 1], got {value}")
    return value


def _check_beta(beta: object) -> float:
    beta = _check_real("beta", beta)
    if beta < 1.0:
        raise ValueError(
            f"beta must be >= 1 (the threshold t = beta * min_c |S_c| must not fall below the smallest "
            f"channel score), got {beta}; the paper tries 2, 2.5, 3 and 3.5"
        )
    return beta


def _check_keep_ratio(keep_ratio: object) -> float | None:
    if keep_ratio is None:
        return None
    keep_ratio = _check_real("keep_ratio", keep_ratio)
    if not 0.0 < keep_ratio <= 1.0:
        raise ValueError(
            f"keep_ratio is the fraction of channels always kept and must lie in (0, 1], got {keep_ratio}; "
            f"use keep_ratio=None for the beta threshold rule"
        )
    return keep_ratio


def _check_deltas(delta_l: object, delta_h: object) -> tuple[float, float]:
    delta_l = _check_real("delta_l", delta_l)
    delta_h = _check_real("delta_h", delta_h)
    if not 0.0 <= delta_l < delta_h <= 1.0:
        raise ValueError(
            f"SAGD needs 0 <= delta_l < delta_h <= 1 (thresholds on the normalised attention An), got "
            f"delta_l={delta_l}, delta_h={delta_h}; use delta_l=0 to switch the background stage off"
        )
    return delta_l, delta_h


def _check_block_size(block_size: object) -> BlockSize:
    if block_size == "adaptive":
        return "adaptive"
    if isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral) or block_size < 1:
        raise ValueError(f"block_size must be an integer >= 1 or 'adaptive' (= ceil(H / 7)), got {block_size!r}")
    return int(block_size)


def _check_odd_block_size(block_size: object, who: str) -> int:
    """An odd integer block size: random blocks are centred on their drawn position (DropBlock)."""
    size = _check_block_size(block_size)
    if size == "adaptive" or size % 2 == 0:
        raise ValueError(f"{who} needs an odd integer block_size (the blocks are centred), got {block_size!r}; "
                         "use 1, 3, 5...")
    return size


def _coin(probability: float, generator: torch.Generator | None) -> bool:
    """One batch-wide draw, ``True`` with ``probability``; taken on the CPU (no GPU sync) unless
    ``generator`` lives on another device."""
    device = generator.device if generator is not None else torch.device("cpu")
    return bool(torch.rand((1,), generator=generator, device=device).item() < probability)


def _uniform(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """U[0, 1) draws of ``shape`` on ``like``'s device, taken from ``generator`` on its own device."""
    device = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=device).to(like.device)


# --------------------------------------------------------------------------------------------
# Functional forms
# --------------------------------------------------------------------------------------------
def spatial_attention(features: Tensor) -> Tensor:
    """Self-attention map ``A = mean_c F`` (paper eq. 1): (B, C, H, W) -> (B, 1, H, W)."""
    _check_features(features, "spatial_attention")
    return features.mean(dim=1, keepdim=True)


def importance_map(attention: Tensor) -> Tensor:
    """Importance map ``I = sigmoid(A)`` (paper eq. 2), same shape as ``A``; keeps its gradient."""
    return torch.sigmoid(attention)


def normalize_attention(attention: Tensor) -> Tensor:
    """``An``: ``A`` (B, 1, H, W) min-max normalised to [0, 1] per sample; a constant map gives zeros."""
    flat = attention.flatten(1)
    low, high = torch.aminmax(flat, dim=1, keepdim=True)
    span = high - low
    # A constant map has flat - low == 0 everywhere: dividing by 1 instead of 0 turns it into zeros.
    safe_span = torch.where(span > 0, span, torch.ones_like(span))
    return ((flat - low) / safe_span).view_as(attention)


def adl_masks(features: Tensor, gamma: float = 0.8) -> tuple[Tensor, Tensor]:
    """ADL's importance map ``I = sigmoid(A)`` and drop mask ``M = 1[A < gamma * max_hw A]``.

    Args:
        features: ``F`` (B, C, H, W).
        gamma: fraction of each sample's maximum attention above which pixels are dropped.

    Returns:
        ``(I, M)``, both (B, 1, H, W); ``M`` is 0/1 in ``F``'s dtype, without gradient.
    """
    gamma = _check_probability("gamma", gamma)
    attention = spatial_attention(features)
    return importance_map(attention), _adl_drop_mask(attention, gamma)


def _adl_drop_mask(attention: Tensor, gamma: float) -> Tensor:
    """``M = 1[A < gamma * max_hw A]`` for ``A`` (B, 1, H, W), in ``A``'s dtype, without gradient."""
    with torch.no_grad():
        peak = attention.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
        return (attention < gamma * peak).to(attention.dtype)


def cagd_channel_mask(
    features: Tensor,
    beta: float = 3.0,
    alpha: float = 0.5,
    keep_ratio: float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """CAGD's channel drop mask ``Mdrop1`` (paper 3.2), in the original channel order.

    Channel attention ``S = GAP(F)``. Important channels are those with ``|S_c| >= beta * min_c |S_c|``
    (or, with ``keep_ratio``, the top ``ceil(keep_ratio * C)`` channels by ``|S_c|``): they are always
    kept. Every other channel is zeroed with probability ``alpha``, independently per sample.
    The ``beta`` rule has two degenerate regimes (``cagd_rule_regimes`` finds them): a sample with
    ``min_c |S_c| = 0`` has every channel important, and one with ``max_c |S_c| < beta * min_c |S_c|``
    (all scores within a factor ``beta`` of each other) has none, so even its strongest channel is
    dropped with probability ``alpha``.

    Args:
        features: ``F`` (B, C, H, W).
        beta: threshold factor (>= 1); ignored when ``keep_ratio`` is given.
        alpha: drop probability of an unimportant channel.
        keep_ratio: fraction of channels kept by rank, in (0, 1], or None for the ``beta`` rule.
        generator: source of the (B, C) uniform draws.

    Returns:
        ``(Mdrop1, S, important)``: 0/1 mask (B, C) in ``F``'s dtype, channel scores ``S`` (B, C),
        and the bool (B, C) map of important channels. None of them carries a gradient.
    """
    _check_features(features, "cagd_channel_mask")
    beta, alpha = _check_beta(beta), _check_probability("alpha", alpha)
    keep_ratio = _check_keep_ratio(keep_ratio)
    with torch.no_grad():
        scores = features.mean(dim=(2, 3))
        magnitude = scores.abs()
        if keep_ratio is None:
            important = _beta_important(magnitude, beta)
        else:
            k = max(1, math.ceil(keep_ratio * magnitude.shape[1]))
            top = magnitude.topk(k, dim=1).indices
            important = torch.zeros_like(magnitude, dtype=torch.bool).scatter_(1, top, True)
        dropped = ~important & (_uniform(tuple(scores.shape), features, generator) < alpha)
        return (~dropped).to(features.dtype), scores, important


def _beta_important(magnitude: Tensor, beta: float) -> Tensor:
    """The ``beta`` rule on channel magnitudes ``|S|`` (B, C): ``|S_c| >= beta * min_c |S_c|``."""
    return magnitude >= beta * magnitude.min(dim=1, keepdim=True).values


def cagd_rule_regimes(features: Tensor, beta: float = 3.0) -> dict[str, Tensor]:
    """Where CAGD's ``beta`` rule degenerates, per sample of ``F`` (B, C, H, W): two (B,) bool maps.

    ``all_important``: ``min_c |S_c| = 0`` (a dead channel after ReLU), so the threshold is 0 and
    every channel is kept. ``none_important``: ``max_c |S_c| < beta * min_c |S_c|`` (every score within
    a factor ``beta`` of the weakest), so no channel is important and each one, the strongest too,
    is dropped with probability ``alpha``. Never both; neither for the ordinary case.
    """
    _check_features(features, "cagd_rule_regimes")
    beta = _check_beta(beta)
    with torch.no_grad():
        important = _beta_important(features.mean(dim=(2, 3)).abs(), beta)
        return {"all_important": important.all(dim=1), "none_important": ~important.any(dim=1)}


def adaptive_block_size(height: int) -> int:
    """The "adaptive" ``block_size = ceil(H / 7)``: 2 on 14x14 maps, 3 on 16x16, 4 on 28x28."""
    return max(1, math.ceil(height / 7))


def expand_blocks(region: Tensor, block_size: int) -> Tensor:
    """Grow every marked pixel of ``region`` (B, 1, H, W) into a ``block_size`` square: ``D_block``.

    A stride-1 max over ``block_size`` x ``block_size`` windows whose output keeps H x W. Odd sizes are
    centred on the pixel; for even sizes the extra row and column go up and to the left (padding
    ``(k-1)//2`` before, ``k//2`` after). ``block_size = 1`` returns ``region`` unchanged.
    """
    if block_size == 1:
        return region
    # The same values as max_pool2d(padded, block_size, stride=1), taken as a max over shifted
    # rows, then shifted columns: 5x faster on CPU for one-channel maps (0.05 vs 0.28 ms, 64x1x16x16).
    before, after = (block_size - 1) // 2, block_size // 2
    height, width = region.shape[-2:]
    padded = nnf.pad(region, (before, after, before, after), value=0.0)
    rows = padded[..., :, :width]
    for shift in range(1, block_size):
        rows = torch.maximum(rows, padded[..., :, shift:shift + width])
    grown = rows[..., :height, :]
    for shift in range(1, block_size):
        grown = torch.maximum(grown, rows[..., shift:shift + height, :])
    return grown


def sagd_drop_region(
    features: Tensor,
    delta_l: float = 0.0,
    delta_h: float = 0.8,
    block_size: BlockSize = 3,
) -> dict[str, Tensor]:
    """SAGD's drop region and drop mask ``Mdrop2`` (paper 3.3) for a feature map ``F``.

    ``D = 1[An > delta_h]`` (stage 1, most discriminative) ``OR 1[An < delta_l]`` (stage 2,
    background; off with the default ``delta_l = 0``, the paper's 0.1 turns it on), grown to blocks, ``Mdrop2 = 1 - D_block``. A constant
    attention map normalises to zeros, so with ``delta_l > 0`` stage 2 marks all of it.

    Args:
        features: ``F`` (B, C, H, W).
        delta_l, delta_h: thresholds on ``An``, ``0 <= delta_l < delta_h <= 1``.
        block_size: side of the dropped blocks, or ``"adaptive"`` (``ceil(H / 7)``).

    Returns:
        A dict of (B, 1, H, W) maps: ``attention`` (A), ``normalized_attention`` (An), ``importance``
        (I, with gradient), ``stage1``, ``stage2``, ``region`` (D_block) and ``drop_mask`` (Mdrop2);
        the last four are 0/1 in ``F``'s dtype, without gradient.
    """
    delta_l, delta_h = _check_deltas(delta_l, delta_h)
    attention = spatial_attention(features)
    size = resolve_block_size(block_size, features.shape[-2])
    with torch.no_grad():
        normalised = normalize_attention(attention.detach())
        stage1 = (normalised > delta_h).to(features.dtype)
        stage2 = (normalised < delta_l).to(features.dtype)
        region = expand_blocks(torch.maximum(stage1, stage2), size)
        drop_mask = 1.0 - region
    return {
        "attention": attention,
        "normalized_attention": normalised,
        "importance": importance_map(attention),
        "stage1": stage1,
        "stage2": stage2,
        "region": region,
        "drop_mask": drop_mask,
    }


def resolve_block_size(block_size: BlockSize, height: int) -> int:
    """``block_size`` as an int for an ``height``-row map: ``"adaptive"`` becomes ``ceil(height / 7)``."""
    return adaptive_block_size(height) if _check_block_size(block_size) == "adaptive" else int(block_size)


def _sagd_drop_mask(attention: Tensor, delta_l: float, delta_h: float, block_size: int) -> Tensor:
    """``Mdrop2`` alone, for ``A`` (B, 1, H, W): the same values as ``sagd_drop_region``'s, fewer steps."""
    with torch.no_grad():
        normalised = normalize_attention(attention)
        region = (normalised > delta_h) | (normalised < delta_l)
        return 1.0 - expand_blocks(region.to(attention.dtype), block_size)


def apply_spatial_choice(
    features: Tensor,
    drop_mask: Tensor,
    importance: Tensor,
    drop_rate: float,
    per_sample: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``F * chosen``: ``chosen`` is the drop mask with probability ``drop_rate``, else the importance map.

    One draw per call, shared by the batch, or one per sample when ``per_sample`` (ADL's and SAGD's
    random selection). ``drop_mask`` and ``importance`` are (B, 1, H, W); no rescaling.
    """
    drop_rate = _check_probability("drop_rate", drop_rate)
    if per_sample:
        use_drop = _uniform((features.shape[0], 1, 1, 1), features, generator) < drop_rate
        return features * torch.where(use_drop, drop_mask, importance)
    return features * (drop_mask if _coin(drop_rate, generator) else importance)


class _ImportanceScaled(torch.autograd.Function):
    """``F * I`` with ``I = sigmoid(mean_c F)``, with two (B, C, H, W) allocations instead of
    autograd's six. On CPU a fresh buffer of F's size costs about as much as a pass over it (large
    blocks go back to the system when freed), so this roughly halves the branch's time.

    ``dL/dF = g * I + (sum_c g * F) * (1 - I) * I / C`` with ``g = dL/dout``. The operations are
    autograd's own, in its order (sigmoid's backward, then the mean's division by C), so values and
    gradients are bit-for-bit those of the plain expression: networks trained before this function
    existed train the same.
    """

    @staticmethod
    def forward(ctx, features: Tensor) -> Tensor:  # type: ignore[override]
        importance = importance_map(spatial_attention(features))
        ctx.save_for_backward(features, importance)
        return features * importance

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tensor:  # type: ignore[override]
        features, importance = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: let autograd differentiate the plain expression
            with torch.enable_grad():
                output = features * importance_map(spatial_attention(features))
            return torch.autograd.grad(output, features, grad_output, create_graph=True)[0]
        grad = grad_output * features
        through_attention = grad.sum(dim=1, keepdim=True).mul_(1.0 - importance).mul_(importance)
        through_attention /= features.shape[1]
        torch.mul(grad_output, importance, out=grad)
        return grad.add_(through_attention)


def random_block_mask(
    features: Tensor, block_size: int, p: float, generator: torch.Generator | None = None
) -> Tensor:
    """DropBlock's keep mask at random places (Ghiasi et al. 2018), one per sample: (B, 1, H, W) of 0/1.

    Block centres are drawn with probability ``gamma = p H W / (k^2 (H - k + 1)(W - k + 1))`` on the
    positions where a whole ``k x k`` block fits, so about a share ``p`` of the map is dropped, and
    grown to blocks by a max-pool. The same draws as ``torchvision.ops.drop_block2d`` on a
    (B, 1, H, W) input with the same random state (tested), but from ``generator`` when one is given.
    """
    _check_features(features, "random_block_mask")
    p = _check_probability("p", p)
    size = _check_odd_block_size(block_size, "random_block_mask")
    batch, _, height, width = features.shape
    if size > min(height, width):
        raise ValueError(f"block_size {size} must be no larger than the {height}x{width} map: use a smaller block_size")
    keep = torch.ones(batch, 1, height, width, device=features.device, dtype=features.dtype)
    if p == 0.0:
        return keep
    gamma = p * height * width / (size**2 * (height - size + 1) * (width - size + 1))
    centres = torch.empty(batch, 1, height - size + 1, width - size + 1, device=features.device, dtype=features.dtype)
    centres.bernoulli_(gamma, generator=generator)
    half = size // 2
    # the zero pad puts each centre at its place in the H x W map; the pool grows it to a k x k block
    dropped = nnf.max_pool2d(nnf.pad(centres, [half] * 4), kernel_size=size, stride=1, padding=half)
    return keep - dropped


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------
class _AttentionModule(nn.Module):
    """Shared behaviour: rank-4 check, identity in eval mode, a ``generator`` attribute."""

    def __init__(self, generator: torch.Generator | None) -> None:
        super().__init__()
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.generator = generator

    def forward(self, features: Tensor) -> Tensor:
        """``F`` (B, C, H, W) -> same shape: the erased map in training, ``F`` itself in eval mode."""
        _check_features(features, type(self).__name__)
        if not self.training:
            return features
        return self._train_forward(features)

    def _train_forward(self, features: Tensor) -> Tensor:
        raise NotImplementedError

    def masks(self, features: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError


class _SpatialChoice(_AttentionModule):
    """ADL and SAGD: ``F * M`` with probability ``drop_rate``, else ``F * I``.

    With one draw per forward the coin is tossed first and only the chosen branch is computed: the
    drop mask without building ``I``'s graph, or ``I`` without the drop region. The generator is
    used in the same order as ``masks`` + ``apply_spatial_choice``, so the output is the same.
    """

    drop_rate: float
    per_sample: bool

    def _drop_mask(self, attention: Tensor) -> Tensor:
        """The 0/1 keep mask (B, 1, H, W) for the self-attention map ``A``."""
        raise NotImplementedError

    def _erase_or_scale(self, features: Tensor) -> Tensor:
        """The spatial choice on ``F``: ``F * M`` or ``F * I``."""
        if self.per_sample:
            attention = spatial_attention(features)
            drop_mask = self._drop_mask(attention.detach())
            return apply_spatial_choice(features, drop_mask, importance_map(attention), self.drop_rate, True,
                                        self.generator)
        if not _coin(self.drop_rate, self.generator):
            return _ImportanceScaled.apply(features)
        with torch.no_grad():
            drop_mask = self._drop_mask(spatial_attention(features))
        return features * drop_mask


class ADL(_SpatialChoice):
    """Attention-based Dropout Layer (Choe & Shim, CVPR 2019), the paper's baseline.

    Training: ``F * M`` with probability ``drop_rate``, else ``F * I``, where ``A = mean_c F``,
    ``I = sigmoid(A)`` and ``M = 1[A < gamma * max_hw A]``. Identity in eval mode; no parameters.

    Args:
        gamma: drop threshold as a fraction of the per-sample maximum of ``A`` (0.8 VGG, 0.9 ResNet).
        drop_rate: probability of using ``M`` rather than ``I``.
        per_sample: one draw per sample instead of one per forward call.
        generator: source of the random choice.
    """

    def __init__(
        self,
        gamma: float = 0.8,
        drop_rate: float = 0.75,
        per_sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(generator)
        self.gamma = _check_probability("gamma", gamma)
        self.drop_rate = _check_probability("drop_rate", drop_rate)
        self.per_sample = bool(per_sample)

    def _drop_mask(self, attention: Tensor) -> Tensor:
        return _adl_drop_mask(attention, self.gamma)

    def _train_forward(self, features: Tensor) -> Tensor:
        return self._erase_or_scale(features)

    def masks(self, features: Tensor) -> dict[str, Tensor]:
        """Maps for ``F`` (B, C, H, W): ``attention`` (A), ``importance`` (I), ``drop_mask`` (M), all (B, 1, H, W)."""
        _check_features(features, "ADL.masks")
        importance, drop_mask = adl_masks(features, self.gamma)
        return {"attention": spatial_attention(features), "importance": importance, "drop_mask": drop_mask}

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, drop_rate={self.drop_rate}, per_sample={self.per_sample}"


class CAGD(_AttentionModule):
    """Channel Attention Guided Dropout (paper 3.2): ``F * Mdrop1[:, :, None, None]`` in training.

    ``S = GAP(F)``; channels with ``|S_c| >= beta * min_c |S_c|`` (or the top ``keep_ratio`` share)
    are kept, each of the others is zeroed with probability ``alpha``, per sample. The ``beta`` rule
    degenerates in two ways (``cagd_rule_regimes`` counts them): if ``min |S|`` is 0 (a dead channel
    after ReLU) it keeps everything; if ``max |S| < beta * min |S|`` (all scores within a factor
    ``beta`` of each other) no channel is important and even the strongest is dropped with
    probability ``alpha``. ``keep_ratio`` avoids both.

    Args:
        beta: threshold factor, >= 1 (paper: 2, 2.5, 3, 3.5).
        alpha: drop probability of each unimportant channel.
        keep_ratio: None for the ``beta`` rule, or the fraction of channels kept by rank, in (0, 1].
        generator: source of the channel draws.
    """

    def __init__(
        self,
        beta: float = 3.0,
        alpha: float = 0.5,
        keep_ratio: float | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(generator)
        self.beta = _check_beta(beta)
        self.alpha = _check_probability("alpha", alpha)
        self.keep_ratio = _check_keep_ratio(keep_ratio)

    def _train_forward(self, features: Tensor) -> Tensor:
        channel_mask, _, _ = cagd_channel_mask(features, self.beta, self.alpha, self.keep_ratio, self.generator)
        return features * channel_mask[:, :, None, None]

    def masks(self, features: Tensor) -> dict[str, Tensor]:
        """For ``F`` (B, C, H, W), one draw of: ``channel_mask`` (Mdrop1), ``channel_score`` (S) and
        ``important_channels`` (bool), all (B, C)."""
        _check_features(features, "CAGD.masks")
        channel_mask, scores, important = cagd_channel_mask(
            features, self.beta, self.alpha, self.keep_ratio, self.generator
        )
        return {"channel_mask": channel_mask, "channel_score": scores, "important_channels": important}

    def extra_repr(self) -> str:
        rule = f"keep_ratio={self.keep_ratio}" if self.keep_ratio is not None else f"beta={self.beta}"
        return f"{rule}, alpha={self.alpha}"


class SAGD(_SpatialChoice):
    """Spatial Attention Guided Dropblock (paper 3.3).

    Training: ``F * Mdrop2`` with probability ``drop_rate``, else ``F * I``. ``Mdrop2 = 1 - D_block``
    where ``D = 1[An > delta_h] OR 1[An < delta_l]`` is grown into ``block_size`` blocks.
    ``SAGD()`` is stage 1 alone, as ``--method sagd`` is; ``SAGD(delta_l=0.1)`` adds stage 2 (the
    background drop), as ``--method sagd12`` and DGDM do. ``block_size = 1`` drops single pixels as ADL does.

    Args:
        delta_l: background threshold on ``An`` (stage 2); the default 0 switches stage 2 off.
        delta_h: discriminative-region threshold on ``An`` (stage 1).
        block_size: int >= 1, or ``"adaptive"`` = ``ceil(H / 7)``.
        drop_rate: probability of using ``Mdrop2`` rather than ``I``.
        per_sample: one draw per sample instead of one per forward call.
        generator: source of the random choice.
    """

    def __init__(
        self,
        delta_l: float = 0.0,
        delta_h: float = 0.8,
        block_size: BlockSize = 3,
        drop_rate: float = 0.75,
        per_sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(generator)
        self.delta_l, self.delta_h = _check_deltas(delta_l, delta_h)
        self.block_size = _check_block_size(block_size)
        self.drop_rate = _check_probability("drop_rate", drop_rate)
        self.per_sample = bool(per_sample)

    def _drop_mask(self, attention: Tensor) -> Tensor:
        return _sagd_drop_mask(attention, self.delta_l, self.delta_h, resolve_block_size(self.block_size, attention.shape[-2]))

    def _train_forward(self, features: Tensor) -> Tensor:
        return self._erase_or_scale(features)

    def masks(self, features: Tensor) -> dict[str, Tensor]:
        """Maps for ``F`` (B, C, H, W), all (B, 1, H, W): ``attention`` (A), ``normalized_attention``
        (An), ``importance`` (I), ``stage1`` (An > delta_h), ``stage2`` (An < delta_l), ``region``
        (D_block) and ``drop_mask`` (Mdrop2)."""
        _check_features(features, "SAGD.masks")
        return sagd_drop_region(features, self.delta_l, self.delta_h, self.block_size)

    def extra_repr(self) -> str:
        return (
            f"delta_l={self.delta_l}, delta_h={self.delta_h}, block_size={self.block_size!r}, "
            f"drop_rate={self.drop_rate}, per_sample={self.per_sample}"
        )


class DGDM(_AttentionModule):
    """Dual-attention Guided Dropblock Module (paper Sec. 3): CAGD, then SAGD on its output.

    Training: ``F1 = cagd(F) = F * Mdrop1[:, :, None, None]``, then ``sagd(F1)``: ``A`` and the SAGD
    maps come from ``F1``; the output is ``F1 * Mdrop2`` with probability ``drop_rate``, else
    ``F1 * I``. The two parts are the modules ``self.cagd`` and ``self.sagd``, sharing ``generator``
    (channel draws first, then the spatial choice), so ``DGDM(generator=g)`` equals ``CAGD(g)``
    followed by ``SAGD(delta_l=0.1, generator=g)`` bit for bit, values and gradients (tested): DGDM's
    SAGD runs both stages by default. ``use_cagd`` and
    ``use_sagd`` switch the parts off for the paper's ablation rows (see ``ABLATION_ROWS``).

    Args:
        beta, alpha, keep_ratio: CAGD's, see ``CAGD``.
        delta_l, delta_h, block_size, drop_rate, per_sample: SAGD's, see ``SAGD`` (but ``delta_l``
            defaults to the paper's 0.1: stages 1 and 2).
        use_cagd, use_sagd: whether each part runs.
        generator: source of all draws.
    """

    def __init__(
        self,
        beta: float = 3.0,
        alpha: float = 0.5,
        keep_ratio: float | None = None,
        delta_l: float = 0.1,
        delta_h: float = 0.8,
        block_size: BlockSize = 3,
        drop_rate: float = 0.75,
        per_sample: bool = False,
        use_cagd: bool = True,
        use_sagd: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(generator)
        self.cagd = CAGD(beta, alpha, keep_ratio, generator)
        self.sagd = SAGD(delta_l, delta_h, block_size, drop_rate, per_sample, generator)
        self.use_cagd = bool(use_cagd)
        self.use_sagd = bool(use_sagd)

    @classmethod
    def ablation(cls, row: str, **kwargs: object) -> DGDM:
        """The DGDM of one row of the paper's Table 1: ``"stage1"``, ``"stage1+stage2"`` or
        ``"stage1+stage2+Mdrop1"``; ``kwargs`` override the other hyperparameters."""
        if row not in ABLATION_ROWS:
            raise ValueError(f"unknown ablation row {row!r}: choose one of {', '.join(ABLATION_ROWS)}")
        return cls(**{**ABLATION_ROWS[row], **kwargs})  # type: ignore[arg-type]

    def _train_forward(self, features: Tensor) -> Tensor:
        if self.use_cagd:
            features = self.cagd(features)
        return self.sagd(features) if self.use_sagd else features

    def masks(self, features: Tensor) -> dict[str, Tensor]:
        """Maps for ``F`` (B, C, H, W), only for the parts switched on: CAGD's (one draw, on ``F``),
        then SAGD's on ``F1 = F * Mdrop1`` (see ``CAGD.masks`` and ``SAGD.masks``)."""
        _check_features(features, "DGDM.masks")
        maps = self.cagd.masks(features) if self.use_cagd else {}
        if self.use_sagd:
            dropped = features * maps["channel_mask"][:, :, None, None] if maps else features
            maps.update(self.sagd.masks(dropped))
        return maps

    def extra_repr(self) -> str:
        return f"use_cagd={self.use_cagd}, use_sagd={self.use_sagd}"


def _part_attribute(part: str, name: str) -> property:
    """``DGDM.beta`` and friends: the hyperparameters live in the parts; read and set them there."""

    def get(self: DGDM) -> object:
        return getattr(getattr(self, part), name)

    def set_(self: DGDM, value: object) -> None:
        setattr(getattr(self, part), name, value)

    return property(get, set_, doc=f"``self.{part}.{name}``")


for _name in ("beta", "alpha", "keep_ratio"):
    setattr(DGDM, _name, _part_attribute("cagd", _name))
for _name in ("delta_l", "delta_h", "block_size", "drop_rate", "per_sample"):
    setattr(DGDM, _name, _part_attribute("sagd", _name))


class RandomDropBlock(_AttentionModule):
    """Control: DropBlock at random places (``torchvision.ops.drop_block2d``), no attention.

    With probability ``drop_rate`` (one draw per forward) the output is ``F * Mrand``, where
    ``Mrand`` (B, 1, H, W) zeroes random ``block_size`` blocks covering about a fraction ``p`` of
    each map, shared by the channels as SAGD's ``Mdrop2`` is; otherwise ``F`` passes unchanged.
    Unlike torchvision's ``DropBlock2d`` the kept values are not rescaled, as in ADL and SAGD.

    Args:
        block_size: side of the blocks, an odd integer (torchvision's requirement).
        p: expected share of dropped positions (torchvision's ``p``); match it to SAGD's drop area.
        drop_rate: probability of applying the random mask at all.
        generator: source of the draws (the block positions too).
    """

    def __init__(
        self,
        block_size: int = 3,
        p: float = 0.1,
        drop_rate: float = 0.75,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(generator)
        self.block_size = _check_odd_block_size(block_size, "RandomDropBlock")
        self.p = _check_probability("p", p)
        self.drop_rate = _check_probability("drop_rate", drop_rate)

    def random_mask(self, features: Tensor) -> Tensor:
        """A 0/1 keep mask ``Mrand`` (B, 1, H, W) for ``F`` (``random_block_mask``)."""
        _check_features(features, "RandomDropBlock.random_mask")
        if self.generator is None:
            return random_block_mask(features, self.block_size, self.p)
        # One seed per call from our generator, then a generator of its own on the features' device:
        # the global random state is left alone, and the control draws what it always drew.
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator, device=self.generator.device).item())
        local = torch.Generator(device=features.device).manual_seed(seed)
        return random_block_mask(features, self.block_size, self.p, generator=local)

    def _train_forward(self, features: Tensor) -> Tensor:
        if _coin(self.drop_rate, self.generator):
            return features * self.random_mask(features)
        return features

    def masks(self, features: Tensor) -> dict[str, Tensor]:
        """For ``F`` (B, C, H, W), one draw of ``drop_mask`` (Mrand, (B, 1, H, W))."""
        return {"drop_mask": self.random_mask(features)}

    def extra_repr(self) -> str:
        return f"block_size={self.block_size}, p={self.p}, drop_rate={self.drop_rate}"
