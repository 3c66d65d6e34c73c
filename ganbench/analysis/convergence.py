"""Has the budget converged? Per arm, the change of a metric over the last stretch of its own training.

A reader takes the final ranking as the answer; it is one only if the curves have flattened.
For each arm: the per-run change from its last evaluation at or before `1 − WINDOW` of its own last step
(its first, when none is that early) to its last evaluation (on the metric's analysis scale: log for FID and IS, so a % change), its mean over seeds
and that mean's standard error. Each arm's own steps: an arm trained to a FLOPs budget stops at its own
step (254 or 634 in loo-cpu) and is judged over its own last quarter, not left out. An arm is **still
improving** when the mean change goes the better way by more than two standard errors; the arm's
comparison with the reference **flips** when the sign of its difference from the reference differs between
the two evaluations (only where both arms were evaluated at both steps).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ganbench.analysis.inference import metric_scale, on_display_scale

STILL_IMPROVING_SE = 2.0  # a mean change beyond this many standard errors, the better way, is "still improving"
WINDOW = 0.25  # the last stretch judged: from the last evaluation at or before 75 % of an arm's last step


def _per_run(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    rows = frame[(frame["metric"] == metric) & (frame["status"] == "completed")].dropna(subset=["value"])
    return rows.groupby(["arm", "run_id", "step"], as_index=False)["value"].mean()


def window_steps(steps: list[int]) -> tuple[int, int] | None:
    """(start, last) of an arm's last stretch among its evaluation steps: the last one, and the latest at or
    before (1 − WINDOW) of it (the first when none is that early: a stretch of at least a quarter, never the
    4 steps between an evaluation and a FLOPs budget's odd last step); None with fewer than two evaluations."""
    steps = sorted(set(int(s) for s in steps))
    if len(steps) < 2:
        return None
    last = steps[-1]
    early = [s for s in steps[:-1] if s <= (1 - WINDOW) * last]
    return (early[-1] if early else steps[0]), last


def convergence_table(frame: pd.DataFrame, metric: str, higher_is_better: bool | None, arms: list[str],
                      reference: str | None) -> pd.DataFrame:
    """One row per arm: its last stretch (`window_steps`), the mean change over it (display units), its
    standard error, `still_improving`, and the arm − reference difference at both ends (`flips`)."""
    runs = _per_run(frame, metric)
    if runs.empty or higher_is_better is None:
        return pd.DataFrame()
    scale = metric_scale(metric, runs["value"])
    runs = runs.assign(y=np.log(runs["value"]) if scale == "log" else runs["value"])
    means = runs.groupby(["arm", "step"])["y"].mean()
    out = []
    for arm in arms:
        mine = runs[runs["arm"] == arm]
        window = window_steps(mine["step"].tolist())
        if window is None:
            continue
        previous, last = window
        wide = mine[mine["step"].isin(window)].pivot_table(index="run_id", columns="step", values="y")
        change = (wide[last] - wide[previous]).dropna().to_numpy() if {previous, last} <= set(wide) else np.array([])
        mean = float(change.mean()) if len(change) else math.nan
        se = float(change.std(ddof=1) / math.sqrt(len(change))) if len(change) > 1 else math.nan
        better = mean > 0 if higher_is_better else mean < 0
        improving = bool(np.isfinite(se) and better and abs(mean) > STILL_IMPROVING_SE * max(se, 1e-12))
        row = {"metric": metric, "arm": arm, "previous_step": int(previous), "last_step": int(last), "scale": scale,
               "runs": len(change), "change": on_display_scale(mean, scale), "change_se": se,
               "still_improving": improving}
        if reference and arm != reference and all((a, s) in means for a in (arm, reference) for s in window):
            before = means[(arm, previous)] - means[(reference, previous)]
            after = means[(arm, last)] - means[(reference, last)]
            row.update(vs_reference_previous=on_display_scale(before, scale),
                       vs_reference_last=on_display_scale(after, scale),
                       flips=bool(np.sign(before) != np.sign(after)))
        out.append(row)
    return pd.DataFrame(out)


def convergence_counts(tables: list[pd.DataFrame]) -> tuple[int, int]:
    """(arms still improving, arms assessed) over the parts' convergence tables: the one count the headline
    and Limitations both give (each run set appears in one part's table only: `report.analysis`)."""
    assessed = [t for t in tables if not t.empty]
    return sum(int(t["still_improving"].sum()) for t in assessed), sum(len(t) for t in assessed)
