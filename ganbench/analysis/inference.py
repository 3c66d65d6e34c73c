"""Comparisons against a reference arm, and the one multiplicity family they belong to.

A comparison row is built in two passes. `compare_to_reference` (per design part and verdict
metric, at equal steps) and `compare_at_equal_compute` (per part, on the primary metric, only
where the two arms' FLOPs per step differ: otherwise it is the equal-steps comparison again)
estimate each difference with its standard error and degrees of freedom; `apply_family` then
takes exactly the rows the report shows (the family), and gives

- **verdicts** by Holm's step-down correction over the rows that can be tested (both arms with
  at least `MIN_SEEDS` usable runs): family-wise error ≤ α;
- **simultaneous intervals** by Bonferroni over every row of the family (tested or not): each is
  a t interval at level 1 − α/m, so all of them cover their true differences together with
  probability ≥ 1 − α. Holm rejects whatever Bonferroni rejects and sometimes more, so an interval
  that excludes 0 always comes with a verdict, while a verdict can come with an interval that
  touches 0.

Every difference is **Welch's** (each arm its own variance, Welch–Satterthwaite degrees of freedom):
arms' seed SDs differ by 50× in the quick study, and a pooled-variance model then calls a noisy arm
different far more often than α (simulated in tests/test_calibration.py). FID and IS are compared on
the log scale (reported as % change). Each row depends on its two arms only: a thin arm changes no
other row. Diverged and failed runs have no value; they are counted in every row (`n` of `runs`) and
compared by Fisher's exact test on the share of runs that produced a value (outside the family).
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from ganbench.analysis import stats
from ganbench.metrics.registry import parse_value_name, value_range

MIN_SEEDS = 5
ALPHA = 0.05
LOG_SCALED = ("fid", "isc")  # value names (less any `_extractor` suffix) compared on the log scale
MAX_READ_DISTANCE = 0.25  # an equal-compute reading further than this share of an evaluation interval from an evaluation is refused
INTERPOLATION = ("equal compute: where the two arms' FLOPs per step differ, both are read at the smaller of their "
                 "two final budgets (cumulative FLOPs = step × FLOPs per step); a run's metric there is linearly "
                 "interpolated between the two evaluations around it, and refused when the reading lies more than "
                 f"{MAX_READ_DISTANCE:.0%} of an evaluation interval from an evaluation (the curve between is not "
                 "known) or before the first one")


def metric_scale(metric: str, values: Iterable[float]) -> str:
    """'log' for FID and IS when every value is positive, else 'raw'."""
    base = parse_value_name(metric)[0]
    x = np.asarray([v for v in values if np.isfinite(v)], float)
    return "log" if base in LOG_SCALED and len(x) and (x > 0).all() else "raw"


def _transform(x: np.ndarray, scale: str) -> np.ndarray:
    return np.log(x) if scale == "log" else x


def _p_value(estimate: float, se: float, dof: float) -> float:
    if not (np.isfinite(estimate) and np.isfinite(se)):
        return math.nan
    if se == 0:
        return 0.0 if estimate else 1.0
    return float(2 * sps.t.sf(abs(estimate) / se, dof))


def compare_to_reference(values: pd.DataFrame, reference: str, metric: str, higher_is_better: bool | None,
                         arms: Sequence[str] | None = None, basis: str = "equal steps") -> pd.DataFrame:
    """Each arm against `reference` on its runs' final values, by Welch's t (see the module doc); verdicts
    come from `apply_family`. `values` is `stats.run_values` of one part (one row per run, NaN where it has
    no value); `basis` names what the part's arms share (`part_basis`)."""
    arms = list(arms or [a for a in values["arm"].unique() if a != reference])
    every = {a: values.loc[values["arm"] == a, "value"].to_numpy(float) for a in [reference, *arms]}
    raw = {a: x[np.isfinite(x)] for a, x in every.items()}
    scale = metric_scale(metric, np.concatenate(list(raw.values())))
    rows = []
    for arm in arms:
        x, ref = raw[arm], raw[reference]
        estimate, se, dof = stats.welch_contrast(_transform(x, scale), _transform(ref, scale))
        rows.append({"metric": metric, "arm": arm, "reference": reference, "basis": basis, "scale": scale,
                     "n": len(x), "n_reference": len(ref), "runs": len(every[arm]), "runs_reference": len(every[reference]),
                     "estimate": estimate, "se": se, "dof": dof, "p": _p_value(estimate, se, dof),
                     "test": f"Welch's t ({scale} scale)",
                     "p_no_value": fisher_no_value(len(every[arm]) - len(x), len(every[arm]),
                                                   len(every[reference]) - len(ref), len(every[reference])),
                     "diff": float(x.mean() - ref.mean()) if len(x) and len(ref) else math.nan,
                     "p_permutation": stats.permutation_pvalue(_transform(x, scale), _transform(ref, scale)),
                     "g": stats.hedges_g(x, ref), "in_family": True,
                     "testable": min(len(x), len(ref)) >= MIN_SEEDS, "higher_is_better": higher_is_better})
    return pd.DataFrame(rows)


TRAINED_FLOPS = "equal FLOPs (trained)"


def part_basis(design: dict) -> str:
    """What a part's arms share at their final evaluation: the suite's steps, or (a part trained to
    `budget: {flops: …}`) the same FLOPs."""
    return TRAINED_FLOPS if (design.get("budget") or {}).get("kind") == "flops" else "equal steps"


def fisher_no_value(missing: int, runs: int, missing_reference: int, runs_reference: int) -> float:
    """Two-sided Fisher exact p of "this arm's runs end without a value (diverged, failed) as often as the
    reference's"; NaN when neither arm lost a run."""
    if runs == 0 or runs_reference == 0 or missing + missing_reference == 0:
        return math.nan
    table = [[missing, runs - missing], [missing_reference, runs_reference - missing_reference]]
    return float(sps.fisher_exact(table).pvalue)


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


def read_distance(steps: Sequence[float], step: float) -> float:
    """How far `step` lies from the nearest evaluation, as a share of the interval around it (0 at an
    evaluation, 0.5 half way); inf outside the evaluated range."""
    grid = np.unique(np.asarray(steps, float))
    if not len(grid) or step < grid[0] - 1e-9 or step > grid[-1] + 1e-9:
        return math.inf
    i = int(np.searchsorted(grid, step))
    if i < len(grid) and abs(grid[i] - step) < 1e-9:
        return 0.0
    low, high = grid[i - 1], grid[i]
    return float(min(step - low, high - step) / (high - low))


def compare_at_equal_compute(frame: pd.DataFrame, reference: str, metric: str, higher_is_better: bool | None,
                             cost: dict[str, float], arms: Sequence[str], unit: str = "FLOPs") -> pd.DataFrame:
    """Each arm whose compute per step differs from the reference's, against it at equal compute: both
    read at the smaller of their final budgets (`INTERPOLATION`), compared by Welch's t. `cost` is arm →
    compute per step. An arm with the reference's cost gets no row (it would repeat the equal-steps one)."""
    data = frame[(frame["metric"] == metric) & (frame["status"] == "completed")]
    rows = []
    for arm in arms:
        base = {"metric": metric, "arm": arm, "reference": reference, "basis": f"equal {unit}", "in_family": True,
                "higher_is_better": higher_is_better, "testable": False}
        if arm not in cost or reference not in cost:
            rows.append({**base, "note": f"unavailable: no {unit} per step recorded for this arm"})
            continue
        if math.isclose(cost[arm], cost[reference], rel_tol=1e-9):
            continue  # the same comparison as at equal steps: not a second member of the family
        finals = {a: data.loc[data["arm"] == a, "knob_steps"].max() * cost[a] for a in (arm, reference)}
        budget = float(min(finals.values()))
        early = arm if finals[arm] > finals[reference] else reference
        steps_read = budget / cost[early]
        distance = read_distance(data.loc[data["arm"] == early, "step"], steps_read)
        note = f"at {budget:.3g} {unit}: `{early}` read at step {steps_read:.0f} of its curve"
        if distance > MAX_READ_DISTANCE:
            where = "before its first evaluation" if math.isinf(distance) else \
                f"{distance:.0%} of an evaluation interval from its nearest evaluation"
            rows.append({**base, "budget": budget, "early_arm": early, "step_read": steps_read, "read_distance": distance,
                         "note": f"unavailable at {budget:.3g} {unit}: step {steps_read:.0f} of `{early}` is {where} "
                                 f"(more than {MAX_READ_DISTANCE:.0%} is refused: train to a FLOPs budget instead)"})
            continue
        read = {}
        for a in (arm, reference):
            curves = data[data["arm"] == a].groupby("run_id")
            read[a] = np.asarray([read_curve_at(g["step"].to_numpy(), g["value"].to_numpy(), cost[a], budget)
                                  for _, g in curves], float)
        x, ref = read[arm][np.isfinite(read[arm])], read[reference][np.isfinite(read[reference])]
        scale = metric_scale(metric, np.concatenate([x, ref]))
        estimate, se, dof = stats.welch_contrast(_transform(x, scale), _transform(ref, scale))
        note += f" ({distance:.0%} of an evaluation interval from an evaluation)" if distance else " (an evaluation)"
        if len(x) < len(read[arm]) or len(ref) < len(read[reference]):
            note += "; runs without an evaluation around that point are left out"
        rows.append({**base, "scale": scale, "n": len(x), "n_reference": len(ref), "estimate": estimate, "se": se,
                     "dof": dof, "p": _p_value(estimate, se, dof), "test": f"Welch's t ({scale} scale)",
                     "diff": float(x.mean() - ref.mean()) if len(x) and len(ref) else math.nan,
                     "budget": budget, "early_arm": early, "step_read": steps_read, "read_distance": distance,
                     "note": note, "testable": min(len(x), len(ref)) >= MIN_SEEDS})
    return pd.DataFrame(rows)


def apply_family(rows: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """The family's verdicts and simultaneous intervals (see the module doc).

    The family is every row with `in_family` and an estimate (the comparisons the report shows); of them,
    the `testable` ones (both arms with ≥ MIN_SEEDS usable runs, a direction) get Holm verdicts over
    `family_tested` rows; every family row gets a Bonferroni interval at level 1 − α/`family_size`.
    A row outside the family (descriptive) gets a plain 95 % interval and no verdict.
    """
    out = rows.copy().reset_index(drop=True)
    if out.empty:
        return out
    for column in ("estimate", "se", "dof", "p"):
        if column not in out:
            out[column] = math.nan
    flagged = out["in_family"].fillna(False).astype(bool) if "in_family" in out else pd.Series(True, out.index)
    # a row without an estimate (every run lost, a reading refused) is shown, but is no comparison
    in_family = flagged & np.isfinite(out["estimate"].astype(float)) & np.isfinite(out["se"].astype(float))
    testable = out["testable"].fillna(False).astype(bool) if "testable" in out else pd.Series(False, out.index)
    tested = in_family & testable & np.isfinite(out["p"].astype(float)) & out["higher_is_better"].notna()
    out["in_family"], out["testable"] = in_family, testable
    size, m = int(in_family.sum()), int(tested.sum())
    out["p_holm"] = math.nan
    if m:
        out.loc[tested, "p_holm"] = stats.holm(out.loc[tested, "p"].tolist())
    out["family_size"], out["family_tested"] = size, m
    out["interval_level"] = np.where(in_family, 1 - alpha / max(size, 1), 1 - alpha)
    half = [sps.t.ppf(0.5 + level / 2, d) * s if np.isfinite(s) and np.isfinite(d) else math.nan
            for level, d, s in zip(out["interval_level"], out["dof"].astype(float), out["se"].astype(float))]
    out["adj_low"] = out["estimate"].astype(float) - half
    out["adj_high"] = out["estimate"].astype(float) + half
    for i, row in out.iterrows():  # a difference of a bounded value lies within ±(high − low): coverage is kept
        low, high = value_range(str(row["metric"]))
        if row.get("scale") == "raw" and np.isfinite(high - low):
            out.loc[i, "adj_low"] = max(row["adj_low"], low - high)
            out.loc[i, "adj_high"] = min(row["adj_high"], high - low)
    out["verdict"] = [_verdict(r, t, f, alpha) for r, t, f in zip(out.itertuples(), tested, in_family)]
    return out


def _verdict(row, tested: bool, in_family: bool, alpha: float) -> str:
    if row.higher_is_better is None or (isinstance(row.higher_is_better, float) and math.isnan(row.higher_is_better)):
        return "n/a"
    if not np.isfinite(row.estimate) or not np.isfinite(row.se):
        return "unavailable" if str(getattr(row, "note", "")).startswith("unavailable") else "too few runs"
    if not in_family:
        return "descriptive"
    if not tested:
        return "exploratory"
    if row.p_holm >= alpha:
        return "no clear difference"
    improved = row.estimate > 0 if row.higher_is_better else row.estimate < 0
    return "better" if improved else "worse"


def on_display_scale(value: float, scale: str) -> float:
    """An estimate or bound in the units the report prints: % change on the log scale, else as is."""
    return 100 * math.expm1(value) if scale == "log" and np.isfinite(value) else value
