"""ADL, CAGD, SAGD, DGDM and the random-block control (dgdm_lib.modules, docs/methods.md, "The modules")."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dgdm_lib.modules import (
    ABLATION_ROWS,
    ADL,
    CAGD,
    DGDM,
    SAGD,
    RandomDropBlock,
    adaptive_block_size,
    adl_masks,
    apply_spatial_choice,
    cagd_channel_mask,
    expand_blocks,
    normalize_attention,
    random_block_mask,
    sagd_drop_region,
)

ALL_MODULES = [ADL, CAGD, SAGD, DGDM, RandomDropBlock]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _features_with_attention(attention: list[list[float]], channels: int = 2) -> torch.Tensor:
    """A (1, C, H, W) map whose channel mean is exactly ``attention``."""
    a = torch.tensor(attention, dtype=torch.float64)
    return a.expand(1, channels, *a.shape).clone()


def _one_pixel(height: int, width: int, row: int, col: int) -> torch.Tensor:
    region = torch.zeros(1, 1, height, width)
    region[0, 0, row, col] = 1.0
    return region


# --------------------------------------------------------------------------------------------
# Shared behaviour
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ALL_MODULES)
def test_module_adds_no_parameters_and_returns_its_input_in_eval_mode(cls: type) -> None:
    module = cls().eval()
    features = torch.rand(2, 4, 6, 6)
    assert sum(p.numel() for p in module.parameters()) == 0
    assert list(module.buffers()) == []
    assert module(features) is features


@pytest.mark.parametrize("cls", ALL_MODULES)
def test_module_keeps_the_feature_map_shape_in_training(cls: type) -> None:
    features = torch.rand(3, 5, 7, 9)
    out = cls(generator=_gen()).train()(features)
    assert out.shape == features.shape
    assert out.dtype == features.dtype


@pytest.mark.parametrize("cls", ALL_MODULES)
def test_feature_map_of_rank_three_is_rejected_with_a_hint(cls: type) -> None:
    with pytest.raises(ValueError, match=r"rank 4.*unsqueeze"):
        cls().train()(torch.rand(4, 6, 6))


@pytest.mark.parametrize(
    ("cls", "kwargs", "names"),
    [
        (ADL, {"gamma": 1.5}, "gamma"),
        (ADL, {"drop_rate": -0.1}, "drop_rate"),
        (CAGD, {"beta": 0.5}, "beta"),
        (CAGD, {"alpha": 2.0}, "alpha"),
        (CAGD, {"keep_ratio": 0.0}, "keep_ratio"),
        (CAGD, {"keep_ratio": 1.2}, "keep_ratio"),
        (SAGD, {"delta_l": 0.5, "delta_h": 0.5}, "delta_l < delta_h"),
        (SAGD, {"delta_l": -0.1}, "delta_l"),
        (SAGD, {"delta_h": 1.1}, "delta_h"),
        (SAGD, {"block_size": 0}, "block_size"),
        (SAGD, {"block_size": 2.5}, "block_size"),
        (SAGD, {"block_size": "big"}, "block_size"),
        (DGDM, {"drop_rate": 1.01}, "drop_rate"),
        (DGDM, {"beta": 0.9}, "beta"),
        (RandomDropBlock, {"block_size": 2}, "odd"),
        (RandomDropBlock, {"p": 1.5}, "p is a probability"),
    ],
)
def test_invalid_hyperparameter_is_rejected_naming_the_parameter(cls: type, kwargs: dict, names: str) -> None:
    with pytest.raises(ValueError, match=names):
        cls(**kwargs)


def test_hyperparameter_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="alpha"):
        CAGD(alpha="0.5")
    with pytest.raises(TypeError, match="generator"):
        SAGD(generator=0)


def test_repr_shows_the_hyperparameters() -> None:
    text = repr(DGDM(beta=2.5, delta_l=0.0, block_size="adaptive"))
    assert "beta=2.5" in text and "delta_l=0.0" in text and "block_size='adaptive'" in text
    assert "keep_ratio=0.3" in repr(CAGD(keep_ratio=0.3))


# --------------------------------------------------------------------------------------------
# ADL
# --------------------------------------------------------------------------------------------
def test_adl_drop_mask_zeroes_pixels_at_or_above_gamma_times_the_maximum() -> None:
    features = _features_with_attention([[0.0, 0.5, 0.79], [0.8, 0.9, 1.0]])
    importance, drop_mask = adl_masks(features, gamma=0.8)
    assert drop_mask[0, 0].tolist() == [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    assert torch.allclose(importance[0, 0], torch.sigmoid(features[0, 0]))


def test_adl_uses_the_drop_mask_at_drop_rate_one_and_the_importance_map_at_zero() -> None:
    features = torch.rand(2, 3, 4, 4)
    importance, drop_mask = adl_masks(features, 0.8)
    assert torch.equal(ADL(drop_rate=1.0).train()(features), features * drop_mask)
    assert torch.allclose(ADL(drop_rate=0.0).train()(features), features * importance)


def test_adl_threshold_is_per_sample() -> None:
    weak = _features_with_attention([[0.1, 0.2]])
    strong = _features_with_attention([[1.0, 2.0]])
    _, drop_mask = adl_masks(torch.cat([weak, strong]), 0.8)
    assert drop_mask[:, 0, 0].tolist() == [[1.0, 0.0], [1.0, 0.0]]


@pytest.mark.parametrize("drop_rate", [0.25, 0.75])
def test_adl_chooses_the_drop_mask_with_probability_drop_rate(drop_rate: float) -> None:
    module = ADL(drop_rate=drop_rate, generator=_gen(1)).train()
    features = torch.tensor([[[[1.0, 2.0]]]])  # drop mask (1, 0); importance map never 0 or 1
    draws = 1500
    dropped = sum(bool(module(features)[0, 0, 0, 1] == 0) for _ in range(draws))
    assert abs(dropped / draws - drop_rate) < 4 * math.sqrt(drop_rate * (1 - drop_rate) / draws)


def test_one_draw_per_forward_is_shared_by_the_batch_unless_per_sample() -> None:
    features = torch.tensor([[[[1.0, 2.0]]]]).expand(400, 1, 1, 2)
    shared = ADL(drop_rate=0.5, generator=_gen(2)).train()(features)
    per_sample = ADL(drop_rate=0.5, per_sample=True, generator=_gen(2)).train()(features)
    assert (shared[:, 0, 0, 1] == 0).float().mean().item() in (0.0, 1.0)
    assert 0.4 < (per_sample[:, 0, 0, 1] == 0).float().mean().item() < 0.6


# --------------------------------------------------------------------------------------------
# CAGD
# --------------------------------------------------------------------------------------------
def _features_with_channel_means(means: list[float]) -> torch.Tensor:
    return torch.tensor(means, dtype=torch.float64).view(1, -1, 1, 1).expand(1, len(means), 3, 3).clone()


def test_cagd_keeps_channels_at_or_above_beta_times_the_smallest_magnitude() -> None:
    # |S| = 1, 5, 2, 0.5, 1.5 -> t = 3 * 0.5 = 1.5: channels 1, 2 and 4 are important (>= t)
    features = _features_with_channel_means([1.0, -5.0, 2.0, 0.5, 1.5])
    mask, scores, important = cagd_channel_mask(features, beta=3.0, alpha=1.0)
    assert important[0].tolist() == [False, True, True, False, True]
    assert mask[0].tolist() == [0.0, 1.0, 1.0, 0.0, 1.0]
    assert torch.allclose(scores[0], torch.tensor([1.0, -5.0, 2.0, 0.5, 1.5], dtype=torch.float64))


def test_cagd_with_alpha_zero_drops_nothing() -> None:
    features = _features_with_channel_means([1.0, 5.0, 2.0, 0.5])
    assert torch.equal(CAGD(alpha=0.0).train()(features), features)


def test_cagd_beta_rule_keeps_everything_when_a_channel_is_dead() -> None:
    features = _features_with_channel_means([0.0, 5.0, 2.0, 0.5])
    mask, _, important = cagd_channel_mask(features, beta=3.0, alpha=1.0)
    assert important.all() and mask.eq(1).all()


def test_keep_ratio_keeps_the_top_channels_in_their_original_order() -> None:
    features = _features_with_channel_means([3.0, 0.0, -4.0, 1.0, 2.0, 0.5])
    mask, _, important = cagd_channel_mask(features, alpha=1.0, keep_ratio=0.5)
    assert important[0].tolist() == [True, False, True, False, True, False]
    assert mask[0].tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]


def test_cagd_output_zeroes_whole_dropped_channels_only() -> None:
    features = _features_with_channel_means([1.0, 5.0, 2.0, 0.5]) + torch.rand(1, 4, 3, 3, dtype=torch.float64) * 0.01
    out = CAGD(alpha=1.0).train()(features)
    assert out[0, 0].eq(0).all() and out[0, 3].eq(0).all()
    assert torch.equal(out[0, 1:3], features[0, 1:3])


@pytest.mark.parametrize("alpha", [0.3, 0.5])
def test_cagd_drops_each_unimportant_channel_with_probability_alpha(alpha: float) -> None:
    # one important channel (|S| = 10) and 99 unimportant ones (|S| = 1) per sample
    means = torch.ones(200, 100, 1, 1)
    means[:, 0] = 10.0
    mask, _, important = cagd_channel_mask(means.expand(200, 100, 2, 2), 3.0, alpha, generator=_gen(3))
    unimportant = ~important
    rate = 1.0 - mask[unimportant].mean().item()
    assert important[:, 0].all() and unimportant[:, 1:].all()
    assert abs(rate - alpha) < 4 * math.sqrt(alpha * (1 - alpha) / unimportant.sum().item())
    assert not torch.equal(mask[0], mask[1])  # drawn independently per sample


# --------------------------------------------------------------------------------------------
# SAGD
# --------------------------------------------------------------------------------------------
def test_normalized_attention_is_min_max_per_sample_and_zero_for_a_constant_map() -> None:
    attention = torch.tensor([[[[2.0, 4.0, 6.0]]], [[[3.0, 3.0, 3.0]]]])
    assert normalize_attention(attention).flatten(1).tolist() == [[0.0, 0.5, 1.0], [0.0, 0.0, 0.0]]


def test_sagd_marks_stage_one_above_delta_h_and_stage_two_below_delta_l() -> None:
    features = _features_with_attention([[0.0, 0.05, 0.5], [0.85, 1.0, 0.3]])
    maps = sagd_drop_region(features, delta_l=0.1, delta_h=0.8, block_size=1)
    assert maps["stage1"][0, 0].tolist() == [[0, 0, 0], [1, 1, 0]]
    assert maps["stage2"][0, 0].tolist() == [[1, 1, 0], [0, 0, 0]]
    assert maps["drop_mask"][0, 0].tolist() == [[0, 0, 1], [0, 0, 1]]


def test_block_size_one_drops_the_same_pixels_as_thresholding() -> None:
    features = torch.rand(3, 4, 9, 9)
    maps = sagd_drop_region(features, 0.2, 0.7, block_size=1)
    normalised = normalize_attention(features.mean(1, keepdim=True))
    expected = ((normalised > 0.7) | (normalised < 0.2)).float()
    assert torch.equal(maps["region"], expected)


def test_block_of_odd_size_is_centred_on_the_seed_pixel() -> None:
    blocks = expand_blocks(_one_pixel(7, 7, 3, 3), 3)[0, 0]
    assert blocks.nonzero().tolist() == [[r, c] for r in (2, 3, 4) for c in (2, 3, 4)]


def test_block_of_even_size_extends_up_and_left_of_the_seed_pixel() -> None:
    blocks = expand_blocks(_one_pixel(7, 7, 3, 3), 2)[0, 0]
    assert blocks.nonzero().tolist() == [[2, 2], [2, 3], [3, 2], [3, 3]]


@given(
    block_size=st.integers(1, 6),
    height=st.integers(1, 9),
    width=st.integers(1, 9),
    row=st.integers(0, 8),
    col=st.integers(0, 8),
)
@settings(max_examples=60, deadline=None)
def test_block_expansion_keeps_the_map_size_and_covers_a_clipped_square(
    block_size: int, height: int, width: int, row: int, col: int
) -> None:
    row, col = row % height, col % width
    blocks = expand_blocks(_one_pixel(height, width, row, col), block_size)[0, 0]
    assert blocks.shape == (height, width)
    rows = range(max(0, row - block_size // 2), min(height, row + (block_size - 1) // 2 + 1))
    cols = range(max(0, col - block_size // 2), min(width, col + (block_size - 1) // 2 + 1))
    assert blocks.nonzero().tolist() == [[r, c] for r in rows for c in cols]


@given(seed=st.integers(0, 10_000), block_size=st.integers(1, 7), height=st.integers(1, 20), width=st.integers(1, 20))
@settings(max_examples=60, deadline=None)
def test_block_expansion_equals_a_stride_one_max_pool_over_the_padded_map(
    seed: int, block_size: int, height: int, width: int
) -> None:
    region = (torch.rand(3, 1, height, width, generator=_gen(seed)) > 0.85).float()
    before, after = (block_size - 1) // 2, block_size // 2
    padded = torch.nn.functional.pad(region, (before, after, before, after))
    assert torch.equal(expand_blocks(region, block_size), torch.nn.functional.max_pool2d(padded, block_size, stride=1))


@given(seed=st.integers(0, 10_000), block_size=st.integers(1, 5), delta_l=st.floats(0.0, 0.4))
@settings(max_examples=40, deadline=None)
def test_sagd_masks_are_binary_and_the_block_region_contains_the_thresholded_pixels(
    seed: int, block_size: int, delta_l: float
) -> None:
    features = torch.rand(2, 3, 8, 10, generator=_gen(seed))
    maps = SAGD(delta_l=delta_l, delta_h=0.6, block_size=block_size).masks(features)
    for key in ("stage1", "stage2", "region", "drop_mask"):
        assert maps[key].shape == (2, 1, 8, 10)
        assert set(maps[key].unique().tolist()) <= {0.0, 1.0}
    seeds = torch.maximum(maps["stage1"], maps["stage2"])
    assert (maps["region"] >= seeds).all()
    assert torch.equal(maps["drop_mask"], 1 - maps["region"])


def test_adaptive_block_size_is_the_ceiling_of_a_seventh_of_the_height() -> None:
    assert [adaptive_block_size(h) for h in (7, 14, 16, 28)] == [1, 2, 3, 4]
    features = torch.rand(2, 3, 14, 14)
    adaptive = SAGD(block_size="adaptive").masks(features)["region"]
    assert torch.equal(adaptive, SAGD(block_size=2).masks(features)["region"])


def test_constant_attention_drops_nothing_without_stage_two_and_everything_with_it() -> None:
    features = torch.full((1, 3, 5, 5), 0.7)
    assert SAGD(delta_l=0.0).masks(features)["drop_mask"].eq(1).all()
    # An is all zeros, so stage 2 (An < delta_l) calls every pixel background, as ADL drops all
    assert SAGD(delta_l=0.1).masks(features)["drop_mask"].eq(0).all()
    assert adl_masks(features, 0.8)[1].eq(0).all()


def test_gradient_flows_through_the_importance_map() -> None:
    features = torch.rand(2, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    SAGD(drop_rate=0.0).train()(features).sum().backward()
    with torch.no_grad():
        importance = torch.sigmoid(features.mean(1, keepdim=True))
        through_attention = (features.sum(1, keepdim=True) * importance * (1 - importance)) / features.shape[1]
        expected = importance + through_attention
    assert torch.allclose(features.grad, expected.expand_as(features))


def test_drop_mask_passes_gradient_only_where_it_keeps_features() -> None:
    features = torch.rand(2, 4, 6, 6, requires_grad=True)
    module = SAGD(drop_rate=1.0, block_size=2).train()
    module(features).sum().backward()
    drop_mask = module.masks(features.detach())["drop_mask"]
    assert torch.equal(features.grad, drop_mask.expand_as(features))


# --------------------------------------------------------------------------------------------
# DGDM
# --------------------------------------------------------------------------------------------
def test_dgdm_with_cagd_off_and_delta_l_zero_is_sagd_stage_one() -> None:
    features = torch.rand(3, 4, 8, 8)
    stage1 = DGDM(use_cagd=False, delta_l=0.0, generator=_gen(5)).train()
    sagd = SAGD(delta_l=0.0, generator=_gen(5)).train()
    assert stage1.masks(features)["stage2"].eq(0).all()
    for _ in range(4):
        assert torch.equal(stage1(features), sagd(features))


def test_dgdm_computes_spatial_attention_after_channel_dropout() -> None:
    features = _features_with_channel_means([1.0, 5.0, 2.0, 0.5]) * torch.rand(1, 1, 3, 3, dtype=torch.float64)
    maps = DGDM(alpha=1.0).masks(features)
    kept = features * maps["channel_mask"][:, :, None, None]
    assert maps["channel_mask"][0].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert torch.allclose(maps["attention"], kept.mean(1, keepdim=True))


def test_dgdm_with_sagd_off_is_cagd() -> None:
    features = torch.rand(2, 6, 4, 4)
    dgdm = DGDM(use_sagd=False, generator=_gen(7)).train()
    cagd = CAGD(generator=_gen(7)).train()
    assert torch.equal(dgdm(features), cagd(features))
    assert set(DGDM(use_sagd=False).masks(features)) == {"channel_mask", "channel_score", "important_channels"}


@pytest.mark.parametrize("per_sample", [False, True])
def test_dgdm_is_cagd_then_sagd_bit_for_bit_in_values_and_gradients(per_sample: bool) -> None:
    """DGDM(generator=g) and CAGD(g) followed by SAGD(g), drawing from one generator in the same order."""
    shared = _gen(11)
    cagd, sagd = CAGD(generator=shared).train(), SAGD(delta_l=0.1, per_sample=per_sample, generator=shared).train()
    dgdm = DGDM(per_sample=per_sample, generator=_gen(11)).train()
    for step in range(12):  # both branches of the drop_rate coin come up within a few steps
        features = (torch.rand(4, 16, 8, 8, generator=_gen(step)) * 3).requires_grad_()
        composed = sagd(cagd(features))
        (composed * torch.arange(64.0).view(1, 1, 8, 8)).sum().backward()
        plain_grad, features.grad = features.grad, None
        fused = dgdm(features)
        (fused * torch.arange(64.0).view(1, 1, 8, 8)).sum().backward()
        assert torch.equal(fused, composed) and torch.equal(features.grad, plain_grad), step


def test_dgdm_with_both_parts_off_is_identity_in_training() -> None:
    features = torch.rand(2, 3, 4, 4)
    assert torch.equal(DGDM(use_cagd=False, use_sagd=False).train()(features), features)


def test_ablation_rows_build_the_papers_table_one_configurations() -> None:
    assert set(ABLATION_ROWS) == {"stage1", "stage1+stage2", "stage1+stage2+Mdrop1"}
    row = DGDM.ablation("stage1", block_size=2)
    assert (row.use_cagd, row.delta_l, row.block_size) == (False, 0.0, 2)
    assert DGDM.ablation("stage1+stage2+Mdrop1").use_cagd
    with pytest.raises(ValueError, match="stage1"):
        DGDM.ablation("stage3")


@pytest.mark.parametrize("per_sample", [False, True])
def test_same_generator_seed_gives_identical_outputs_on_cpu(per_sample: bool) -> None:
    features = torch.rand(4, 8, 7, 7)
    first = DGDM(per_sample=per_sample, generator=_gen(11)).train()
    second = DGDM(per_sample=per_sample, generator=_gen(11)).train()
    outputs = [(first(features), second(features)) for _ in range(5)]
    assert all(torch.equal(a, b) for a, b in outputs)
    assert not all(torch.equal(outputs[0][0], a) for a, _ in outputs[1:])


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize(
    "make", [lambda g, ps: ADL(per_sample=ps, generator=g), lambda g, ps: SAGD(block_size="adaptive", per_sample=ps, generator=g),
             lambda g, ps: DGDM(per_sample=ps, generator=g), lambda g, ps: DGDM(use_cagd=False, per_sample=ps, generator=g)],
    ids=["adl", "sagd", "dgdm", "dgdm-no-cagd"],
)
def test_training_forward_equals_the_published_masks_applied(make, per_sample: bool) -> None:
    """The forward computes only the chosen branch; it must agree with ``masks`` + ``apply_spatial_choice``
    fed from an identically seeded generator, draw for draw, in both branches."""
    # Whole tenths hit the thresholds exactly (An == delta_h, A == gamma * max), where > and >= differ.
    levels = torch.randint(0, 11, (5, 1, 14, 14), generator=_gen(1)).float()
    features = levels.expand(5, 6, 14, 14).clone()
    module, reference = make(_gen(3), per_sample).train(), make(_gen(3), per_sample)
    for _ in range(12):
        maps = reference.masks(features)
        expected_input = features * maps["channel_mask"][:, :, None, None] if "channel_mask" in maps else features
        expected = apply_spatial_choice(expected_input, maps["drop_mask"], maps["importance"], reference.drop_rate,
                                        per_sample, reference.generator)
        assert torch.equal(module(features), expected)


@pytest.mark.parametrize("drop_rate", [0.0, 1.0], ids=["importance", "erasing"])
@pytest.mark.parametrize(
    "make", [lambda g, rate: ADL(drop_rate=rate, generator=g), lambda g, rate: SAGD(drop_rate=rate, generator=g),
             lambda g, rate: DGDM(drop_rate=rate, alpha=0.7, generator=g),
             lambda g, rate: DGDM(use_cagd=False, drop_rate=rate, generator=g)],
    ids=["adl", "sagd", "dgdm", "dgdm-no-cagd"],
)
def test_training_gradient_equals_autograd_through_the_published_masks(make, drop_rate: float) -> None:
    """The branches have hand-written backward passes (fewer buffers); the gradient must be autograd's
    through ``F * Mdrop1 * M`` or ``F1 * sigmoid(mean_c F1)`` with the same draws, bit for bit (so
    cached networks trained through the plain expressions stay valid), channels-last included."""
    features = torch.rand(3, 24, 9, 9).contiguous(memory_format=torch.channels_last)
    weights = torch.randn(3, 24, 9, 9)
    module, reference = make(_gen(2), drop_rate).train(), make(_gen(2), drop_rate)
    for _ in range(3):
        ours = features.clone().requires_grad_(True)
        (module(ours) * weights).sum().backward()
        theirs = features.clone().requires_grad_(True)
        maps = reference.masks(theirs.detach())
        kept = theirs * maps["channel_mask"][:, :, None, None] if "channel_mask" in maps else theirs
        importance = torch.sigmoid(kept.mean(1, keepdim=True))
        chosen = apply_spatial_choice(kept, maps["drop_mask"], importance, drop_rate, False, reference.generator)
        (chosen * weights).sum().backward()
        assert torch.equal(ours.grad, theirs.grad)


@pytest.mark.slow
@pytest.mark.parametrize("drop_rate", [0.0, 1.0], ids=["importance", "erasing"])
@pytest.mark.parametrize("cls", [ADL, SAGD, DGDM])
def test_backward_passes_gradcheck_twice(cls, drop_rate: float) -> None:
    features = torch.rand(2, 4, 5, 5, dtype=torch.float64, requires_grad=True)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return cls(drop_rate=drop_rate, generator=_gen(4)).train()(x)

    assert torch.autograd.gradcheck(forward, (features,))
    assert torch.autograd.gradgradcheck(forward, (features,))


# --------------------------------------------------------------------------------------------
# Random-block control
# --------------------------------------------------------------------------------------------
def test_random_block_mask_is_binary_shared_by_channels_and_reproducible() -> None:
    features = torch.rand(8, 5, 14, 14)
    mask = RandomDropBlock(block_size=3, p=0.2, generator=_gen(3)).random_mask(features)
    again = RandomDropBlock(block_size=3, p=0.2, generator=_gen(3)).random_mask(features)
    assert mask.shape == (8, 1, 14, 14)
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(mask, again)
    assert 0.05 < 1 - mask.mean().item() < 0.3  # about p of the positions dropped


def test_random_block_with_a_generator_leaves_the_global_random_state_alone() -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    RandomDropBlock(p=0.3, generator=_gen(1)).random_mask(torch.ones(2, 2, 8, 8))
    assert torch.equal(torch.rand(3), expected)


def test_random_block_output_is_not_rescaled() -> None:
    features = torch.rand(2, 3, 9, 9)
    out = RandomDropBlock(p=0.3, drop_rate=1.0, generator=_gen(4)).train()(features)
    kept = out != 0
    assert torch.equal(out[kept], features[kept])
    assert (~kept).any()


def test_random_block_larger_than_the_map_is_rejected() -> None:
    with pytest.raises(ValueError, match="no larger than the 6x6"):
        RandomDropBlock(block_size=7).random_mask(torch.rand(1, 1, 6, 6))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_modules_run_on_cuda_with_a_cpu_generator() -> None:
    features = torch.rand(2, 8, 7, 7, device="cuda")
    for cls in ALL_MODULES:
        out = cls(generator=_gen(0)).train()(features)
        assert out.device == features.device
    cpu = DGDM(per_sample=True, generator=_gen(1)).train()(features.cpu())
    gpu = DGDM(per_sample=True, generator=_gen(1)).train()(features)
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-6)


# --- The functional ops check their arguments as the modules do (torchvision style) ----------------
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: sagd_drop_region(f, delta_l=0.9, delta_h=0.1), "delta_l < delta_h"),
        (lambda f: sagd_drop_region(f, block_size=0), "block_size must be"),
        (lambda f: cagd_channel_mask(f, beta=0.5), "beta must be >= 1"),
        (lambda f: cagd_channel_mask(f, alpha=1.5), "alpha is a probability"),
        (lambda f: cagd_channel_mask(f, keep_ratio=0.0), "keep_ratio"),
        (lambda f: adl_masks(f, gamma=float("nan")), "gamma must be a finite number"),
        (lambda f: apply_spatial_choice(f, f[:, :1], f[:, :1], drop_rate=-0.1), "drop_rate is a probability"),
    ],
)
def test_functional_ops_reject_the_hyperparameters_their_modules_reject(call, message) -> None:
    features = torch.rand(2, 4, 6, 6)
    with pytest.raises(ValueError, match=message):
        call(features)


@pytest.mark.parametrize(("shape", "block_size", "p"), [((3, 5, 16, 16), 3, 0.1), ((2, 1, 9, 7), 5, 0.3), ((4, 2, 8, 8), 1, 0.2)])
def test_random_block_mask_draws_what_torchvision_drop_block2d_draws(shape, block_size, p) -> None:
    from torchvision.ops import drop_block2d

    features = torch.rand(shape)
    for seed in range(5):
        ours = random_block_mask(features, block_size, p, generator=_gen(seed))
        torch.manual_seed(seed)
        theirs = (drop_block2d(torch.ones(shape[0], 1, *shape[2:]), p, block_size) > 0).float()
        assert torch.equal(ours, theirs)


def test_random_block_module_draws_a_fresh_generator_per_call_from_its_own() -> None:
    """The control's masks: one seed per call from its generator (the draws of docs/results.json's runs)."""
    features = torch.rand(2, 3, 12, 12)
    module = RandomDropBlock(block_size=3, p=0.2, generator=_gen(7))
    first, second = module.random_mask(features), module.random_mask(features)
    seeds = _gen(7)
    for mask in (first, second):
        seed = int(torch.randint(0, 2**62, (1,), generator=seeds).item())
        assert torch.equal(mask, random_block_mask(features, 3, 0.2, generator=_gen(seed)))
    assert not torch.equal(first, second)


def test_random_block_mask_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="odd integer block_size"):
        random_block_mask(torch.rand(1, 1, 8, 8), 2, 0.1)
    with pytest.raises(ValueError, match="no larger than the 6x6 map"):
        random_block_mask(torch.rand(1, 1, 6, 6), 7, 0.1)
    with pytest.raises(ValueError, match="p is a probability"):
        random_block_mask(torch.rand(1, 1, 8, 8), 3, 1.5)
