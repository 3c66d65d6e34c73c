"""The Python API for notebooks and scripts: the same library functions the CLI calls, so a suite
planned, run and reported here gives the CLI's run ids, files and numbers.

    import ganbench
    suite = ganbench.load("suites/quick.yaml", set={"steps": 100})   # --set, as on the CLI
    ganbench.plan(suite, estimate=False).runs[:3]                    # what `ganbench plan` shows
    states = ganbench.run(suite, device="cpu", workers=2)            # what `ganbench run` trains
    frame = ganbench.results(suite)                                  # the tidy pandas table
    ganbench.report(suite, out="reports/mine")                       # what `ganbench report` writes

Plugins: `ganbench.load(path, plugins=["myhacks.py"])`, as `-p` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ganbench.study.suite import Suite


def load(path: str | Path, results_root: str | Path = "results", set: Mapping[str, Any] | None = None,
         plugins: Sequence[str] = ()) -> Suite:
    """A suite, its budget planned and `set` over every arm (the CLI's `--set`, values parsed as there).
    `plugins`: modules or .py files that register hacks, metrics or datasets, imported first (the CLI's -p;
    the sweep's workers load them too)."""
    from ganbench.config import parse_value
    from ganbench.execution.plan import load_planned_suite
    from ganbench.plugins import load_plugins

    load_plugins(plugins)
    overrides = {name: parse_value(name, value) for name, value in (set or {}).items()}
    return load_planned_suite(path, results_root, record=False, overrides=overrides)


def _selection(only: Sequence[str] = (), seeds: Sequence[int] = ()) -> Any:
    from ganbench.execution.sweep import Selection

    return Selection(tuple(only), tuple(seeds))


def plan(suite: Suite, device: str = "cpu", workers: int | None = None, estimate: bool = True,
         only: Sequence[str] = (), seeds: Sequence[int] = ()) -> Any:
    """`ganbench plan`'s answer (a `SuitePlan`): runs, jobs, cost, power, disk. Writes nothing. Its `.runs` are
    the table's rows as dicts (arm, seed, run_id, status, step, estimate_s, …); `suite.runs` are `Run` objects."""
    from ganbench.devices import expand
    from ganbench.execution.plan import plan_suite

    return plan_suite(suite, _selection(only, seeds), expand(device), workers, estimate)


def run(suite: Suite, device: str = "cpu", workers: int | None = None, max_fused: int | None = None,
        only: Sequence[str] = (), seeds: Sequence[int] = (), data_root: str | None = None,
        allow_slow_precision: bool = False, progress: bool = True) -> list[Any]:
    """Train every selected unfinished run (local worker processes), as `ganbench run`; their states.
    With `progress` it says what `ganbench run` says in a log: the timing, the planned total, each run's
    start and end, and a summary with an ETA every minute. bf16 on a CPU without native bf16 raises a
    ConfigError unless `allow_slow_precision`."""
    from ganbench.devices import expand
    from ganbench.execution.sweep import run_states, run_suite, select_runs
    from ganbench.rundir import FINAL

    selection = _selection(only, seeds)
    if not progress:
        return run_suite(suite, selection, workers, expand(device), data_root, max_fused=max_fused,
                         allow_slow_precision=allow_slow_precision)
    from rich.console import Console

    from ganbench.cli.progress import PlainProgress  # the CLI's own log lines, plain text in a notebook too

    todo = [s for s in run_states(suite, select_runs(suite, selection)) if s.status not in FINAL]
    shown = PlainProgress(Console(), todo)
    return run_suite(suite, selection, workers, expand(device), data_root, shown.update, shown.data,
                     max_fused=max_fused, allow_slow_precision=allow_slow_precision, on_timing=shown.timing,
                     on_plan=shown.planned)


def results(suite: Suite) -> Any:
    """The suite's tidy results (a pandas DataFrame: one row per run × metric × evaluation)."""
    from ganbench.analysis.results import load_results

    return load_results(suite.results_dir)


def report(suite: Suite, out: str | Path | None = None, formats: Sequence[str] = ("md", "tex", "csv")) -> Path:
    """Write the suite's report (default reports/<suite name>); returns its README.md."""
    from ganbench.analysis.report import build_report

    return build_report(suite.results_dir, Path(out) if out else Path("reports") / suite.results_dir.name, None,
                        list(formats))
