"""The one cadence rule: a run logs, evaluates, saves a sample grid and checkpoints "every N steps
and at the last" (N = 0: at the last only). The training loop asks `due`; the plan and the disk and
cost estimates count or list the same steps with `count_due` and `steps_due`. Torch-free."""

from __future__ import annotations


def due(step: int, every: int, last: int) -> bool:
    """Whether the cadence acts at `step`: a multiple of `every` (0: never), or the `last` step."""
    return bool(every and step % every == 0) or step == last


def steps_due(every: int, last: int) -> list[int]:
    """Every step in 1…`last` the cadence acts at, in order."""
    return sorted({*(range(every, last + 1, every) if every else ()), last})


def count_due(every: int, last: int, after: int = 0) -> int:
    """How many steps in (`after`, `last`] the cadence acts at (arithmetic: a billion steps cost nothing)."""
    if after >= last:
        return 0
    multiples = last // every - after // every if every else 0
    return multiples + (not every or last % every != 0)
