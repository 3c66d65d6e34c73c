"""`ganbench run`: train every unfinished run of a suite, with progress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ganbench.errors import ConfigError
from ganbench.cli.common import (DataRootOpt, DevicesOpt, AllowSlowPrecisionOpt, escape, OnlyOpt, ResultsOpt, SeedsOpt, SetOpt, SuiteArg,
                                 TensorBoardOpt, Terminated, app, console,
                                 data_root_str, exit_on_error, fail, load_selection, sigterm_as_interrupt)
from ganbench.cli.plan import warn_before_evaluating
from ganbench.cli.progress import sweep_progress
from ganbench.cli.results import export_tensorboard, with_tensorboard


CLUSTER = "Ray and SLURM (--executor ray | slurm)"
NoSelftestOpt = Annotated[bool, typer.Option("--no-selftest", help=(
    "On a GPU, skip the smoke selftest that `run` otherwise runs once per GPU model, torch and ganbench version "
    "before its first group (about a minute; `ganbench selftest --part smoke` runs it by hand)."))]
FreshOpt = Annotated[bool, typer.Option("--fresh", help=(
    "Start the selected runs (all, or --only/--seeds) over, e.g. after changing a hack's code; their earlier files "
    "move to each run's replaced/ folder, nothing is deleted."))]


@app.command("run")
def run_command(
    suite_file: SuiteArg,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Parallel runs of the local executor (default: one per CPU core, 4 per GPU).")] = None,
    device: DevicesOpt = "auto",
    only: OnlyOpt = None,
    seeds: SeedsOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would run, train nothing.")] = False,
    data_root: DataRootOpt = None,
    results_root: ResultsOpt = Path("results"),
    executor: Annotated[str, typer.Option(metavar="<name>", help="local (worker processes here), ray (tasks on a Ray cluster), slurm (one SLURM array job "
                                          "through submitit; results on a shared filesystem), or a plugin's (`register_executor`).")] = "local",
    max_fused: Annotated[Optional[int], typer.Option(min=1, help="Most runs trained together as one fused network (runs "
                                                     "of one structure). Local: default 1 on CPU, sized from free "
                                                     "memory on a GPU; Ray: default 1 (one run per task).")] = None,
    address: Annotated[Optional[str], typer.Option(rich_help_panel="Ray (--executor ray)", help="Ray: 'auto' (the cluster this machine is in), "
                                                   "ray://HOST:10001 (Ray Client), or unset for a new local Ray.")] = None,
    cpus_per_run: Annotated[float, typer.Option("--cpus-per-task", "--cpus-per-run", rich_help_panel=CLUSTER, help=(
        "Ray: CPUs each task (a run, or a fused group with --max-fused) reserves. Torch threads are the suite's "
        "`threads` (default 1), so numbers never depend on this."))] = 1.0,
    gpus_per_run: Annotated[float, typer.Option("--gpus-per-task", "--gpus-per-run", rich_help_panel=CLUSTER, help=(
        "Ray: GPUs each task asks for; 0.25 puts 4 tasks on a GPU, 0 trains on CPU. With --max-fused K a task "
        "trains a fused group of up to K runs."))] = 0.0,
    max_retries: Annotated[int, typer.Option(rich_help_panel="Ray (--executor ray)", help="Ray: restarts of a run whose worker died (it resumes from "
                                             "its checkpoint); failing runs are not retried.")] = 3,
    ray_results: Annotated[str, typer.Option(rich_help_panel="Ray (--executor ray)", help="Ray: how run files reach the results directory: shared "
                                             "(every node mounts it), gather (pulled through the driver) or auto.")] = "auto",
    slurm_partition: Annotated[Optional[str], typer.Option(rich_help_panel="SLURM (--executor slurm)", help="SLURM: partition of the array job.")] = None,
    slurm_time: Annotated[int, typer.Option(rich_help_panel="SLURM (--executor slurm)", help="SLURM: time limit per array task, minutes (a task that reaches it "
                                            "is requeued and resumes from its checkpoints).")] = 24 * 60,
    slurm_mem_gb: Annotated[Optional[float], typer.Option(rich_help_panel="SLURM (--executor slurm)", help="SLURM: memory per task, GB.")] = None,
    slurm_parallelism: Annotated[int, typer.Option(rich_help_panel="SLURM (--executor slurm)", help="SLURM: most array tasks running at once.")] = 64,
    slurm_cluster: Annotated[str, typer.Option(rich_help_panel="SLURM (--executor slurm)", help="SLURM: slurm (sbatch), or local (submitit's local executor: "
                                               "the same code as subprocesses here, for trying it out).")] = "slurm",
    tensorboard: TensorBoardOpt = False,
    set_: SetOpt = None,
    fresh: FreshOpt = False,
    allow_slow_precision: AllowSlowPrecisionOpt = False,
    no_selftest: NoSelftestOpt = False,
) -> None:
    """Train every unfinished run of a suite (the same command resumes); one step of each network structure is
    timed first, then the planned total and an ETA are printed. Executors: local processes, Ray, SLURM."""
    from ganbench.execution.executors import ExecutorOptions

    options = ExecutorOptions(  # checked before the suite is read
        kind=executor, data_root=data_root_str(data_root, executor == "local"), max_fused=max_fused,
        address=address, cpus_per_task=cpus_per_run, gpus_per_task=gpus_per_run, max_retries=max_retries,
        ray_results=ray_results, slurm_partition=slurm_partition, slurm_time_min=slurm_time,
        slurm_mem_gb=slurm_mem_gb, slurm_parallelism=slurm_parallelism, slurm_cluster=slurm_cluster)
    with exit_on_error():
        options.check()
    suite, selection, devices = load_selection(suite_file, results_root, only, seeds, device, not dry_run, set_)
    todo = _announce(suite, selection, options, devices, dry_run, fresh, allow_slow_precision)
    if dry_run:
        return
    if options.kind == "local" and todo:
        _before_training(todo, devices, options.data_root, no_selftest)
    states = _sweep(suite, selection, todo, options, workers, devices, tensorboard, fresh, allow_slow_precision)
    if not _summarise(states):
        raise typer.Exit(1)


def _announce(suite: Any, selection: Any, options: Any, devices: list[str], dry_run: bool,
              fresh: bool = False, allow_slow_precision: bool = False) -> list[Any]:
    """The sweep's first line (and, with --dry-run, what it would train); the runs still to train. bf16 on a
    CPU without it is refused before anything else: there the sweep would take 11–15× longer."""
    import dataclasses

    from ganbench.execution.sweep import reference_twin_warnings, refuse_slow_precision, run_states, select_runs
    from ganbench.rundir import FINAL

    states = run_states(suite, select_runs(suite, selection))
    todo = [dataclasses.replace(s, step=0, status="pending") for s in states] if fresh else \
        [s for s in states if s.status not in FINAL]
    if options.kind == "local":  # a cluster's nodes are other CPUs
        with exit_on_error():
            refuse_slow_precision([s.run for s in todo], devices, allow_slow_precision or dry_run)
    console.print(f"[bold]{suite.name}[/]: {len(states)} runs, {len(states) - len(todo)} already finished, "
                  f"{len(todo)} to train on {options.where(devices)} → {suite.results_dir}"
                  + (" (--fresh: each run's earlier files move to its replaced/ folder)" if fresh else ""),
                  highlight=False)
    for warning in reference_twin_warnings(suite):
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if dry_run:
        for state in todo:
            console.print(f"  would train {state.run.run_id}  {state.run.arm} seed {state.run.seed}", highlight=False)
    return todo


def _before_training(todo: list[Any], devices: list[str], data_root: str | None, no_selftest: bool) -> None:
    """What a local sweep checks and says before its workers start: the smoke selftest on a GPU, the cost
    of Inception metrics on a CPU."""
    if not no_selftest:
        _smoke_selftest(devices, data_root)
    warn_before_evaluating([s.run.config for s in todo], devices[0], data_root)


def _smoke_selftest(devices: list[str], data_root: str | None) -> None:
    """On a GPU, the smoke selftest before the first group (once per GPU model, torch and ganbench version,
    remembered in the cache): a sweep whose engine fails it is refused, saying why."""
    from ganbench.data.datasets import cache_dir
    from ganbench.selftest.runner import SelftestFailed, smoke_gate

    for device in dict.fromkeys(d for d in devices if d.startswith("cuda")):
        def starting(name: str, device: str = device) -> None:
            console.print(f"smoke selftest on {device} ({name}; once per GPU model and version, --no-selftest skips "
                          "it)…", highlight=False)

        with exit_on_error(SelftestFailed):
            said = smoke_gate(device, cache_dir() / "selftest", data_root, starting)
        if said:
            console.print(f"  {escape(said)}", highlight=False)


def _sweep(suite: Any, selection: Any, todo: list[Any], options: Any, workers: int | None, devices: list[str],
           tensorboard: bool, fresh: bool = False, allow_slow_precision: bool = False) -> list[Any]:
    """Train the sweep with a progress display; errors become exit codes (130 after Ctrl-C or SIGTERM)."""
    from ganbench.data.datasets import DataNotFoundError
    from ganbench.execution.executors import make_executor
    from ganbench.execution.local import WorkerStartError
    from ganbench.execution.ray import RayExecutorError
    from ganbench.execution.slurm import SlurmExecutorError
    from ganbench.execution.sweep import run_suite
    from ganbench.rundir import RunDirError

    with exit_on_error(RayExecutorError, SlurmExecutorError):
        runner = make_executor(options, suite.results_dir)
    with sweep_progress(console, todo) as progress:
        on_update = with_tensorboard(progress.update, suite.results_dir) if tensorboard else progress.update
        try:
            with (sigterm_as_interrupt(), exit_on_error(ConfigError, DataNotFoundError, RayExecutorError, RunDirError,
                                                        WorkerStartError),
                  exit_on_error(SlurmExecutorError, code=1)):
                # (a SLURM submission that failed trained nothing: exit 1, as a failed sweep)
                return run_suite(suite, selection, workers, devices, options.data_root, on_update, progress.data,
                                 runner, options.max_fused, fresh, allow_slow_precision, progress.timing,
                                 progress.planned)
        except KeyboardInterrupt as stop:
            fail(f"{'stopped by SIGTERM' if isinstance(stop, Terminated) else 'interrupted (Ctrl-C)'}; run the same "
                 "command again to resume (finished runs are kept)", code=130)
        finally:
            if tensorboard:
                export_tensorboard(suite.results_dir)
    return []


def _summarise(states: list[Any]) -> bool:
    """Counts, then every run that did not complete with its error; False when any failed or was interrupted."""
    from ganbench.execution.sweep import results_summary

    counts = results_summary(states)
    console.print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())), highlight=False)
    for state in states:
        if state.status != "completed":
            console.print(f"[yellow]{state.status}[/] {state.run.run_id} {state.run.arm} seed {state.run.seed}: "
                          f"{escape(str(state.error))}", highlight=False)
    if counts.get("busy"):
        console.print(f"{counts['busy']} run(s) are being trained by another process (see above); "
                      "`ganbench status` shows them when they finish", highlight=False)
    return not (counts.get("failed") or counts.get("interrupted"))
