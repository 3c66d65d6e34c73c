"""Statistics over seeds: per-arm summaries, intervals, tests, factorial effects.

The methods are listed in METHODS below and named in every output table, so a reader
knows what was computed. Comparisons against a reference arm and the multiplicity family
live in `ganbench.analysis.inference`; failure labels in `ganbench.analysis.failures`.

A run's value is its final evaluation (the mean of its `eval_draws` latent draws), its
best one (by the metric's direction) or the mean of its last k.
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

METHODS = (
    "A run's value is its final evaluation: the mean of its independent latent draws (`eval_draws`). Diverged and "
    "failed runs are left out of means and counted apart.",
    "Intervals of an arm's mean: the percentile bootstrap over seeds (10 000 resamples, seeded) from 10 seeds; with "
    "fewer seeds the bootstrap covers far less than 95 % (about 75 % at 3 seeds), so the Student-t interval is used "
    "instead. Every interval is intersected with the metric's range (a mean cannot leave it, so coverage is kept); "
    "when every run has the same value no interval is given.",
    "Evaluation noise: per run, the SD of its final evaluation over its k latent draws, and the SD of its value "
    "(their mean: SD/√k); per arm, the root mean square of those. The SD of values over seeds contains the second, "
    "so the report compares those two (like for like).",
    "Comparisons with the reference arm: Welch's t for every difference (each arm its own seed variance, "
    "Welch–Satterthwaite degrees of freedom; FID and IS on the log scale, reported as % change), so each row depends "
    "on its two arms only. Seed SDs of one metric differ by up to 50× between arms here: a pooled-variance model "
    "then calls a noisy arm different far more often than α (simulated in the tests). Welch's own tails are too "
    "thin at the family's level with few runs (up to 3× the stated error at 5 vs 10 runs), so each p and interval "
    "is read at the least favourable variance ratio (computed exactly under normality): valid whatever the SDs.",
    "The family: exactly the comparisons the report shows (every verdict metric at equal steps; the primary metric "
    "at equal FLOPs only where the two arms' FLOPs per step differ, so no comparison enters twice). Intervals: "
    "Bonferroni over the whole family (each at level 1 − 0.05/m), so together they cover the true differences with "
    "probability ≥ 95 %; intervals of bounded metrics are kept inside ±(their range). Verdicts: the same "
    "Bonferroni level over the comparisons with ≥ 5 learned runs on both sides (p < 0.05/m: exactly when the "
    "interval excludes 0; family-wise error ≤ 5 %). With fewer than 5 runs a row is exploratory (interval, no "
    "verdict); with fewer than 5 learned runs because some failed to learn, its quality verdict is withheld.",
    "Two outcomes per arm: the share of runs that failed to learn (final FID within evaluation noise of uniform "
    "noise's), compared with the reference's by Fisher's exact test as a member of the family wherever either arm "
    "has a failure, with exact (Clopper–Pearson) intervals of both shares at the family's level; and the quality "
    "metrics on the runs that learned only, so a mean never mixes noise generators with learned ones.",
    "Runs without a value (diverged, crashed) are counted in every comparison ('no value' k/n) and compared with the "
    "reference's by Fisher's exact test, outside the family; their last numbers describe a broken model and are not "
    "averaged in.",
    "Equal compute: FLOPs per step counted by torch's flop counter (one step, forward and backward); both arms read "
    "at the smaller of their final budgets, each run's curve linearly interpolated between evaluations; a reading "
    "more than 25 % of an evaluation interval from an evaluation is refused (train to `budget: {flops: …}` instead). "
    "Equal seconds is not compared: step times of arms with the same network differ by timing noise.",
    "The exact permutation p (all relabellings up to 20 000, else 20 000 random ones) is shown for each comparison; "
    "with 3 seeds per arm it cannot go below 0.1. Hedges' g is the effect size.",
    "Factorial designs: ordinary least squares on ±1-coded hacks; an effect is the change from off to on (2·β) "
    "with a t-based 95 % CI per effect — exploratory, outside the family (no multiplicity control).",
)
N_BOOTSTRAP = 10_000
N_PERMUTATIONS = 20_000
BOOTSTRAP_MIN_N = 10
CI_BOOTSTRAP = "95 % percentile bootstrap over seeds (10 000 resamples)"
CI_T = "95 % Student-t interval over seeds (fewer than 10 seeds: the bootstrap under-covers)"
AGGREGATES = ("final", "best", "last_k")


def run_values(frame: pd.DataFrame, metric: str, higher_is_better: bool | None, aggregate: str = "final",
               k: int = 3) -> pd.DataFrame:
    """One row per run (part, arm, seed, run_id, status, value, draw_sd) for `metric`.

    Runs without that metric (failed or diverged before evaluating) keep their row with NaN.
    `draw_sd` is the final evaluation's SD over latent draws (NaN for other aggregates).
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got '{aggregate}'")
    runs = frame.drop_duplicates(["arm", "run_id"])[["part", "arm", "seed", "run_id", "status"]]
    rows = frame[frame["metric"] == metric].sort_values("step")
    last = rows.groupby(["arm", "run_id"]).tail(1)  # the last evaluation, NaN included (`.last()` skips NaN)
    if aggregate == "final":
        values = last.set_index(["arm", "run_id"])["value"]
    elif aggregate == "best":
        pick = "max" if higher_is_better else "min"
        values = rows.groupby(["arm", "run_id"])["value"].agg(pick)
    else:
        values = rows.groupby(["arm", "run_id"])["value"].apply(lambda v: v.tail(k).mean())
    out = runs.merge(values.rename("value").reset_index(), on=["arm", "run_id"], how="left")
    if aggregate == "final" and "draw_sd" in rows:
        noise = last[["arm", "run_id", "draw_sd", *(["draws"] if "draws" in last else [])]]
        out = out.merge(noise, on=["arm", "run_id"], how="left")
    else:
        out["draw_sd"] = np.nan
    # A diverged run's last numbers describe a broken model: they are not its result.
    out.loc[out["status"] != "completed", "value"] = np.nan
    return out.reset_index(drop=True)


def bootstrap_ci(values: Sequence[float], level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean; (nan, nan) with fewer than 2 values."""
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if len(x) < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = rng.choice(x, size=(N_BOOTSTRAP, len(x)), replace=True).mean(axis=1)
    alpha = (1 - level) / 2
    return (float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)))


def t_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if len(x) < 2:
        return (math.nan, math.nan)
    half = sps.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return (float(x.mean() - half), float(x.mean() + half))


def mean_ci(values: Sequence[float]) -> tuple[float, float, str]:
    """(low, high, method): bootstrap from 10 values, Student t below (see the module doc)."""
    n = int(np.isfinite(np.asarray(values, float)).sum())
    return (*bootstrap_ci(values), CI_BOOTSTRAP) if n >= BOOTSTRAP_MIN_N else (*t_ci(values), CI_T)


def welch_contrast(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """(estimate, se, dof) of mean(a) − mean(b) by Welch–Satterthwaite; NaNs with < 2 values each."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) < 2 or len(y) < 2:
        return (math.nan, math.nan, math.nan)
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1)) if se > 0 else len(x) + len(y) - 2
    return (float(x.mean() - y.mean()), se, float(dof))


def permutation_pvalue(a: Sequence[float], b: Sequence[float], seed: int = 0) -> float:
    """Two-sided p-value of mean(a) − mean(b) under random relabelling of the pooled values."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) == 0 or len(y) == 0:
        return math.nan
    pooled, n = np.concatenate([x, y]), len(x)
    observed = abs(x.mean() - y.mean())
    if math.comb(len(pooled), n) <= N_PERMUTATIONS:
        splits = itertools.combinations(range(len(pooled)), n)
        diffs = []
        for idx in splits:
            mask = np.zeros(len(pooled), bool)
            mask[list(idx)] = True
            diffs.append(abs(pooled[mask].mean() - pooled[~mask].mean()))
        diffs = np.asarray(diffs)
        return float(np.mean(diffs >= observed - 1e-12))
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((N_PERMUTATIONS, len(pooled))), axis=1)
    shuffled = pooled[perms]
    diffs = np.abs(shuffled[:, :n].mean(1) - shuffled[:, n:].mean(1))
    return float((1 + np.sum(diffs >= observed - 1e-12)) / (N_PERMUTATIONS + 1))


def hedges_g(a: Sequence[float], b: Sequence[float]) -> float:
    """Standardised mean difference (a − b) with the small-sample correction."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    n1, n2 = len(x), len(y)
    if n1 < 2 or n2 < 2:
        return math.nan
    pooled = math.sqrt(((n1 - 1) * x.var(ddof=1) + (n2 - 1) * y.var(ddof=1)) / (n1 + n2 - 2))
    if pooled == 0:
        return math.nan
    correction = 1 - 3 / (4 * (n1 + n2) - 9)
    return float((x.mean() - y.mean()) / pooled * correction)


def arm_summary(values: pd.DataFrame, value_range: tuple[float, float] = (-math.inf, math.inf)) -> pd.DataFrame:
    """Per arm: runs, usable n, mean, SD over seeds, evaluation-noise SD, CI inside `value_range`
    (NaN when every run has the same value), and the shares of diverged, failed and unfinished runs."""
    rows = []
    for (part, arm), group in values.groupby(["part", "arm"], sort=False):
        ok = group["value"].dropna().to_numpy()
        lo, hi, method = mean_ci(ok)
        if len(ok) > 1 and np.ptp(ok) == 0:
            lo, hi, method = math.nan, math.nan, "none: every run has the same value"
        lo, hi = max(lo, value_range[0]), min(hi, value_range[1])
        noise = group["draw_sd"].dropna().to_numpy() if "draw_sd" in group else np.array([])
        draws = group["draws"].dropna().to_numpy(float) if "draws" in group else np.array([])
        rows.append({"part": part, "arm": arm, "runs": len(group), "n": len(ok),
                     "mean": float(ok.mean()) if len(ok) else math.nan,
                     "std": float(ok.std(ddof=1)) if len(ok) > 1 else math.nan,
                     "eval_sd": float(np.sqrt(np.mean(noise**2))) if len(noise) else math.nan,
                     # the SD of a run's value (the mean of its draws), like for like with the SD over seeds
                     "eval_sd_of_value": float(np.sqrt(np.mean(noise**2 / draws[:len(noise)])))
                     if len(noise) and len(draws) == len(noise) and (draws > 0).all() else math.nan,
                     "ci_low": lo, "ci_high": hi,
                     "diverged": float((group["status"] == "diverged").mean()),
                     "failed": float(group["status"].isin(["failed", "interrupted"]).mean()),
                     "unfinished": float(group["status"].isin(["pending", "running"]).mean()),
                     "ci_method": method})
    return pd.DataFrame(rows)


def factorial_effects(values: pd.DataFrame, factors: dict[str, dict[str, bool]], interactions: bool = False,
                      level: float = 0.95) -> pd.DataFrame:
    """Main effects (and two-way interactions) of ±1-coded factors by OLS over all runs.

    `factors` maps arm → {hack: on}. An effect is the expected change from off to on (2·β),
    with a t-based CI from the residual variance. Interactions need a design of resolution ≥ V.
    """
    data = values.dropna(subset=["value"])
    data = data[data["arm"].isin(factors)]
    names = sorted({h for levels in factors.values() for h in levels})
    columns = {h: data["arm"].map(lambda a, h=h: 1.0 if factors[a][h] else -1.0).to_numpy() for h in names}
    if interactions:
        for a, b in itertools.combinations(names, 2):
            columns[f"{a}×{b}"] = columns[a] * columns[b]
    X = np.column_stack([np.ones(len(data)), *columns.values()])
    y = data["value"].to_numpy(float)
    dof = len(y) - X.shape[1]
    if dof < 1:
        raise ValueError(f"{len(y)} runs cannot estimate {X.shape[1]} coefficients: add seeds or drop interactions")
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    sigma2 = resid @ resid / dof
    cov = sigma2 * np.linalg.pinv(X.T @ X)
    t = sps.t.ppf(0.5 + level / 2, dof)
    rows = []
    for i, term in enumerate(columns, start=1):
        se = math.sqrt(cov[i, i])
        rows.append({"term": term, "effect": 2 * beta[i], "ci_low": 2 * (beta[i] - t * se),
                     "ci_high": 2 * (beta[i] + t * se), "p": float(2 * sps.t.sf(abs(beta[i] / se), dof)) if se else
                     math.nan, "dof": dof, "method": "OLS on ±1-coded hacks; effect = 2β; t-based 95 % CI"})
    return pd.DataFrame(rows)
