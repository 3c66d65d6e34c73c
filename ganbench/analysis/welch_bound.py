"""Welch's test made valid whatever the two arms' variance ratio: its p-value read at the least favourable ratio.

Why. Welch's t with Welch–Satterthwaite degrees of freedom is an approximation whose error grows in the far
tail the report works in (α/m ≈ 0.001): with 5 learned runs against 10 and the 5 the noisier, it rejects a
true null 2.3× as often as it says (3.0× at the worst variance ratio; 7.8× with 3 runs against 10). That broke
the family's guarantees on the studies GAN ablations are about (issue 34: family-wise error 0.068, joint
coverage 0.911). Hsu's fix, min(n) − 1 degrees of freedom, is valid but throws away what the data say about
the variances (at 5 vs 5 its critical value is ≈ 60 % larger than Welch's).

What. Under normality, the null distribution of Welch's p depends only on the two sample sizes and
θ = (σ₁²/n₁) / (σ₁²/n₁ + σ₂²/n₂). So g(u) = sup over θ of P_θ(p_Welch ≤ u) turns Welch's p into a valid one:
P_θ(g(p_Welch) ≤ α) ≤ α for every θ. At θ = 0 or 1 Welch's p is exact (g(u) ≥ u always); g pays only where
Welch is liberal, and keeps Welch's data-driven degrees of freedom everywhere. The matching interval is
Welch's interval at the two-sided tail u* with g(u*) = α: it excludes 0 exactly when g(p) < α, because both
are read from one monotone table (`_table`).

How. Computed, not simulated: given the two sample variances (w_i = χ²_{d_i}/d_i, d_i = n_i − 1) the
difference of means is normal and independent of them, so P_θ(p ≤ u) = E[2Φ(−c_u(ν̂)·√(θw₁ + (1 − θ)w₂))],
with c_u(ν) Student's two-sided critical value and ν̂ Welch's degrees of freedom (a function of θw₁/(θw₁ +
(1 − θ)w₂) only). That 2-D expectation over two gamma laws is a trapezoid sum in log w, which converges
spectrally (80 points per axis agree with 2 million simulated tests to 3 digits: tests/test_welch_bound.py).
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np
from scipy import special
from scipy import stats as sps
from scipy.interpolate import CubicSpline

SMALLEST_TAIL = 1e-15  # the table's range: below it, g(SMALLEST_TAIL) stands for g(p) (an upper bound: g rises)
TAILS_PER_DECADE = 4  # the table's resolution in u (log-log interpolation between: g(u)/u is smooth in log u)
GRID_POINTS = 80  # per gamma law (converged: 80, 120 and 200 agree to 4 digits)
THETAS = 41  # a first grid over θ ∈ [0, 1], refined around its maximum
Quadrature = tuple[np.ndarray, np.ndarray, np.ndarray]  # see `_quadrature`


def _log_gamma_grid(dof: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and trapezoid weights of w = χ²_dof / dof, spaced evenly in log w over its 1e-30 … 1 − 1e-16 range."""
    shape, scale = dof / 2, 2 / dof
    low, high = np.log(sps.gamma.ppf([1e-30, 1 - 1e-16], shape, scale=scale))
    y = np.linspace(low, high, GRID_POINTS)
    log_density = shape * y - np.exp(y) / scale  # the density of log w, up to a constant
    weights = np.exp(log_density - log_density.max())
    return np.exp(y), weights / weights.sum()


def null_rejection(u: float, n1: int, n2: int, thetas) -> np.ndarray:
    """P_θ(Welch's two-sided p ≤ u) under the null, for each θ (see the module doc), with n1 and n2 values."""
    return _rejection(u, n1, n2, _quadrature(n1, n2, np.asarray(thetas, float)))


def _quadrature(n1: int, n2: int, thetas: np.ndarray) -> Quadrature:
    """What of the expectation does not depend on u, on the (θ, w₁, w₂) grid: (2 × the nodes' mass, Welch's
    1/ν̂ clipped to its range, √(θw₁ + (1 − θ)w₂)). Apart from u, so that a table's 61 tails share one."""
    a, b = n1 - 1, n2 - 1
    (w1, p1), (w2, p2) = _log_gamma_grid(a), _log_gamma_grid(b)
    mass = p1[:, None] * p2[None, :]
    low, high = _inverse_dof_range(a, b)
    theta = thetas[:, None, None]
    part1, part2 = theta * w1[None, :, None], (1 - theta) * w2[None, None, :]
    total = part1 + part2
    inverse_dof = np.clip((part1**2 / a + part2**2 / b) / total**2, low, high)
    return mass * 2, inverse_dof, np.sqrt(total)


def _inverse_dof_range(a: int, b: int) -> tuple[float, float]:
    return 1 / (a + b), 1 / min(a, b)  # Welch's ν̂ lies in [min(a, b), a + b]


def _rejection(u: float, n1: int, n2: int, quadrature: Quadrature) -> np.ndarray:
    double_mass, inverse_dof, root_total = quadrature
    # the critical value as a spline in 1/ν̂ over ν̂'s range
    inverse = np.linspace(*_inverse_dof_range(n1 - 1, n2 - 1), 65)
    critical = CubicSpline(inverse, sps.t.isf(u / 2, 1 / inverse))
    return (double_mass * special.ndtr(-critical(inverse_dof) * root_total)).sum(axis=(1, 2))


def _worst(u: float, n1: int, n2: int, quadrature: Callable[[int | None], Quadrature] | None = None) -> float:
    """g(u): the largest null rejection rate over θ (a grid, then a finer one around its maximum);
    `quadrature(around)` gives `_theta_quadrature(n1, n2, around)`, kept between the tails of one table."""
    quadrature = quadrature or functools.partial(_theta_quadrature, n1, n2)
    rates = _rejection(u, n1, n2, quadrature(None))
    best = int(rates.argmax())
    return float(max(rates.max(), _rejection(u, n1, n2, quadrature(best)).max(), u))


def _theta_quadrature(n1: int, n2: int, around: int | None) -> Quadrature:
    """The quadrature on the coarse θ grid (`around` None), or on the fine grid around its point `around`."""
    coarse = np.linspace(0.0, 1.0, THETAS)
    if around is None:
        return _quadrature(n1, n2, coarse)
    return _quadrature(n1, n2, np.linspace(coarse[max(around - 1, 0)], coarse[min(around + 1, THETAS - 1)], 21))


@functools.lru_cache(maxsize=None)
def _table(n1: int, n2: int) -> tuple[np.ndarray, np.ndarray]:
    """(log u, log g(u)) from SMALLEST_TAIL to 1, non-decreasing (g is a supremum of distribution functions)."""
    decades = -math.log10(SMALLEST_TAIL)
    log_u = np.linspace(math.log(SMALLEST_TAIL), 0.0, int(decades * TAILS_PER_DECADE) + 1)
    quadrature = functools.lru_cache(maxsize=None)(functools.partial(_theta_quadrature, n1, n2))
    log_g = np.log([min(_worst(math.exp(x), n1, n2, quadrature), 1.0) for x in log_u])
    log_g = np.maximum.accumulate(np.maximum(log_g, log_u))  # quadrature ripples never make it fall
    # strictly increasing, so that it inverts: a step of 1e-12 where g is flat (only ever at g = 1)
    return log_u, log_g + 1e-12 * np.arange(len(log_g))


def _key(n1: int, n2: int) -> tuple[int, int]:
    if min(n1, n2) < 2:
        raise ValueError(f"Welch's test needs at least 2 values per arm, got {n1} and {n2}")
    return (min(n1, n2), max(n1, n2))  # g is symmetric in the two arms (θ ↔ 1 − θ)


def worst_case_p(p: float, n1: int, n2: int) -> float:
    """Welch's two-sided p made valid for every variance ratio (g(p) ≥ p); NaN in, NaN out."""
    if not math.isfinite(p):
        return math.nan
    if p >= 1:
        return 1.0
    log_u, log_g = _table(*_key(int(n1), int(n2)))
    return float(min(1.0, math.exp(np.interp(math.log(max(p, SMALLEST_TAIL)), log_u, log_g))))


def critical_tail(alpha: float, n1: int, n2: int) -> float:
    """The two-sided tail u* of Welch's t with g(u*) = α: the interval estimate ± t_{ν̂}(1 − u*/2)·se covers
    with probability ≥ 1 − α for every variance ratio, and excludes 0 exactly when worst_case_p < α."""
    log_u, log_g = _table(*_key(int(n1), int(n2)))
    return float(math.exp(np.interp(math.log(alpha), log_g, log_u)))
