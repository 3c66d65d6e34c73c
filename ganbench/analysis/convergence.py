"""Has the budget converged? Per arm, the change of a metric over its last two evaluations.

A reader takes the final ranking as the answer; it is one only if the curves have flattened.
For each arm: the per-run change between the last two evaluation steps (on the metric's
analysis scale: log for FID and IS, so a % change), its mean over seeds and that mean's
standard error. An arm is **still improving** when the mean change goes the better way by more
than two standard errors; the arm's comparison with the reference **flips** when the sign of
its difference from the reference differs between the two steps.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ganbench.analysis.inference import metric_scale, on_display_scale

STILL_IMPROVING_SE = 2.0  # a mean change beyond this many standard errors, the better way, is "still improving"


def _per_run(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    rows = frame[(frame["metric"] == metric) & (frame["status"] == "completed")].dropna(subset=["value"])
    return rows.groupby(["arm", "run_id", "step"], as_index=False)["value"].mean()


def convergence_table(frame: pd.DataFrame, metric: str, higher_is_better: bool | None, arms: list[str],
                      reference: str | None) -> pd.DataFrame:
    """One row per arm: the last two evaluation steps, the mean change between them (display units),
    its standard error, `still_improving`, and the arm − reference difference at both steps (`flips`)."""
    runs = _per_run(frame, metric)
    if runs.empty or higher_is_better is None:
        return pd.DataFrame()
    scale = metric_scale(metric, runs["value"])
    runs = runs.assign(y=np.log(runs["value"]) if scale == "log" else runs["value"])
    steps = sorted(runs["step"].unique())
    if len(steps) < 2:
        return pd.DataFrame()
    previous, last = steps[-2], steps[-1]
    wide = runs[runs["step"].isin([previous, last])].pivot_table(index=["arm", "run_id"], columns="step", values="y")
    means = runs[runs["step"].isin([previous, last])].groupby(["arm", "step"])["y"].mean()
    out = []
    for arm in arms:
        if arm not in wide.index.get_level_values(0):
            continue
        change = (wide.loc[arm][last] - wide.loc[arm][previous]).dropna().to_numpy()
        mean = float(change.mean()) if len(change) else math.nan
        se = float(change.std(ddof=1) / math.sqrt(len(change))) if len(change) > 1 else math.nan
        better = mean > 0 if higher_is_better else mean < 0
        improving = bool(np.isfinite(se) and better and abs(mean) > STILL_IMPROVING_SE * max(se, 1e-12))
        row = {"metric": metric, "arm": arm, "previous_step": int(previous), "last_step": int(last), "scale": scale,
               "runs": len(change), "change": on_display_scale(mean, scale), "change_se": se,
               "still_improving": improving}
        if reference and arm != reference and (reference, last) in means and (arm, last) in means:
            before = means.get((arm, previous), math.nan) - means.get((reference, previous), math.nan)
            after = means[(arm, last)] - means[(reference, last)]
            row.update(vs_reference_previous=on_display_scale(before, scale),
                       vs_reference_last=on_display_scale(after, scale),
                       flips=bool(np.isfinite(before) and np.sign(before) != np.sign(after)))
        out.append(row)
    return pd.DataFrame(out)
