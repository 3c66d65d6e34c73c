"""How runs are shown: arm labels that fit a column, run tables, durations, evaluation phases."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence


from ganbench.cli.common import console

if TYPE_CHECKING:  # annotations only: imported when a function runs (a fast `ganbench --help`)
    from rich.table import Table




def run_table(title: str, columns: Sequence[str]) -> Table:
    """A table of runs that fits 80 columns: arm names and run ids whole, other cells wrap."""
    from rich import box
    from rich.table import Table

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


def sig(value: Any, digits: int = 4) -> str:
    """A number for people: `digits` significant digits ('17.25', '0.0003412'); '-' for none/NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.{digits}g}"


def run_comparison_table(a: str, b: str, result: dict[str, Any]) -> Table:
    """`compare RUN RUN`: the knobs that differ, the hacks only one has, the final metrics."""
    from rich.table import Table

    table = Table(title=f"{a} vs {b}")
    for column in ("", a, b):
        table.add_column(column, overflow="fold")
    for knob, (va, vb) in result["knobs"].items():
        table.add_row(f"knob {knob}", repr(va), repr(vb))
    table.add_row("hacks only here", ", ".join(result["hacks_only_in"][0]) or "-",
                  ", ".join(result["hacks_only_in"][1]) or "-")
    fa, fb = result["final"]
    for key in dict.fromkeys([*fa, *fb]):
        table.add_row(key, sig(fa.get(key)), sig(fb.get(key)))
    return table


def arm_comparison_table(frame: Any, a: str, b: str, metric: str) -> Table:
    """`compare --suite S A B`: one column per arm, one row per figure (each arm's seeds, mean and interval,
    then A's change against B with its units), so it fits an 80-column terminal without breaking a word."""
    from rich.table import Table

    rows = {row["arm"]: row for row in frame.to_dict(orient="records")}
    compared, reference = rows.get(a, {}), rows.get(b, {})
    table = Table(title=f"{metric}: {a} against {b}")
    table.add_column("", no_wrap=True)
    table.add_column(a, overflow="fold")
    table.add_column(f"{b} (reference)", overflow="fold")

    def each(text: Any) -> list[str]:
        return [text(r) if r else "—" for r in (compared, reference)]

    table.add_row("runs", *each(lambda r: f"{r['n']}/{r['runs']}"))
    table.add_row("mean ± SD", *each(lambda r: f"{sig(r['mean'])} ± {sig(r['std'], 3)}"))
    table.add_row("95 % CI", *each(lambda r: f"[{sig(r['ci_low'])}, {sig(r['ci_high'])}]"))
    if compared:
        unit = " %" if compared.get("scale") == "log" else ""
        table.add_row(f"change vs {b}", f"{sig(compared['change'], 3)}{unit} [{sig(compared['change_low'], 3)}{unit}, "
                      f"{sig(compared['change_high'], 3)}{unit}]", "")
        for label, key in (("test", "test"), ("p", "p"), ("Hedges' g", "g"), ("verdict", "verdict")):
            value = compared.get(key)
            table.add_row(label, sig(value, 3) if isinstance(value, float) else str(value), "")
    return table
