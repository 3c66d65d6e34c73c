"""`ganbench plan` and `ganbench status`: what a suite will cost, and where it stands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from ganbench.config import ConfigError, TrainConfig
from ganbench.data.datasets import DataNotFoundError
from ganbench.rundir import RunDirError
from ganbench.cli.common import JsonOpt, OnlyOpt, ResultsOpt, SeedsOpt, SuiteArg, app, arm_labels, console, err_console, fail, load_selection, print_json
from ganbench.cli.tables import describe_phase, fmt_seconds, print_arm_legend, run_table


@app.command("plan")
def plan_command(
    suite_file: SuiteArg,
    only: OnlyOpt = None,
    seeds: SeedsOpt = None,
    workers: Annotated[Optional[int], typer.Option(help="Workers the estimate assumes (default: as `run`).")] = None,
    device: Annotated[str, typer.Option(help="Device the estimate is measured on: auto, cpu, cuda:N.")] = "auto",
    estimate: Annotated[bool, typer.Option(help="Time each distinct job's steps and each metric set's evaluation "
                                           "here to estimate the cost.")] = True,
    max_fused: Annotated[Optional[int], typer.Option(help="Runs per fused group, as `run` (default: 1 on CPU, "
                                                     "sized from free memory on a GPU).")] = None,
    data_root: Annotated[Optional[Path], typer.Option(help="Directory with the dataset files (evaluations "
                                                      "are timed on the real reference set).")] = None,
    results_root: ResultsOpt = Path("results"),
    save: Annotated[bool, typer.Option("--save", help="Keep the estimate in results/<suite>/plan.json (which "
                                       "`ganbench status` compares with the measured times) and a timed seconds "
                                       "budget in budget.json. Without it, plan writes nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show the arms × seeds of a suite with run ids, which are done, the jobs (fused groups)
    that would train the rest, the design's aliases and what it will cost here: training steps
    and evaluations timed on --device, worker start-up, one-time reference features. Read-only
    unless --save (`ganbench run` records its own estimate when none was saved)."""
    if workers is not None and workers < 1:
        fail(f"--workers must be >= 1, got {workers}")
    if max_fused is not None and max_fused < 1:
        fail(f"--max-fused must be >= 1, got {max_fused}")
    suite, selection, devices = load_selection(suite_file, results_root, only, seeds, device, record_budget=save)
    try:
        _plan(suite, selection, devices, workers, estimate, max_fused, data_root, save, as_json)
    except (ConfigError, RunDirError, DataNotFoundError, RuntimeError, ValueError) as err:
        fail(f"{suite.path}: cannot plan: {type(err).__name__}: {err}")


def _plan(suite: Any, selection: Any, devices: list[str], workers: int | None, estimate: bool, max_fused: int | None,
          data_root: Path | None, save: bool, as_json: bool) -> None:
    from ganbench.execution.costs import evaluation_warnings, plan_total, write_plan
    from ganbench.execution.jobs import default_workers
    from ganbench.execution.sweep import auto_max_fused, design_lines, pending_runs, plan_rows

    n_workers = workers or default_workers(devices)
    if max_fused is None:
        max_fused = auto_max_fused(pending_runs(suite, selection), devices, n_workers)
    out = err_console if as_json else console  # --json: stdout holds the JSON only
    out.print(f"[bold]{suite.name}[/] ({suite.path}): {suite.description}", highlight=False)
    lines = design_lines(suite)
    for line in lines:
        out.print(line, highlight=False)
    data_root_str = str(data_root) if data_root else None
    if estimate:
        for warning in evaluation_warnings(pending_runs(suite, selection), devices[0], data_root_str):
            out.print(f"[yellow]warning:[/] {warning}", highlight=False)
    rows = plan_rows(suite, selection, estimate, devices[0], max_fused, data_root_str)
    todo = [r for r in rows if r["estimate_s"] is not None]
    cost = plan_total(suite, todo, devices[0], n_workers, data_root_str) if todo else None
    if todo and save:
        write_plan(suite.dir, devices[0], n_workers, todo)
    if as_json:
        return print_json({"suite": suite.name, "path": str(suite.path), "design": lines, "device": devices[0],
                           "workers": n_workers, "max_fused": max_fused, "runs": rows, "cost": cost})
    labels = arm_labels(suite.arms, {row["arm"] for row in rows})
    fused = any("×" in (row["group"] or "") for row in rows)  # job numbers say something only for fused groups
    table = run_table(f"runs → {suite.results_dir}/runs/", ("arm", "seed", "run id", "status", "steps",
                                                             *(("job",) if fused else ()), "train", "eval"))
    for row in rows:
        est = [fmt_seconds(row[k]) if row[k] is not None else "-" for k in ("estimate_s", "eval_s")]
        table.add_row(labels[row["arm"]], str(row["seed"]), row["run_id"], row["status"],
                      f"{row['step']}/{row['steps']}", *((row["group"] or "-",) if fused else ()), *est)
    console.print(table)
    print_arm_legend(labels)
    if todo:
        jobs = len({r["group"] for r in todo})
        console.print(f"{len(todo)} runs in {jobs} jobs (≤ {max_fused} runs each) with {n_workers} workers on "
                      f"{devices[0]}: ≈ {fmt_seconds(cost['total_s'])} in all = training steps "
                      f"{fmt_seconds(cost['train_s'])} + evaluations {fmt_seconds(cost['eval_s'])} (each run's, "
                      f"{cost['evaluations']} in all, timed here and scaled to the suite's sample counts) + worker "
                      f"start-up {fmt_seconds(cost['startup_s'])} + up to {fmt_seconds(cost['one_time_s'])} once per "
                      "machine (reference features and the uniform-noise FID; nothing when they are cached). "
                      "Measured here; excludes decoding the dataset (cached after the first run).", highlight=False)
        console.print(f"estimate kept in {suite.dir.file('plan.json')}" if save else
                      "nothing written (--save keeps this estimate for `ganbench status`)", highlight=False)


def warn_before_evaluating(cfgs: list[TrainConfig], device: str, data_root: str | None) -> None:
    """Once, before training: what Inception metrics on a CPU will cost here (never changes them)."""
    from ganbench import devices
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
def status_command(suite_file: SuiteArg, results_root: ResultsOpt = Path("results"), as_json: JsonOpt = False) -> None:
    """Where every run of a suite stands (from the run directories; works for any executor): its
    step, whether it is evaluating (images done, ETA), and each arm's planned against measured time."""
    from ganbench.execution.costs import planned_vs_actual
    from ganbench.execution.sweep import plan_rows

    suite, selection, _ = load_selection(suite_file, results_root, None, None)
    try:
        rows = plan_rows(suite, selection, estimate=False, device="cpu")  # jobs of one run: no grouping needed
        comparison = planned_vs_actual(suite)
    except RunDirError as err:
        fail(str(err))
    counts: dict[str, int] = {}  # from the run files, as the rows (run_states calls any unfinished run pending)
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    if as_json:
        return print_json({"suite": suite.name, "counts": counts, "runs": rows, "planned_vs_measured": comparison})
    labels = arm_labels(suite.arms, {row["arm"] for row in rows})
    table = run_table(f"{suite.name}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())),
                       ("arm", "seed", "run id", "status", "steps", "now"))
    for row in rows:
        table.add_row(labels[row["arm"]], str(row["seed"]), row["run_id"], row["status"],
                      f"{row['step']}/{row['steps']}",
                      describe_phase(row["phase"]) or ("training" if row["status"] == "running" else ""))
    console.print(table)
    print_arm_legend(labels)
    if comparison is None:
        console.print("no estimate to compare with: `ganbench plan --save` (or `ganbench run`) records one in "
                      f"{suite.results_dir}/plan.json", highlight=False)
    elif comparison:
        table = Table(title="planned vs measured seconds per run (median of the arm's finished runs)")
        for column in ("arm", "finished", "planned", "measured", "measured / planned"):
            table.add_column(column)
        for arm, row in comparison.items():
            table.add_row(arm, str(row["finished"]), fmt_seconds(row["planned_s"]),
                          fmt_seconds(row["actual_s"]) if row["actual_s"] is not None else "-",
                          f"{row['actual_s'] / row['planned_s']:.2f}" if row["actual_s"] else "-")
        console.print(table)
