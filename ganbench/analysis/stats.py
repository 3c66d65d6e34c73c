"""Statistics over seeds: per-arm summaries, effects against a reference arm, factorial effects.

The methods are listed in METHODS below and named in every output table, so a reader
knows what was computed.

A run's value is its final evaluation, its best one (by the metric's direction) or the mean
of its last k. A run counts as collapsed when it covered at most 3 of the 10 classes
(`modes_covered_fmnist` ≤ 3) or its discriminator loss fell below 0.05 (D separates real
from fake almost perfectly, so G gets no signal); diverged and failed runs count apart.
"""

from __future__ import annotations

import itertools
import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

METHODS = (
    "Confidence intervals of an arm's mean: the percentile bootstrap over seeds (10 000 resamples, seeded) "
    "from 10 seeds; with fewer seeds the bootstrap covers far less than 95 % (about 75 % at 3 seeds), so the "
    "Student-t interval is used instead, and each table says which.",
    "Differences from the reference arm: difference of means with a Welch t interval (a bootstrap one, each arm "
    "resampled on its own, from 10 seeds per arm); Welch's t-test p, Holm-corrected across the arms of a design; "
    "an exact permutation p alongside; Hedges' g as the effect size. An arm is 'better' or 'worse' only when "
    "its CI excludes 0 and its Holm p < 0.05.",
    "Factorial designs: ordinary least squares on ±1-coded hacks; an effect is the change from off to on (2·β) "
    "with a t-based 95 % CI.",
    "A run's value is its final evaluation. Diverged and failed runs are left out of means and counted apart. A "
    "completed run counts as collapsed when it covers at most 3 of the 10 classes (modes_covered_fmnist ≤ 3) or "
    "its final D loss is below 0.05 (D separates real from fake almost perfectly: G gets no signal).",
)
N_BOOTSTRAP = 10_000
N_PERMUTATIONS = 20_000
BOOTSTRAP_MIN_N = 10
CI_BOOTSTRAP = "95 % percentile bootstrap over seeds (10 000 resamples)"
CI_T = "95 % Student-t interval over seeds (fewer than 10 seeds: the bootstrap under-covers)"
DIFF_CI_BOOTSTRAP = "95 % bootstrap CI of the difference (arms resampled separately)"
DIFF_CI_WELCH = "95 % Welch t interval of the difference"
TEST_METHOD = "Welch's t-test (two-sided), Holm-corrected across the arms of the design"
EFFECT_SIZE = "Hedges' g"
COLLAPSE_MODES, COLLAPSE_LOSS_D = 3, 0.05
AGGREGATES = ("final", "best", "last_k")


def run_values(frame: pd.DataFrame, metric: str, higher_is_better: bool | None, aggregate: str = "final",
               k: int = 3) -> pd.DataFrame:
    """One row per run (part, arm, seed, run_id, status, value) for `metric`.

    Runs without that metric (failed or diverged before evaluating) keep their row with NaN.
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got '{aggregate}'")
    runs = frame.drop_duplicates(["arm", "run_id"])[["part", "arm", "seed", "run_id", "status"]]
    rows = frame[frame["metric"] == metric].sort_values("step")
    if aggregate == "final":
        values = rows.groupby(["arm", "run_id"])["value"].last()
    elif aggregate == "best":
        pick = "max" if higher_is_better else "min"
        values = rows.groupby(["arm", "run_id"])["value"].agg(pick)
    else:
        values = rows.groupby(["arm", "run_id"])["value"].apply(lambda v: v.tail(k).mean())
    out = runs.merge(values.rename("value").reset_index(), on=["arm", "run_id"], how="left")
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


def bootstrap_diff_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(a) − mean(b), each sample resampled on its own."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) < 2 or len(y) < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    diffs = (rng.choice(x, (N_BOOTSTRAP, len(x))).mean(1) - rng.choice(y, (N_BOOTSTRAP, len(y))).mean(1))
    alpha = (1 - level) / 2
    return (float(np.quantile(diffs, alpha)), float(np.quantile(diffs, 1 - alpha)))


def welch(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(low, high, p) of mean(a) − mean(b) by Welch's t (Welch–Satterthwaite degrees of freedom)."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) < 2 or len(y) < 2:
        return (math.nan, math.nan, math.nan)
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(va + vb)
    diff = x.mean() - y.mean()
    if se == 0:
        return (diff, diff, 0.0 if diff else 1.0)
    dof = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    half = sps.t.ppf(0.5 + level / 2, dof) * se
    return (float(diff - half), float(diff + half), float(2 * sps.t.sf(abs(diff) / se, dof)))


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


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (NaNs stay NaN and do not count)."""
    p = np.asarray(pvalues, float)
    finite = np.flatnonzero(np.isfinite(p))
    adjusted = np.full(len(p), math.nan)
    order = finite[np.argsort(p[finite])]
    m, running = len(order), 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


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


def arm_summary(values: pd.DataFrame) -> pd.DataFrame:
    """Per arm: runs, usable n, mean, std, CI, and the shares of diverged, failed and unfinished runs."""
    rows = []
    for (part, arm), group in values.groupby(["part", "arm"], sort=False):
        ok = group["value"].dropna().to_numpy()
        lo, hi, method = mean_ci(ok)
        rows.append({"part": part, "arm": arm, "runs": len(group), "n": len(ok),
                     "mean": float(ok.mean()) if len(ok) else math.nan,
                     "std": float(ok.std(ddof=1)) if len(ok) > 1 else math.nan, "ci_low": lo, "ci_high": hi,
                     "diverged": float((group["status"] == "diverged").mean()),
                     "failed": float(group["status"].isin(["failed", "interrupted"]).mean()),
                     "unfinished": float(group["status"].isin(["pending", "running"]).mean()),
                     "ci_method": method})
    return pd.DataFrame(rows)


def compare_to_reference(values: pd.DataFrame, reference_arm: str, higher_is_better: bool | None,
                         arms: Iterable[str] | None = None) -> pd.DataFrame:
    """Each arm against `reference_arm`: difference, CI, Welch p, Holm p, permutation p, Hedges' g, verdict."""
    ref = values.loc[values["arm"] == reference_arm, "value"].dropna().to_numpy()
    rows = []
    for arm in arms or [a for a in values["arm"].unique() if a != reference_arm]:
        x = values.loc[values["arm"] == arm, "value"].dropna().to_numpy()
        lo, hi, p = welch(x, ref)
        ci_method = DIFF_CI_WELCH
        if min(len(x), len(ref)) >= BOOTSTRAP_MIN_N:
            (lo, hi), ci_method = bootstrap_diff_ci(x, ref), DIFF_CI_BOOTSTRAP
        rows.append({"arm": arm, "reference": reference_arm, "n": len(x), "n_reference": len(ref),
                     "diff": float(x.mean() - ref.mean()) if len(x) and len(ref) else math.nan,
                     "ci_low": lo, "ci_high": hi, "p": p, "p_permutation": permutation_pvalue(x, ref),
                     "g": hedges_g(x, ref), "ci_method": ci_method})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p_holm"] = holm(out["p"].tolist())
    sign = 1 if higher_is_better else -1
    # Oriented so that "better" always means better for this metric's direction.
    out["verdict"] = [_verdict(*sorted((sign * r.ci_low, sign * r.ci_high)), r.p_holm)
                      if higher_is_better is not None else "n/a" for r in out.itertuples()]
    out["test_method"] = f"{TEST_METHOD}; effect size: {EFFECT_SIZE}"
    return out


def _verdict(lo: float, hi: float, p_holm: float) -> str:
    """'better' / 'worse' than the reference when the CI excludes 0 and Holm's p < 0.05."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "too few runs"
    if p_holm < 0.05 and lo > 0:
        return "better"
    if p_holm < 0.05 and hi < 0:
        return "worse"
    return "no clear difference"


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


def collapse_rate(frame: pd.DataFrame, stats: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per arm: share of completed runs that collapsed (few modes, or D loss → 0; see module doc)."""
    final = frame[frame["metric"] == "modes_covered_fmnist"].sort_values("step").groupby("run_id")["value"].last()
    low_d = pd.Series(dtype=float)
    if stats is not None and not stats.empty:
        low_d = stats.sort_values("step").groupby("run_id")["loss_d"].last()
    runs = frame.drop_duplicates(["arm", "run_id"])[["arm", "run_id", "status"]]
    runs = runs[runs["status"] == "completed"]

    def collapsed(run_id: str) -> bool:
        modes = final.get(run_id, math.nan)
        loss_d = low_d.get(run_id, math.nan)
        return bool((np.isfinite(modes) and modes <= COLLAPSE_MODES) or (np.isfinite(loss_d) and loss_d < COLLAPSE_LOSS_D))

    runs = runs.assign(collapsed=runs["run_id"].map(collapsed))
    return runs.groupby("arm", sort=False)["collapsed"].mean().rename("collapsed").reset_index()
