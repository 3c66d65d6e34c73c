"""Comparisons against a reference arm, and the one multiplicity family they belong to.

A comparison row is built in two passes. `compare_to_reference` (per design part and verdict
metric, at equal steps) and `compare_at_equal_compute` (per part, on the primary metric, only
where the two arms' FLOPs per step differ: otherwise it is the equal-steps comparison again)
estimate each difference with its standard error and degrees of freedom; `apply_family` then
takes exactly the rows the report shows (the family), and gives

- **simultaneous intervals** by Bonferroni over every row of the family (tested or not): each is
  a Welch interval at level 1 − α/m for every variance ratio (`welch_bound`), so all of them cover
  their true differences together with probability ≥ 1 − α;
- **verdicts** by the same single-step Bonferroni over the rows that can be tested (both arms with at
  least `MIN_SEEDS` runs that learned): a row is called when its p (for a t row, `welch_bound`'s) is
  < α/m, which for a t row is exactly when its interval excludes 0. Holm's step-down would call a few more rows, but then a verdict could stand
  beside an interval containing 0 (it did, in loo-cpu); one procedure for both keeps them in agreement
  by construction, family-wise error ≤ α.

**Two outcomes per arm.** GAN ablations are about the arms that break, and an arm whose seeds fall into
two modes (noise, or learned) has a tiny SD whenever its seeds land in one mode: Welch's t on a mean over
both modes called such an arm in 8.9 % of nulls (78× α/m). So whether a run learned is its own outcome
(`failures.failure_labels`): each arm's share of runs that failed to learn is compared with the
reference's by Fisher's exact test (`compare_failures`, a member of the family wherever either arm has a
failure: a table without one has p = 1 given its margins and can call nothing), and how well the arms
did is compared on the runs that learned only, each row saying so with its n. An arm with fewer than
`MIN_SEEDS` learned runs gets no quality verdict ("withheld").

Every quality difference is **Welch's** (each arm its own variance, Welch–Satterthwaite degrees of
freedom): arms' seed SDs differ by 50× in the quick study, and a pooled-variance model then calls a noisy
arm different far more often than α (simulated in tests/test_calibration.py). FID and IS are compared on
the log scale (reported as % change). Each row depends on its two arms only: a thin arm changes no
other row. Diverged and crashed runs have no value; they are counted in every row (`n` of `runs`) and
compared by Fisher's exact test on the share of runs that produced a value (outside the family).

Welch's t is itself an approximation whose error grows in the far tail the family works in (α/m ≈ 0.001):
with 5 learned runs against 10 it rejects a true null up to 3× as often as it says, and with SDs as unequal as
loo-cpu's, lost seeds and an arm failing in half its seeds the family's error reached 0.068 and its joint
coverage fell to 0.911. So every t row's p and interval are read at the **least favourable variance ratio**
(`welch_bound`: Welch's statistic and degrees of freedom, its tail computed exactly under normality for every
ratio and the worst taken) — valid whatever the SDs, and far less costly than Hsu's min(n) − 1 degrees of
freedom. The guarantees then hold when, within an arm, the learned runs' values are roughly normal on the
analysis scale (log for FID and IS) and seeds are independent (`GUARANTEE`); failure shares need no assumption
(exact tests). tests/test_calibration.py measures both on those hard studies.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Collection, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from ganbench.analysis import stats, welch_bound
from ganbench.metrics.registry import compared_on_log_scale, value_range

MIN_SEEDS = 5
ALPHA = 0.05
FAILURE = "failed_to_learn"  # the outcome of the failure-share rows (`compare_failures`)
GUARANTEE = ("the family-wise error is at most 5 % and the intervals cover every true value together with "
             "probability at least 95 % when the learned runs' values are roughly normal within each arm on the "
             "analysis scale (log for FID and IS) and seeds are independent, whatever the arms' SDs; the failure "
             "shares need no assumption (exact tests)")
# The basis of a comparison: what its two arms share when they are read. Every module names these, never the words.
EQUAL_STEPS = "equal steps"  # the same training steps (a part's default)
EQUAL_FLOPS = "equal FLOPs"  # read off the curves at the same cumulative FLOPs (`compare_at_equal_compute`)
TRAINED_FLOPS = "equal FLOPs (trained)"  # a part whose arms were trained to the same FLOPs (`budget: {flops: …}`)
MAX_READ_DISTANCE = 0.25  # an equal-compute reading further than this share of an evaluation interval from an evaluation is refused
INTERPOLATION = ("equal compute: where the two arms' FLOPs per step differ, both are read at the smaller of their "
                 "two final budgets (cumulative FLOPs = step × FLOPs per step); a run's metric there is linearly "
                 "interpolated between the two evaluations around it, and refused when the reading lies more than "
                 f"{MAX_READ_DISTANCE:.0%} of an evaluation interval from an evaluation (the curve between is not "
                 "known) or before the first one")


def metric_scale(metric: str, values: Iterable[float]) -> str:
    """'log' for a metric that declares it (FID, IS: `Output.log_scale`) when every value is positive, else 'raw'."""
    x = np.asarray([v for v in values if np.isfinite(v)], float)
    return "log" if compared_on_log_scale(metric) and len(x) and (x > 0).all() else "raw"


def _transform(x: np.ndarray, scale: str) -> np.ndarray:
    return np.log(x) if scale == "log" else x


def _p_value(estimate: float, se: float, dof: float) -> float:
    if not (np.isfinite(estimate) and np.isfinite(se)):
        return math.nan
    if se == 0:
        return 0.0 if estimate else 1.0
    return float(2 * sps.t.sf(abs(estimate) / se, dof))


def compare_to_reference(values: pd.DataFrame, reference: str, metric: str, higher_is_better: bool | None,
                         arms: Sequence[str] | None = None, basis: str = EQUAL_STEPS,
                         failed: Collection[str] = ()) -> pd.DataFrame:
    """Each arm against `reference` on the final values of its runs that learned, by Welch's t (see the
    module doc); verdicts come from `apply_family`. `values` is `stats.run_values` of one part (one row per
    run, NaN where it has no value); `basis` names what the part's arms share (`part_basis`); `failed` the
    run ids that failed to learn (their values are not averaged in: they are `compare_failures`' outcome)."""
    arms = list(arms or [a for a in values["arm"].unique() if a != reference])
    lost = values["run_id"].isin(set(failed)).to_numpy() if "run_id" in values else np.zeros(len(values), bool)
    value, arm_of = values["value"].to_numpy(float), values["arm"].to_numpy()
    mine = {a: arm_of == a for a in [reference, *arms]}
    every = {a: value[m] for a, m in mine.items()}
    failures = {a: int(lost[m].sum()) for a, m in mine.items()}
    raw = {a: value[m & ~lost] for a, m in mine.items()}
    raw = {a: x[np.isfinite(x)] for a, x in raw.items()}
    scale = metric_scale(metric, np.concatenate(list(raw.values())))
    rows = []
    for arm in arms:
        x, ref = raw[arm], raw[reference]
        estimate, se, dof = stats.welch_contrast(_transform(x, scale), _transform(ref, scale))
        no_value, no_value_ref = (len(every[a]) - failures[a] - len(raw[a]) for a in (arm, reference))
        rows.append({"metric": metric, "arm": arm, "reference": reference, "basis": basis, "scale": scale,
                     "n": len(x), "n_reference": len(ref), "runs": len(every[arm]), "runs_reference": len(every[reference]),
                     "failed": failures[arm], "failed_reference": failures[reference],
                     "estimate": estimate, "se": se, "dof": dof, "p": _p_value(estimate, se, dof),
                     "test": f"Welch's t ({scale} scale" + (", runs that learned" if failures[arm] + failures[reference]
                                                            else "") + ")",
                     "p_no_value": fisher_no_value(no_value, len(every[arm]), no_value_ref, len(every[reference])),
                     "diff": float(x.mean() - ref.mean()) if len(x) and len(ref) else math.nan,
                     "p_permutation": stats.permutation_pvalue(_transform(x, scale), _transform(ref, scale)),
                     "g": stats.hedges_g(x, ref), "in_family": True,
                     "testable": min(len(x), len(ref)) >= MIN_SEEDS, "higher_is_better": higher_is_better})
    return pd.DataFrame(rows)


def compare_failures(labels: pd.DataFrame, reference: str, arms: Sequence[str],
                     basis: str = EQUAL_STEPS) -> pd.DataFrame:
    """Each arm's share of runs that failed to learn against the reference's, by Fisher's exact test
    (two-sided), for the arms where it or the reference has a failure: those rows join the family (see the
    module doc); a table without one cannot call anything and is not a row. `labels` is
    `failures.failure_labels` (runs where it is undecided are left out of both counts)."""
    decided = labels.dropna(subset=[FAILURE]).groupby("arm")[FAILURE].agg(["sum", "count"])
    counts = {a: (int(decided.at[a, "sum"]), int(decided.at[a, "count"])) if a in decided.index else (0, 0)
              for a in [reference, *arms]}
    k_ref, n_ref = counts[reference]
    rows = []
    for arm in arms:
        k, n = counts[arm]
        if not n or not n_ref or not k + k_ref:
            continue
        rows.append({"metric": FAILURE, "arm": arm, "reference": reference, "basis": basis, "scale": "share",
                     "n": n, "n_reference": n_ref, "runs": n, "runs_reference": n_ref, "failed": k,
                     "failed_reference": k_ref, "estimate": k / n - k_ref / n_ref, "exact": True,
                     "p": fisher_p(k, n - k, k_ref, n_ref - k_ref),
                     "test": "Fisher's exact (share of runs that failed to learn)", "in_family": k + k_ref > 0,
                     "testable": True, "higher_is_better": False})
    return pd.DataFrame(rows)


def fisher_p(a: int, b: int, c: int, d: int) -> float:
    """Fisher's exact two-sided p of the table [[a, b], [c, d]] (memoised: a family's tables repeat, and a
    simulation of the family asks for the same few thousands of times)."""
    return _fisher_p(int(a), int(b), int(c), int(d))


@functools.lru_cache(maxsize=4096)
def _fisher_p(a: int, b: int, c: int, d: int) -> float:
    return float(sps.fisher_exact([[a, b], [c, d]]).pvalue)


@functools.lru_cache(maxsize=4096)
def clopper_pearson(k: int, n: int, level: float) -> tuple[float, float]:
    """The exact binomial interval of a share k/n at `level` (coverage ≥ level for every true share)."""
    if n == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2  # the beta quantiles scipy's binomtest(...).proportion_ci(method="exact") inverts to
    low = float(sps.beta.ppf(tail, k, n - k + 1)) if k > 0 else 0.0
    high = float(sps.beta.ppf(1 - tail, k + 1, n - k)) if k < n else 1.0
    return low, high


def seeds_to_decide(k: int, n: int, k_ref: int, n_ref: int, level: float, most: int = 200) -> int | None:
    """Seeds per arm at which the same failure shares would give Fisher's p < `level`; None beyond `most`
    or when the shares are equal (no number of seeds separates them)."""
    share, share_ref = k / n, k_ref / n_ref
    if share == share_ref:
        return None
    for seeds in range(max(n, n_ref), most + 1):
        a, b = round(share * seeds), round(share_ref * seeds)
        if fisher_p(a, seeds - a, b, seeds - b) < level:
            return seeds
    return None


def smallest_exact_p(n: int, n_reference: int) -> float:
    """The smallest two-sided p any exact (permutation) test can give for two groups of these sizes:
    2 / C(n + n_ref, n) for equal groups, 1 / C(·) otherwise — when it is above α/m no distribution-free
    test could call a comparison, and every verdict rests on the t test's normal tails."""
    ways = math.comb(n + n_reference, n)
    return min(1.0, (2 if n == n_reference else 1) / ways)




def part_basis(design: dict) -> str:
    """What a part's arms share at their final evaluation: the suite's steps, or (a part trained to
    `budget: {flops: …}`) the same FLOPs."""
    return TRAINED_FLOPS if (design.get("budget") or {}).get("kind") == "flops" else EQUAL_STEPS


def fisher_no_value(missing: int, runs: int, missing_reference: int, runs_reference: int) -> float:
    """Two-sided Fisher exact p of "this arm's runs end without a value (diverged, failed) as often as the
    reference's"; NaN when neither arm lost a run."""
    if runs == 0 or runs_reference == 0 or missing + missing_reference == 0:
        return math.nan
    return fisher_p(missing, runs - missing, missing_reference, runs_reference - missing_reference)


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
                             cost: dict[str, float], arms: Sequence[str], failed: Collection[str] = ()) -> pd.DataFrame:
    """Each arm whose compute per step differs from the reference's, against it at equal compute: both
    read at the smaller of their final budgets (`INTERPOLATION`), compared by Welch's t on the runs that
    learned (`failed`: the run ids that did not). `cost` is arm → compute per step. An arm with the
    reference's cost gets no row (it would repeat the equal-steps one)."""
    data = frame[(frame["metric"] == metric) & (frame["status"] == "completed")]
    data = data[~data["run_id"].isin(set(failed))]
    rows = []
    for arm in arms:
        base = {"metric": metric, "arm": arm, "reference": reference, "basis": EQUAL_FLOPS, "in_family": True,
                "higher_is_better": higher_is_better, "testable": False}
        if arm not in cost or reference not in cost:
            rows.append({**base, "note": "unavailable: no FLOPs per step recorded for this arm"})
            continue
        if math.isclose(cost[arm], cost[reference], rel_tol=1e-9):
            continue  # the same comparison as at equal steps: not a second member of the family
        finals = {a: data.loc[data["arm"] == a, "knob_steps"].max() * cost[a] for a in (arm, reference)}
        budget = float(min(finals.values()))
        early = arm if finals[arm] > finals[reference] else reference
        steps_read = budget / cost[early]
        distance = read_distance(data.loc[data["arm"] == early, "step"], steps_read)
        note = f"at {budget:.3g} FLOPs: `{early}` read at step {steps_read:.0f} of its curve"
        if distance > MAX_READ_DISTANCE:
            where = "before its first evaluation" if math.isinf(distance) else \
                f"{distance:.0%} of an evaluation interval from its nearest evaluation"
            rows.append({**base, "budget": budget, "early_arm": early, "step_read": steps_read, "read_distance": distance,
                         "note": f"unavailable at {budget:.3g} FLOPs: step {steps_read:.0f} of `{early}` is {where} "
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

    The family is every row with `in_family` and an estimate (the comparisons the report shows) — m rows;
    each gets a Bonferroni interval at level 1 − α/m (a t interval of the difference; for a failure-share
    row, exact Clopper–Pearson intervals of both shares). The `testable` ones (a direction, and for quality
    rows ≥ MIN_SEEDS learned runs on both sides) get verdicts at the same level: p_family = min(1, m·p_bound) < α,
    p_bound being a t row's p at its least favourable variance ratio (`welch_bound`; Fisher's p as it is).
    A row outside the family (descriptive) gets a plain 95 % interval and no verdict.
    """
    out = rows.copy().reset_index(drop=True)
    if out.empty:
        return out
    for column in ("estimate", "se", "dof", "p", "exact", "failed", "failed_reference"):
        if column not in out:
            out[column] = math.nan
    exact = out["exact"].map(lambda v: isinstance(v, (bool, np.bool_)) and bool(v)).astype(bool)
    flagged = out["in_family"].fillna(False).astype(bool) if "in_family" in out else pd.Series(True, out.index)
    # a row without an estimate (every run lost, a reading refused) is shown, but is no comparison
    estimable = np.isfinite(out["estimate"].astype(float)) & (np.isfinite(out["se"].astype(float)) | exact)
    in_family = flagged & estimable
    testable = out["testable"].fillna(False).astype(bool) if "testable" in out else pd.Series(False, out.index)
    tested = in_family & testable & np.isfinite(out["p"].astype(float)) & out["higher_is_better"].notna()
    out["in_family"], out["testable"] = in_family, testable
    size = int(in_family.sum())
    out["p_bound"] = [row.p if _is_exact(row) else _welch_bound(row, "p") for row in out.itertuples()]
    out["p_family"] = np.where(tested, np.minimum(1.0, out["p_bound"].astype(float) * max(size, 1)), math.nan)
    out["family_size"], out["family_tested"] = size, int(tested.sum())
    out["interval_level"] = np.where(in_family, 1 - alpha / max(size, 1), 1 - alpha)
    tails = [_welch_bound(row, "tail") for row in out.itertuples()]
    with np.errstate(invalid="ignore"):
        half = sps.t.isf(np.asarray(tails, float) / 2, out["dof"].to_numpy(float)) * out["se"].to_numpy(float)
    out["adj_low"] = out["estimate"].astype(float) - half
    out["adj_high"] = out["estimate"].astype(float) + half
    spans = out["metric"].astype(str).map(lambda m: float(np.subtract(*value_range(m)[::-1])))
    bounded = (out["scale"] == "raw") & np.isfinite(spans) if "scale" in out else pd.Series(False, out.index)
    # a difference of a bounded value lies within ±(high − low): clipping there keeps coverage
    out.loc[bounded, "adj_low"] = np.maximum(out.loc[bounded, "adj_low"], -spans[bounded])
    out.loc[bounded, "adj_high"] = np.minimum(out.loc[bounded, "adj_high"], spans[bounded])
    shares = {}
    for i in np.flatnonzero(exact):  # the shares themselves, each exact at the family's level
        row, level = out.iloc[i], out["interval_level"].iloc[i]
        shares[i] = (*clopper_pearson(int(row["failed"]), int(row["n"]), level),
                     *clopper_pearson(int(row["failed_reference"]), int(row["n_reference"]), level))
    for j, column in enumerate(("share_low", "share_high", "share_low_reference", "share_high_reference")):
        out[column] = [shares[i][j] if i in shares else math.nan for i in range(len(out))]
    out["verdict"] = [_verdict(r, t, f, alpha) for r, t, f in zip(out.itertuples(), tested, in_family)]
    return out


def _welch_bound(row: Any, what: str) -> float:
    """A t row's p-value ("p") or interval tail at its level ("tail"), valid for every variance ratio
    (`welch_bound`); NaN where Welch's test has no value (fewer than 2 runs a side)."""
    n, n_reference = (getattr(row, k, math.nan) for k in ("n", "n_reference"))
    if not (np.isfinite(n) and np.isfinite(n_reference)) or min(n, n_reference) < 2:
        return math.nan
    if what == "p":
        return welch_bound.worst_case_p(float(row.p), int(n), int(n_reference))
    return welch_bound.critical_tail(1 - float(row.interval_level), int(n), int(n_reference))


def _is_exact(row: Any) -> bool:
    """A failure-share row (an exact test, no standard error)."""
    value = getattr(row, "exact", False)
    return isinstance(value, (bool, np.bool_)) and bool(value)


def _verdict(row, tested: bool, in_family: bool, alpha: float) -> str:
    if row.higher_is_better is None or (isinstance(row.higher_is_better, float) and math.isnan(row.higher_is_better)):
        return "n/a"
    exact = _is_exact(row)
    lost = 0 if exact else sum(v for v in (row.failed, row.failed_reference) if np.isfinite(v))
    if lost and not tested:  # too few learned runs for a quality comparison
        return "withheld"
    if not np.isfinite(row.estimate) or not (np.isfinite(row.se) or exact):
        return "unavailable" if str(getattr(row, "note", "")).startswith("unavailable") else "too few runs"
    if not in_family:
        return "descriptive"
    if not tested:
        return "exploratory"
    if row.p_family >= alpha:
        return "no clear difference"
    improved = row.estimate > 0 if row.higher_is_better else row.estimate < 0
    return "better" if improved else "worse"


def on_display_scale(value: float, scale: str) -> float:
    """An estimate or bound in the units the report prints: % change on the log scale, else as is."""
    if scale == "log" and np.isfinite(value):
        # an interval of a row with 2 learned runs can span e^1000 on the log scale: that is "+inf %", not an error
        return 100 * math.expm1(value) if value < 700 else math.inf
    return value
