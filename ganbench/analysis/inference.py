"""Comparisons against a reference arm, and the one multiplicity family they belong to.

A comparison row is built in two passes. `compare_to_reference` (per design part and
metric) and `compare_at_equal_compute` (per part, on the primary metric) estimate each
difference with its standard error and degrees of freedom; `apply_family` then takes every
row the report shows, applies one Holm correction over all of them and gives each row a
simultaneous interval that agrees with its verdict. Which test drives a row:

- fewer than `MIN_SEEDS` usable runs in either arm: no test. The row is exploratory: an
  estimate and an interval, no verdict (at n = 3 the exact permutation p cannot go below
  0.1, and Welch + Holm has ~2 % power for a 1-FID effect at the seed SD we measured);
- from `MIN_SEEDS` on, at equal steps: the pooled-variance model (OLS with the arm as a
  factor over all arms of the part; FID and IS on the log scale, where their seed spread is
  closer to constant), the contrast arm − reference; Dunnett's many-to-one p is shown beside;
- at equal compute: Welch's t on the same scale (each pair of arms has its own budget point,
  so there is no common model).
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from ganbench.analysis import stats

MIN_SEEDS = 5
ALPHA = 0.05
LOG_SCALED = ("fid", "isc")  # value names (less any `_extractor` suffix) compared on the log scale
INTERPOLATION = ("equal compute: both arms read at the smaller of their two final budgets (cumulative FLOPs = "
                 "step × FLOPs per step); a run's metric there is linearly interpolated between the two "
                 "evaluations around it; unavailable before a run's first evaluation")


def metric_scale(metric: str, values: Iterable[float]) -> str:
    """'log' for FID and IS when every value is positive, else 'raw'."""
    base = metric.removesuffix("_fmnist")
    x = np.asarray([v for v in values if np.isfinite(v)], float)
    return "log" if base in LOG_SCALED and len(x) and (x > 0).all() else "raw"


def _transform(x: np.ndarray, scale: str) -> np.ndarray:
    return np.log(x) if scale == "log" else x


def pooled_contrasts(samples: dict[str, np.ndarray], reference: str) -> dict[str, tuple[float, float, float]]:
    """arm → (estimate, se, dof) of arm − reference in the one-way OLS model y ~ arm (treatment
    coding, one residual variance pooled over every arm given)."""
    arms = [reference] + [a for a in samples if a != reference]
    y = np.concatenate([samples[a] for a in arms])
    X = np.zeros((len(y), len(arms)))
    X[:, 0] = 1.0
    row = 0
    for j, arm in enumerate(arms):
        if j:
            X[row:row + len(samples[arm]), j] = 1.0
        row += len(samples[arm])
    dof = len(y) - len(arms)
    if dof < 1:
        return {a: (math.nan, math.nan, math.nan) for a in arms[1:]}
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    cov = (resid @ resid / dof) * np.linalg.inv(X.T @ X)
    return {arm: (float(beta[j]), float(math.sqrt(cov[j, j])), float(dof)) for j, arm in enumerate(arms) if j}


def _p_value(estimate: float, se: float, dof: float) -> float:
    if not (np.isfinite(estimate) and np.isfinite(se)):
        return math.nan
    if se == 0:
        return 0.0 if estimate else 1.0
    return float(2 * sps.t.sf(abs(estimate) / se, dof))


def compare_to_reference(values: pd.DataFrame, reference: str, metric: str, higher_is_better: bool | None,
                         arms: Sequence[str] | None = None) -> pd.DataFrame:
    """Each arm against `reference` at equal steps (see the module doc); verdicts come from
    `apply_family`. `values` is `stats.run_values` of one part."""
    arms = list(arms or [a for a in values["arm"].unique() if a != reference])
    raw = {a: values.loc[values["arm"] == a, "value"].dropna().to_numpy(float) for a in [reference, *arms]}
    scale = metric_scale(metric, np.concatenate(list(raw.values())))
    scaled = {a: _transform(x, scale) for a, x in raw.items()}
    # An arm whose runs all diverged has no values: it is "too few runs", and does not stop the others pooling.
    usable = {a: x for a, x in scaled.items() if len(x) >= 2}
    pooled = reference in usable and min(len(x) for x in usable.values()) >= MIN_SEEDS
    contrasts = pooled_contrasts(usable, reference) if pooled else {}
    dunnett = {}
    if pooled:
        others = [a for a in arms if a in usable]
        result = sps.dunnett(*[scaled[a] for a in others], control=scaled[reference], random_state=0)
        dunnett = dict(zip(others, result.pvalue))
    rows = []
    for arm in arms:
        x, ref = raw[arm], raw[reference]
        estimate, se, dof = contrasts.get(arm) or stats.welch_contrast(scaled[arm], scaled[reference])
        lo, hi, p_welch = stats.welch(x, ref)
        rows.append({"metric": metric, "arm": arm, "reference": reference, "basis": "equal steps", "scale": scale,
                     "n": len(x), "n_reference": len(ref), "estimate": estimate, "se": se, "dof": dof,
                     "p": _p_value(estimate, se, dof),
                     "test": "pooled OLS (arm as factor)" if pooled else "Welch's t",
                     "p_dunnett": dunnett.get(arm, math.nan),
                     "diff": float(x.mean() - ref.mean()) if len(x) and len(ref) else math.nan,
                     "welch_low": lo, "welch_high": hi, "p_welch": p_welch,
                     "p_permutation": stats.permutation_pvalue(x, ref), "g": stats.hedges_g(x, ref),
                     "testable": min(len(x), len(ref)) >= MIN_SEEDS, "higher_is_better": higher_is_better})
    return pd.DataFrame(rows)


def read_curve_at(steps: np.ndarray, values: np.ndarray, cost_per_step: float, budget: float) -> float:
    """A run's metric at cumulative compute `budget`, linearly interpolated between evaluations;
    NaN before its first evaluation or past its last."""
    compute = np.asarray(steps, float) * cost_per_step
    order = np.argsort(compute)
    compute, values = compute[order], np.asarray(values, float)[order]
    tolerance = 1e-9 * max(budget, 1.0)
    if len(compute) == 0 or budget < compute[0] - tolerance or budget > compute[-1] + tolerance:
        return math.nan
    return float(np.interp(budget, compute, values))


def compare_at_equal_compute(frame: pd.DataFrame, reference: str, metric: str, higher_is_better: bool | None,
                             cost: dict[str, float], arms: Sequence[str], unit: str = "FLOPs") -> pd.DataFrame:
    """Each arm against `reference` at equal compute: both read at the smaller of their final
    budgets (`INTERPOLATION`), compared by Welch's t. `cost` is arm → compute per step."""
    data = frame[(frame["metric"] == metric) & (frame["status"] == "completed")]
    rows = []
    for arm in arms:
        if arm not in cost or reference not in cost:
            rows.append({"metric": metric, "arm": arm, "reference": reference, "basis": f"equal {unit}",
                         "note": f"unavailable: no {unit} per step recorded for this arm"})
            continue
        finals = {a: data.loc[data["arm"] == a, "knob_steps"].max() * cost[a] for a in (arm, reference)}
        budget = float(min(finals.values()))
        read = {}
        for a in (arm, reference):
            curves = data[data["arm"] == a].groupby("run_id")
            read[a] = np.asarray([read_curve_at(g["step"].to_numpy(), g["value"].to_numpy(), cost[a], budget)
                                  for _, g in curves], float)
        x, ref = read[arm][np.isfinite(read[arm])], read[reference][np.isfinite(read[reference])]
        scale = metric_scale(metric, np.concatenate([x, ref]))
        estimate, se, dof = stats.welch_contrast(_transform(x, scale), _transform(ref, scale))
        early = arm if finals[arm] > finals[reference] else reference
        steps_read = budget / cost[early]
        note = (f"at {budget:.3g} {unit}: `{early}` read at step {steps_read:.0f} of its curve"
                if finals[arm] != finals[reference] else f"at {budget:.3g} {unit}: equal budgets")
        if not len(x) or not len(ref):
            note = f"unavailable at {budget:.3g} {unit}: step {steps_read:.0f} of `{early}` is before its first evaluation"
        elif len(x) < len(read[arm]) or len(ref) < len(read[reference]):
            note += "; runs without an evaluation at or before that point are left out"
        rows.append({"metric": metric, "arm": arm, "reference": reference, "basis": f"equal {unit}", "scale": scale,
                     "n": len(x), "n_reference": len(ref), "estimate": estimate, "se": se, "dof": dof,
                     "p": _p_value(estimate, se, dof), "test": "Welch's t",
                     "diff": float(x.mean() - ref.mean()) if len(x) and len(ref) else math.nan,
                     "budget": budget, "early_arm": early, "step_read": steps_read, "note": note,
                     "testable": min(len(x), len(ref)) >= MIN_SEEDS, "higher_is_better": higher_is_better})
    return pd.DataFrame(rows)


def apply_family(rows: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """One Holm correction over every testable row (the family: all verdicts the report shows),
    simultaneous intervals, and verdicts.

    With m tests of which Holm rejects r, every tested row's interval is the t interval at
    level 1 − α/max(m − r, 1): an interval excludes 0 exactly when Holm rejects that row
    (Holm's step-down bounds, after Strassburger & Bretz 2008, without their truncation at 0).
    Rows that are not tested (too few seeds) get Bonferroni intervals over every row shown,
    level 1 − α/len(rows), and no verdict.
    """
    out = rows.copy().reset_index(drop=True)
    if out.empty:
        return out
    for column in ("estimate", "se", "dof", "p"):
        if column not in out:
            out[column] = math.nan
    out["testable"] = out["testable"].fillna(False).astype(bool) if "testable" in out else False
    tested = out["testable"] & np.isfinite(out["p"].astype(float)) & out["higher_is_better"].notna()
    m = int(tested.sum())
    out["p_holm"] = math.nan
    if m:
        out.loc[tested, "p_holm"] = stats.holm(out.loc[tested, "p"].tolist())
    rejected = int((out["p_holm"] < alpha).sum())
    out["family_size"] = m
    out["family_rows"] = len(out)
    out["adjusted_alpha"] = np.where(tested, alpha / max(m - rejected, 1), alpha / len(out))
    half = [sps.t.ppf(1 - a / 2, d) * s if np.isfinite(s) and np.isfinite(d) else math.nan
            for a, d, s in zip(out["adjusted_alpha"], out["dof"].astype(float), out["se"].astype(float))]
    out["adj_low"] = out["estimate"].astype(float) - half
    out["adj_high"] = out["estimate"].astype(float) + half
    out["verdict"] = [_verdict(r, t, alpha) for r, t in zip(out.itertuples(), tested)]
    return out


def _verdict(row, tested: bool, alpha: float) -> str:
    if row.higher_is_better is None or (isinstance(row.higher_is_better, float) and math.isnan(row.higher_is_better)):
        return "n/a"
    if not np.isfinite(row.estimate) or not np.isfinite(row.se):
        return "too few runs"
    if not tested:
        return "exploratory"
    if row.p_holm >= alpha:
        return "no clear difference"
    improved = row.estimate > 0 if row.higher_is_better else row.estimate < 0
    return "better" if improved else "worse"


def on_display_scale(value: float, scale: str) -> float:
    """An estimate or bound in the units the report prints: % change on the log scale, else as is."""
    return 100 * math.expm1(value) if scale == "log" and np.isfinite(value) else value
