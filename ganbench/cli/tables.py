"""How runs are shown: arm labels that fit a column, run tables, durations, evaluation phases."""

from __future__ import annotations

from typing import Any, Sequence

from rich.table import Table

from ganbench.cli.common import console




def run_table(title: str, columns: Sequence[str]) -> Table:
    """A table of runs that fits 80 columns: arm names and run ids whole, other cells wrap."""
    from rich import box

    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=column != "now", overflow="fold")
    return table


def print_arm_legend(labels: dict[str, str]) -> None:
    long = {label: arm for arm, label in labels.items() if label != arm}
    if long:
        console.print("arms shown by number above, in full:", highlight=False)
        for label, arm in long.items():
            console.print(f"  {label} = {arm}", highlight=False, soft_wrap=True)


def fmt_seconds(seconds: float) -> str:
    from ganbench.execution.costs import format_duration

    return format_duration(seconds)


def describe_phase(phase: dict[str, Any] | None) -> str:
    """'evaluating fid_fmnist… 1500/15000 images, ETA 0m12s' for a run's status `phase`; '' when training."""
    if not phase:
        return ""
    done, total, eta = phase.get("samples_done", 0), phase.get("samples_total"), phase.get("eta_s")
    text = f"evaluating ({phase.get('metrics')}) at step {phase.get('step')}"
    if total:
        text += f": {done}/{total} images"
    if eta is not None:
        text += f", ETA {fmt_seconds(eta)}"
    return text
