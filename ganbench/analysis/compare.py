"""Two runs, or two arms of a suite, side by side (`ganbench compare`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ganbench import rundir
from ganbench.analysis import inference, stats
from ganbench.metrics.registry import value_range


def compare_runs(run_a: Path, run_b: Path) -> dict[str, Any]:
    """The knobs that differ, and each run's status and final metrics."""
    configs, finals = [], []
    for run in (run_a, run_b):
        record = rundir.RunDir(run).read_config()  # CorruptFile names a damaged one
        if record is None:
            raise FileNotFoundError(f"{run}/config.json missing: is {run} a ganbench run directory?")
        configs.append(record)
        status = rundir.RunDir(run).read_status()
        finals.append({"status": status.get("status", "pending"), **status.get("metrics", {})})
    a, b = configs[0]["config"], configs[1]["config"]
    knobs = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
    hacks = (sorted(set(configs[0].get("hacks") or ()) - set(configs[1].get("hacks") or ())),
             sorted(set(configs[1].get("hacks") or ()) - set(configs[0].get("hacks") or ())))
    return {"knobs": knobs, "hacks_only_in": hacks, "final": finals}


def compare_arms(results_dir: Path, arm_a: str, arm_b: str, metric: str) -> pd.DataFrame:
    """`arm_a` against `arm_b` over seeds on `metric` (final values; Welch, Hedges' g)."""
    from ganbench.analysis.results import load_results, metric_directions

    frame = load_results(results_dir)
    for arm in (arm_a, arm_b):
        if arm not in set(frame["arm"]):
            raise ValueError(f"no arm '{arm}' in {results_dir}; arms: {sorted(set(frame['arm']))}")
    direction = metric_directions(frame).get(metric)
    values = stats.run_values(frame[frame["arm"].isin([arm_a, arm_b])], metric, direction)
    summary = stats.arm_summary(values, value_range(metric))
    # One comparison: its own family of one, so its interval is the plain 95 % one.
    comparison = inference.apply_family(inference.compare_to_reference(values, arm_b, metric, direction, [arm_a]))
    # `change` and its 95 % interval: % change where the comparison is on the log scale (FID, IS), else Δ.
    for column, source in (("change", "estimate"), ("change_low", "adj_low"), ("change_high", "adj_high")):
        comparison[column] = [inference.on_display_scale(v, sc) for v, sc in zip(comparison[source], comparison["scale"])]
    return summary.merge(comparison[["arm", "diff", "scale", "change", "change_low", "change_high", "test", "p", "g",
                                     "verdict"]], on="arm", how="left")
