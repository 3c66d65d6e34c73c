"""What a run's records must hold, checked where they are read (`RunDir.stats_rows`, `metric_rows`,
`load_checkpoint`): a record that breaks it is a data problem — said with its file (and line, `files.
read_jsonl`) and what was expected, then left out — never a number made up from it (`"abc"` read as
NaN), a finished run made up from it (a checkpoint past the run's last step) nor a traceback
(`"step": "four"`). Torch-free.

    stats.jsonl    step: a whole number >= 0; every other value a number or null (non-finite, as logged)
    metrics.jsonl  step: a whole number >= 0; metric: a name; value: a finite number, or null (not
                   measurable there); draw, when present: a whole number >= 0
    checkpoint.pt  a mapping whose step is a whole number, at most the run's steps
"""

from __future__ import annotations

import math
from typing import Any, Mapping

# The training statistics of a stats.jsonl row (besides its step, learning rates and timing): a trainer's
# step() gives K rows of these, in this order (`training.protocol.stat_rows`); the disk estimate counts them.
STAT_NAMES = ("loss_d", "loss_g", "d_real", "d_fake_before", "d_fake_after", "grad_norm_d", "grad_norm_g")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _step_problem(row: Mapping[str, Any]) -> str | None:
    step = row.get("step")
    return None if _whole(step) else f"step {step!r} is not a whole number >= 0"


def stats_row_problem(row: Mapping[str, Any]) -> str | None:
    """Why `row` is not a stats.jsonl row, or None."""
    problem = _step_problem(row)
    if problem:
        return problem
    for key, value in row.items():
        if key != "step" and value is not None and not _number(value):
            return f"{key} {str(value)[:40]!r} is not a number"
    return None


def metric_row_problem(row: Mapping[str, Any]) -> str | None:
    """Why `row` is not a metrics.jsonl row, or None."""
    problem = _step_problem(row)
    if problem:
        return problem
    metric, value = row.get("metric"), row.get("value")
    if not isinstance(metric, str) or not metric:
        return f"metric {str(metric)[:40]!r} is not a metric name"
    if value is not None and not (_number(value) and math.isfinite(value)):
        return f"value {str(value)[:40]!r} of {metric} is not a finite number (or null: not measurable)"
    if "draw" in row and not _whole(row["draw"]):
        return f"draw {row['draw']!r} of {metric} is not a whole number >= 0"
    return None


def checkpoint_problem(state: Any, steps: int | None) -> str | None:
    """Why a loaded checkpoint cannot be resumed from, or None."""
    if not isinstance(state, dict):
        return f"not a checkpoint (a {type(state).__name__})"
    step = state.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return f"not a checkpoint of a run (its step is {step!r})"
    if steps is not None and step > steps:
        return f"a checkpoint at step {step} of a run of {steps} steps"
    return None
