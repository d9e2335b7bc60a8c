"""CAGD's ``beta`` rule has two degenerate regimes: a dead channel makes every channel important,
and scores within a factor ``beta`` of each other make none important (the strongest is dropped too)."""

from __future__ import annotations

import torch

from dgdm_lib.modules import cagd_channel_mask, cagd_rule_regimes


def _maps(scores: list[list[float]]) -> torch.Tensor:
    """Constant 4x4 feature maps whose channel averages are ``scores`` (B, C)."""
    return torch.tensor(scores)[:, :, None, None].expand(-1, -1, 4, 4).contiguous()


def test_the_rule_regimes_are_told_apart_per_sample() -> None:
    features = _maps([
        [1.0, 1.5, 2.0, 2.9],   # max < 3 * min: no channel is important
        [0.0, 1.0, 5.0, 9.0],   # a dead channel: every channel is important
        [0.1, 0.2, 1.0, 4.0],   # the ordinary case: the two strong channels are important
        [1.0, 2.0, 2.5, 3.0],   # max == 3 * min: the strongest is important
        [-1.0, 1.5, -2.0, 2.5],  # ranked by magnitude
    ])
    regimes = cagd_rule_regimes(features, beta=3.0)
    assert regimes["none_important"].tolist() == [True, False, False, False, True]
    assert regimes["all_important"].tolist() == [False, True, False, False, False]
    _, _, important = cagd_channel_mask(features, beta=3.0, alpha=0.5)
    assert torch.equal(regimes["none_important"], ~important.any(dim=1))
    assert torch.equal(regimes["all_important"], important.all(dim=1))
    assert not cagd_rule_regimes(features, beta=1.0)["none_important"].any(), "beta = 1 keeps the weakest"


def test_with_no_important_channel_even_the_strongest_is_dropped_with_probability_alpha() -> None:
    features = _maps([[1.0, 1.5, 2.0, 2.9]]).expand(4000, -1, -1, -1)
    generator = torch.Generator().manual_seed(0)
    mask, _, important = cagd_channel_mask(features, beta=3.0, alpha=0.3, generator=generator)
    assert not important.any()
    assert abs((1 - mask[:, 3].mean().item()) - 0.3) < 0.03
