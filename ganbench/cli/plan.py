"""`ganbench plan` and `ganbench status`: what a suite will cost, and where it stands."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Iterator, Optional

import typer

from ganbench.errors import ConfigError
from ganbench.cli.common import (DataRootOpt, DevicesOpt, data_root_str, exit_on_error, JsonOpt, OnlyOpt, ResultsOpt, SeedsOpt, SetOpt, SuiteArg, app,
                                 arm_labels, console, err_console, fail, load_selection, print_json)
from ganbench.cli.tables import describe_phase, fmt_seconds, print_arm_legend, run_table

if TYPE_CHECKING:  # annotations only: imported when a function runs (a fast `ganbench --help`)
    from rich.table import Table

    from ganbench.config import TrainConfig


RUN_TABLE_LIMIT = 100  # more runs than this: one line of counts unless --runs


@app.command("plan")
def plan_command(
    suite_file: SuiteArg,
    only: OnlyOpt = None,
    seeds: SeedsOpt = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Workers the estimate assumes (default: as `run`).")] = None,
    device: DevicesOpt = "auto",
    estimate: Annotated[bool, typer.Option(help="Time each distinct job's steps and each metric set's evaluation "
                                           "here to estimate the cost.")] = True,
    max_fused: Annotated[Optional[int], typer.Option(min=1, help="Runs per fused group, as `run` (default: 1 on CPU, "
                                                     "sized from free memory on a GPU).")] = None,
    data_root: DataRootOpt = None,
    results_root: ResultsOpt = Path("results"),
    save: Annotated[bool, typer.Option("--save", help="Keep the estimate in results/SUITE_NAME/plan.json (which "
                                       "`ganbench status` compares with the measured times) and a timed seconds "
                                       "budget in budget.json. Without it, plan writes nothing.")] = False,
    pilot: Annotated[Optional[Path], typer.Option(help="A finished study (results directory) whose seed SDs the "
                                                  "power statement uses (default: the committed quick study's).")] = None,
    target: Annotated[Optional[str], typer.Option(help="A change to detect, e.g. 15% (FID, IS) or 0.02 (precision): "
                                                  "the seeds per arm it needs at 80 % power (default: 10% for "
                                                  "FID and IS).")] = None,
    as_json: JsonOpt = False,
    set_: SetOpt = None,
    show_runs: Annotated[bool, typer.Option("--runs", help=f"List every run even when there are more than "
                                            f"{RUN_TABLE_LIMIT}.")] = False,
) -> None:
    """Show the arms × seeds of a suite with run ids, which are done, the jobs (fused groups)
    that would train the rest, the design's aliases and what it will cost here: training steps
    and evaluations timed on --device, worker start-up, one-time reference features. Read-only
    unless --save (`ganbench run` records its own estimate when none was saved)."""
    from ganbench.data.datasets import DataNotFoundError
    from ganbench.execution.plan import plan_suite
    from ganbench.rundir import RunDirError

    root = data_root_str(data_root)
    suite, selection, devices = load_selection(suite_file, results_root, only, seeds, device, record_budget=save,
                                               assignments=set_)
    try:
        with _timing_progress() as on_timing:
            plan = plan_suite(suite, selection, devices, workers, estimate, max_fused, root, save,
                              pilot, target, on_timing)
    except (ConfigError, RunDirError, DataNotFoundError, RuntimeError, ValueError) as err:
        fail(f"{suite.path}: cannot plan: {type(err).__name__}: {err}")
    _show_plan(suite, plan, save, as_json, show_runs)


@contextlib.contextmanager
def _timing_progress() -> Iterator[Any]:
    """While `plan` times one job of each shape: a transient bar on a terminal, a line every tenth in a log."""
    if err_console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("timing one job of each shape"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=err_console, transient=True) as bar:
            task = bar.add_task("timing", total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)
        return

    def plain(done: int, total: int) -> None:
        if done == total or done % max(total // 10, 1) == 0:
            err_console.print(f"timed {done}/{total} job shapes", highlight=False)
    yield plain


def _show_plan(suite: Any, plan: Any, save: bool, as_json: bool, show_runs: bool = False) -> None:
    from ganbench.execution.disk import format_bytes
    from ganbench.suitedir import PLAN

    out = err_console if as_json else console  # --json: stdout holds the JSON only
    out.print(f"[bold]{suite.name}[/] ({suite.path}): {suite.description}", highlight=False)
    for line in plan.design:
        out.print(line, highlight=False)
    if suite.overrides:  # the CLI's --set: other configs, so other run ids than the suite's own
        out.print("--set over every arm: " + ", ".join(f"{k}={v!r}" for k, v in suite.overrides.items()),
                  highlight=False)
    for warning in plan.warnings:
        out.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if as_json:
        return print_json(plan.as_json())
    rows, cost = plan.runs, plan.cost
    if len(rows) > RUN_TABLE_LIMIT and not show_runs:  # a table of 1 472 rows reads like no table at all
        by_status: dict[str, int] = {}
        for row in rows:
            by_status[row["status"]] = by_status.get(row["status"], 0) + 1
        console.print(f"{len(rows)} runs ({', '.join(f'{n} {s}' for s, n in sorted(by_status.items()))}); "
                      "--runs lists each of them", highlight=False)
        rows = []
    labels = arm_labels(suite.arms, {row["arm"] for row in rows})
    fused = any("×" in (row["group"] or "") for row in rows)  # job numbers say something only for fused groups
    table = run_table(f"runs → {suite.results_dir}/runs/", ("arm", "seed", "run id", "status", "steps",
                                                             *(("job",) if fused else ()), "train", "eval"))
    for row in rows:
        est = [fmt_seconds(row[k]) if row[k] is not None else "-" for k in ("estimate_s", "eval_s")]
        table.add_row(labels[row["arm"]], str(row["seed"]), row["run_id"], row["status"],
                      f"{row['step']}/{row['steps']}", *((row["group"] or "-",) if fused else ()), *est)
    if rows:  # more runs than the table shows: the counts line above stands for it
        console.print(table)
        print_arm_legend(labels)
    for line in _power_lines(plan.power):
        console.print(line, highlight=False)
    if plan.disk and plan.disk["runs"]:
        disk = plan.disk
        console.print(f"disk: ≈ {format_bytes(disk['kept_bytes'])} kept by its {disk['runs']} runs (one checkpoint "
                      f"each, ≤ {format_bytes(disk['largest_checkpoint_bytes'])}, overwritten at every checkpoint step; "
                      f"sample grids; logs), ≈ {format_bytes(disk['written_bytes'])} written over the sweep",
                      highlight=False)
    todo = [r for r in rows if r["estimate_s"] is not None]
    if todo:
        jobs = len({r["group"] for r in todo})
        console.print(f"{len(todo)} runs in {jobs} jobs (≤ {plan.max_fused} runs each) with {plan.workers} workers on "
                      f"{plan.device}: ≈ {fmt_seconds(cost['total_s'])} in all = training steps "
                      f"{fmt_seconds(cost['train_s'])} + evaluations {fmt_seconds(cost['eval_s'])} (each run's, "
                      f"{cost['evaluations']} in all, timed here and scaled to the suite's sample counts) + worker "
                      f"start-up {fmt_seconds(cost['startup_s'])} + up to {fmt_seconds(cost['one_time_s'])} once per "
                      "machine (reference features and the uniform-noise FID; nothing when they are cached). "
                      f"Measured here; excludes decoding the dataset (cached after the first run). Parallel: "
                      f"{cost['parallel_how']}.", highlight=False)
        console.print(f"estimate kept in {suite.dir.file(PLAN)}" if save else
                      "nothing written (--save keeps this estimate for `ganbench status`)", highlight=False)


def _power_lines(power: list[dict[str, Any]]) -> list[str]:
    """What the suite can detect: per verdict metric, at 80 % power (Welch, Bonferroni over the family)."""
    lines = []
    for row in power:
        if "min_detectable" not in row:
            lines.append(f"power ({row['metric']}): {row.get('note', 'unavailable')}")
            continue
        dof = f", {row['sd_dof']} dof" if row.get("sd_dof") else ""
        text = (f"power ({row['metric']}): with {row['seeds']} seeds per arm and a family of ≤ {row['family']} "
                f"comparisons, the smallest change seen with 80 % power is {row['min_detectable_text']} "
                f"(seed SD {row['sd']:.3g} on the {row['scale']} scale{dof}, from {row['pilot']})")
        if row.get("min_detectable_range_text"):
            text += f"; over the SD's 90 % range {row['min_detectable_range_text']}"
        if row.get("per_arm_text"):
            text += f"; {row['per_arm_text']}"
        if "target" in row:
            need = row["seeds_for_target"]
            text += (f"; a change of {row['target']} needs {need} seeds per arm (recommended)" if need else
                     f"; a change of {row['target']} needs more than 200 seeds per arm")
        lines.append(text)
    return lines


def warn_before_evaluating(cfgs: list[TrainConfig], device: str, data_root: str | None) -> None:
    """Once, before training: what Inception metrics on a CPU will cost here (never changes them)."""
    from ganbench import devices
    from ganbench.data.datasets import DataNotFoundError
    from ganbench.execution.costs import inception_warning
    from ganbench.metrics.registry import MetricError

    try:
        if devices.resolve(device).type != "cpu":
            return
        for cfg in {(c.metrics, c.eval_samples, c.dataset): c for c in cfgs}.values():
            same = sum(1 for c in cfgs if (c.metrics, c.eval_samples, c.dataset) == (cfg.metrics, cfg.eval_samples,
                                                                                      cfg.dataset))
            warning = inception_warning(cfg, "cpu", same, data_root)
            if warning:
                console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    except (MetricError, DataNotFoundError, OSError) as err:  # training reports these itself, with context
        console.print(f"[yellow]warning:[/] could not time an evaluation here: {err}", highlight=False)


@app.command("status")
def status_command(
    suite_file: SuiteArg, results_root: ResultsOpt = Path("results"), as_json: JsonOpt = False,
    show_runs: Annotated[bool, typer.Option("--runs", help=f"One row per run even when there are more than "
                                            f"{RUN_TABLE_LIMIT} (else one per arm).")] = False,
) -> None:
    """Where every run of a suite stands (from the run directories; works for any executor): its
    step, whether it is evaluating (images done, ETA), and each arm's planned against measured time."""
    from dataclasses import asdict

    from rich.table import Table

    from ganbench.execution.plan import suite_status
    from ganbench.rundir import RunDirError

    suite, selection, _ = load_selection(suite_file, results_root, None, None)
    with exit_on_error(RunDirError):
        status = suite_status(suite, selection)
    if as_json:
        return print_json(asdict(status))
    rows, counts, comparison = status.runs, status.counts, status.planned_vs_measured
    labels = arm_labels(suite.arms, {row["arm"] for row in rows} | set(comparison or ()))
    title = f"{suite.name}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    console.print(_run_rows(title, rows, labels) if show_runs or len(rows) <= RUN_TABLE_LIMIT else
                  _arm_rows(title, rows, labels))
    print_arm_legend(labels)
    if comparison is None:
        console.print("no estimate to compare with: `ganbench plan --save` (or `ganbench run`) records one in "
                      f"{suite.results_dir}/plan.json", highlight=False)
    elif comparison:
        table = Table(title="planned vs measured seconds per run (median of the arm's finished runs)")
        for column in ("arm", "finished", "planned", "measured", "measured / planned"):
            table.add_column(column)
        for arm, row in comparison.items():
            table.add_row(labels[arm], str(row["finished"]), fmt_seconds(row["planned_s"]),
                          fmt_seconds(row["actual_s"]) if row["actual_s"] is not None else "-",
                          f"{row['actual_s'] / row['planned_s']:.2f}" if row["actual_s"] else "-")
        console.print(table)


def _run_rows(title: str, rows: list[dict[str, Any]], labels: dict[str, str]) -> Table:
    table = run_table(title, ("arm", "seed", "run id", "status", "steps", "now"))
    for row in rows:
        table.add_row(labels[row["arm"]], str(row["seed"]), row["run_id"], row["status"],
                      f"{row['step']}/{row['steps']}",
                      describe_phase(row["phase"]) or ("training" if row["status"] == "running" else ""))
    return table


def _arm_rows(title: str, rows: list[dict[str, Any]], labels: dict[str, str]) -> Table:
    """One row per arm (a big suite: --runs lists the runs): its runs by status and how far they got."""
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_arm.setdefault(row["arm"], []).append(row)
    table = run_table(title + " (one row per arm; --runs lists every run)", ("arm", "runs", "status", "steps"))
    for arm, arm_rows in by_arm.items():
        statuses: dict[str, int] = {}
        for row in arm_rows:
            statuses[row["status"]] = statuses.get(row["status"], 0) + 1
        steps = [row["step"] for row in arm_rows]
        table.add_row(labels[arm], str(len(arm_rows)), ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())),
                      f"{min(steps)}–{max(steps)}/{arm_rows[0]['steps']}" if min(steps) != max(steps)
                      else f"{steps[0]}/{arm_rows[0]['steps']}")
    return table
