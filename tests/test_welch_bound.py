"""Welch's test at its least favourable variance ratio (`welch_bound`), checked against scipy's Welch test by
simulation: the computed null rejection rates, the validity of the bounded p, and verdict/interval agreement."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from ganbench.analysis import welch_bound

LEVEL = 0.05 / 45  # the family's level in loo-cpu-like studies: where Welch's tails are too thin


def _scipy_welch_p(rng, n1: int, n2: int, theta: float, draws: int) -> np.ndarray:
    """scipy's two-sided Welch p on `draws` null samples with variance share θ = (σ₁²/n₁) / (σ₁²/n₁ + σ₂²/n₂)."""
    sd1, sd2 = math.sqrt(theta * n1), math.sqrt((1 - theta) * n2)
    x, y = rng.standard_normal((draws, n1)) * sd1, rng.standard_normal((draws, n2)) * sd2
    return sps.ttest_ind(x, y, axis=1, equal_var=False).pvalue


def _within(rate: float, expected: float, draws: int, ses: float = 4.0) -> bool:
    return abs(rate - expected) <= ses * math.sqrt(expected * (1 - expected) / draws)


@pytest.mark.parametrize("n1, n2, theta", [(5, 10, 0.84), (3, 5, 0.95), (10, 10, 0.5)])
def test_the_computed_null_rejection_rate_is_scipys_welch_test_simulated(n1, n2, theta):
    rng = np.random.default_rng(n1 * 100 + n2)
    draws = 400_000
    p = _scipy_welch_p(rng, n1, n2, theta, draws)
    computed = float(welch_bound.null_rejection(LEVEL, n1, n2, [theta])[0])
    assert _within(float((p <= LEVEL).mean()), computed, draws), ((p <= LEVEL).mean(), computed)
    computed_05 = float(welch_bound.null_rejection(0.05, n1, n2, [theta])[0])
    assert _within(float((p <= 0.05).mean()), computed_05, draws)


def test_welchs_own_tails_are_too_thin_and_the_bound_restores_the_level():
    """At 5 vs 10 runs with the 5 the noisier (the shape of a bimodal arm's learned runs against the reference),
    scipy's Welch p is below α/m ≈ 2.3× too often; the bounded p is below it at most as often as it says."""
    rng = np.random.default_rng(34)
    draws = 400_000
    p = _scipy_welch_p(rng, 5, 10, 0.94, draws)  # near the worst ratio for 5 vs 10
    welch = float((p <= LEVEL).mean())
    bounded = float((np.array([welch_bound.worst_case_p(v, 5, 10) for v in p[p < 0.01]]) <= LEVEL).sum() / draws)
    assert welch > 2 * LEVEL, welch
    assert bounded <= LEVEL + 3 * math.sqrt(LEVEL / draws), bounded


def test_the_bound_is_welchs_p_where_welch_is_exact_and_never_below_it():
    # θ = 0 or 1: one arm carries all the variance, Welch's dof is that arm's n − 1 and its p exact
    assert welch_bound.null_rejection(LEVEL, 5, 10, [0.0, 1.0]) == pytest.approx([LEVEL, LEVEL], rel=1e-4)
    for n1, n2 in [(2, 2), (3, 10), (5, 5), (20, 30)]:
        for p in (1e-9, 1e-4, LEVEL, 0.05, 0.5):
            assert welch_bound.worst_case_p(p, n1, n2) >= p
        assert welch_bound.worst_case_p(0.05, n1, n2) == welch_bound.worst_case_p(0.05, n2, n1)
    assert welch_bound.worst_case_p(0.05, 30, 30) == pytest.approx(0.05, rel=0.02)  # many runs: Welch is right
    assert math.isnan(welch_bound.worst_case_p(math.nan, 5, 5)) and welch_bound.worst_case_p(1.0, 5, 5) == 1.0
    with pytest.raises(ValueError, match="at least 2 values"):
        welch_bound.worst_case_p(0.01, 1, 5)


@pytest.mark.parametrize("n1, n2", [(3, 10), (5, 5), (5, 10), (10, 10)])
def test_the_interval_excludes_zero_exactly_when_the_bounded_p_is_below_the_level(n1, n2):
    """The interval's tail u* and the bounded p come from one monotone table: t beyond t_ν(1 − u*/2) ⟺ g(p) < α."""
    tail = welch_bound.critical_tail(LEVEL, n1, n2)
    assert welch_bound.worst_case_p(tail, n1, n2) == pytest.approx(LEVEL, rel=1e-9)
    assert tail <= LEVEL
    for dof in (n1 + n2 - 2, min(n1, n2) - 1 + 0.5):
        critical = sps.t.isf(tail / 2, dof)
        for t in (critical * 0.999, critical * 1.001):
            p = 2 * sps.t.sf(t, dof)
            assert (welch_bound.worst_case_p(p, n1, n2) < LEVEL) == (t > critical)
