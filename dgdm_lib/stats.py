"""The two statistics the book's tables use, with one meaning of "± sd": the *sample* standard
deviation (ddof 1) over seeds, and Student-t 95% intervals."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = ["mean_sd_ci", "welch_difference"]


def mean_sd_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, sample sd and the half-width of a 95% t interval of the mean (sd 0 and half-width nan
    for a single value)."""
    from scipy import stats

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0, math.nan
    sd = statistics.stdev(values)
    return mean, sd, float(stats.t.ppf(0.975, len(values) - 1) * sd / math.sqrt(len(values)))


def welch_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, tuple[float, float] | None]:
    """``mean(a) - mean(b)`` and its Welch t 95% interval (None when a side has fewer than 2 values)."""
    from scipy import stats

    diff = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return diff, None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, (diff, diff)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.975, dof) * se)
    return diff, (diff - half, diff + half)
