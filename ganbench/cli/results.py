"""`ganbench report`, `compare` and `tensorboard`: reading a suite's results (read-only)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer

from ganbench.cli.common import ResultsOpt, app, console, err_console, escape, fail, load_selection, print_json
from ganbench.cli.tables import arm_comparison_table, run_comparison_table


TENSORBOARD_EVERY_S = 30.0  # while training, event files are rewritten at most this often


def export_tensorboard(target: Path, logdir: Path | None = None) -> None:
    from ganbench.analysis.tensorboard import TensorBoardMissing, export
    from ganbench.rundir import RunDirError

    try:
        result = export(target, logdir)
    except (TensorBoardMissing, FileNotFoundError, RunDirError) as err:
        console.print(f"[yellow]warning:[/] no TensorBoard export: {err}", highlight=False)
        return
    console.print(f"TensorBoard: {result['written']} run(s) written, {result['unchanged']} unchanged → "
                  f"tensorboard --logdir {result['logdir']}", highlight=False)


def with_tensorboard(callback: Any, target: Path, logdir: Path | None = None) -> Any:
    """`callback` (a sweep's on_update, or train's progress) that also re-exports `target`'s changed
    runs to TensorBoard, at most every 30 s, once the target holds a run."""
    from ganbench.analysis.tensorboard import TensorBoardMissing, export
    from ganbench.rundir import CONFIG, RunDirError
    from ganbench.suitedir import SuiteDir

    last = [time.monotonic()]

    def wrapped(*args: Any) -> None:
        callback(*args)
        ready = SuiteDir(target).has_manifest() or (target / CONFIG).exists()
        if time.monotonic() - last[0] >= TENSORBOARD_EVERY_S and ready:
            last[0] = time.monotonic()
            try:
                export(target, logdir)
            except (TensorBoardMissing, RunDirError):
                pass  # said once at the end, by export_tensorboard

    return wrapped


@app.command("tensorboard")
def tensorboard_command(
    target: Annotated[Path, typer.Argument(help="A suite file (suites/quick.yaml), its results directory, or one "
                                                "run directory.")],
    logdir: Annotated[Optional[Path], typer.Option(help="Where the event files go (default: tensorboard/SUITE_NAME "
                                                   "here, where `run --tensorboard` writes too).")] = None,
    watch: Annotated[Optional[float], typer.Option(help="Export again every this many seconds (follow a sweep "
                                                   "while it trains; Ctrl-C stops).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rewrite every run, changed or not.")] = False,
    results_root: ResultsOpt = Path("results"),
) -> None:
    """Write TensorBoard event files from run directories: per-run scalars (training statistics,
    metrics), sample grids, and hparams (arm, seed, one boolean per hack) for the HParams view.
    JSONL stays the source of truth; unchanged runs are skipped. Needs the tensorboard extra:
    pip install 'ganbench\\[tensorboard]'."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ganbench.analysis.tensorboard import TensorBoardMissing, export, watch as watch_export
    from ganbench.rundir import RunDirError

    if target.suffix in (".yaml", ".yml"):
        suite, _, _ = load_selection(target, results_root, None, None)
        target = suite.results_dir
    try:
        if watch:
            def on_pass(result: dict[str, Any]) -> None:
                console.print(f"{time.strftime('%H:%M:%S')} {result['written']} written, {result['unchanged']} "
                              f"unchanged → {result['logdir']}", highlight=False)

            def on_wait(message: str) -> None:
                console.print(f"{time.strftime('%H:%M:%S')} {escape(message)}", highlight=False)

            try:
                watch_export(target, logdir, watch, on_pass, on_wait=on_wait)
            except KeyboardInterrupt:
                return
        with Progress(TextColumn("runs"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                      console=console, transient=True) as bar:
            task = bar.add_task("runs", total=None, info="")
            with _say_damaged_files():
                result = export(target, logdir, force,
                                lambda i, n, name: bar.update(task, completed=i, total=n, info=name))
    except (TensorBoardMissing, FileNotFoundError, RunDirError) as err:
        fail(str(err))
    console.print(f"{result['runs']} runs: {result['written']} written, {result['unchanged']} unchanged → "
                  f"tensorboard --logdir {result['logdir']}", highlight=False)


@app.command("wandb")
def wandb_command(
    target: Annotated[Path, typer.Argument(help="A suite file, its results directory, or one run directory.")],
    project: Annotated[str, typer.Option(help="The W&B project.")] = "ganbench",
    directory: Annotated[Path, typer.Option("--dir", help="Where W&B writes its run files (offline: sync them "
                                            "later with `wandb sync DIR/wandb/offline-run-*`).")] = Path("wandb-export"),
    mode: Annotated[str, typer.Option(help="offline (no account needed) or online (needs `wandb login`).")] = "offline",
    entity: Annotated[Optional[str], typer.Option(help="W&B entity (team or user); default: yours.")] = None,
    results_root: ResultsOpt = Path("results"),
) -> None:
    """Export runs to Weights & Biases: one W&B run per run (grouped by suite; config = knobs, arm, seed, hacks),
    history = training statistics and metrics at their steps, summary = final metrics. JSONL stays the source of
    truth; the results directory is only read. Needs the wandb extra: pip install 'ganbench\\[wandb]'."""
    from ganbench.analysis.wandb_export import WandbMissing, export
    from ganbench.rundir import RunDirError

    if target.suffix in (".yaml", ".yml"):
        suite, _, _ = load_selection(target, results_root, None, None)
        target = suite.results_dir
    try:
        with _say_damaged_files():
            result = export(target, project, directory, mode, entity)
    except (WandbMissing, FileNotFoundError, RunDirError, ValueError) as err:
        fail(str(err))
    console.print(f"{result['runs']} runs → W&B project {result['project']} ({result['mode']}, {result['directory']})",
                  highlight=False)


@app.command("report")
def report_command(
    target: Annotated[Path, typer.Argument(help="A suite file (suites/quick.yaml) or its results directory.")],
    out: Annotated[Optional[Path], typer.Option(help="Report directory (default: reports/SUITE_NAME).")] = None,
    metric: Annotated[Optional[list[str]], typer.Option("--metric", help=(
        "Show this metric (repeatable), e.g. fid_inf_fmnist. The verdict metrics are always shown too: the "
        "family of comparisons (and every interval's width) is the suite's, whatever is shown."))] = None,
    format_: Annotated[str, typer.Option("--format", help="Comma-separated: md, tex, csv.")] = "md,tex,csv",
    update_readme: Annotated[Optional[Path], typer.Option(
        help="Also copy the headline tables into this README, between <!-- ganbench:NAME:start/end --> markers.")] = None,
    results_root: ResultsOpt = Path("results"),
) -> None:
    """Tables with CIs, effects against the reference arm, figures and findings → reports/SUITE_NAME/README.md."""
    from ganbench.analysis.report import build_report, update_readme as fill_readme
    from ganbench.rundir import RunDirError

    if target.suffix in (".yaml", ".yml"):
        suite, _, _ = load_selection(target, results_root, None, None)
        results_dir = suite.results_dir
        _warn_if_stale(suite)
    else:
        results_dir = target
    name = results_dir.resolve().name
    try:
        with _say_damaged_files():
            readme = build_report(results_dir, out or Path("reports") / name, metric, format_.split(","),
                                  lambda what: err_console.print(f"report: {what}…", highlight=False))
        if update_readme:
            fill_readme(update_readme, readme.parent, name)
    except (FileNotFoundError, ValueError, RunDirError) as err:
        fail(str(err))
    console.print(f"[green]report[/] → {readme}", highlight=False)


@contextlib.contextmanager
def _say_damaged_files() -> Iterator[None]:
    """Damaged files met on the way (a `CorruptLineWarning` names each) are said once each on
    stderr, also when the command then fails; the command goes on with the rest."""
    import warnings

    from ganbench.analysis.results import ReportNote
    from ganbench.rundir import CorruptLineWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CorruptLineWarning)
        warnings.simplefilter("always", ReportNote)
        try:
            yield
        finally:
            for kind, category in (("warning", CorruptLineWarning), ("note", ReportNote)):
                for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, category)):
                    err_console.print(f"[yellow]{kind}:[/] {escape(message)}", highlight=False)


def _warn_if_stale(suite: Any) -> None:
    """A report reads the runs suite.json names, which the last `ganbench run` wrote: say so when
    the suite file has changed since (other run ids), so stale runs are not taken for the suite's."""
    from ganbench.rundir import RunDirError
    from ganbench.suitedir import MANIFEST

    try:
        recorded = {r.run_id for r in suite.dir.read_manifest().runs}
    except (FileNotFoundError, RunDirError):
        return
    now = {r.run_id for r in suite.runs}
    if recorded != now:
        err_console.print(f"[yellow]warning:[/] {suite.dir.file(MANIFEST)} was written for another version of "
                          f"{suite.path}: {len(recorded - now)} of its {len(recorded)} runs are not in the suite now "
                          f"and {len(now - recorded)} of the suite's {len(now)} runs are not in it. The report shows "
                          "the recorded runs; `ganbench run` trains the suite as it is now (and records it).",
                          highlight=False)


@app.command("compare")
def compare_command(
    a: Annotated[str, typer.Argument(help="A run directory, or an arm name with --suite.")],
    b: Annotated[str, typer.Argument(help="A run directory, or an arm name with --suite (the reference).")],
    suite_file: Annotated[Optional[Path], typer.Option("--suite", help="Compare arms of this suite.")] = None,
    metric: Annotated[str, typer.Option(help="Metric for arm comparisons.")] = "fid_fmnist",
    results_root: ResultsOpt = Path("results"),
    as_json: Annotated[bool, typer.Option("--json", help="The comparison as JSON (for scripts).")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Arms: the full comparison table as CSV (for scripts).")] = False,
) -> None:
    """Two runs side by side (differing knobs, final metrics) or two arms over seeds (difference with CI).
    Arm names that start with '-' (leave-one-out arms) follow a `--`: `compare --suite S -- -kernel_4 all`."""
    from ganbench.analysis.compare import compare_arms, compare_runs

    try:
        if suite_file is None:
            result = compare_runs(Path(a), Path(b))
            if as_json or as_csv:
                return print_json(result)
            return console.print(run_comparison_table(a, b, result))
        suite, _, _ = load_selection(suite_file, results_root, None, None)
        with _say_damaged_files():
            frame = compare_arms(suite.results_dir, a, b, metric)
    except (FileNotFoundError, ValueError, KeyError) as err:
        fail(str(err))
    if as_csv:
        return print(frame.to_csv(index=False), end="")
    if as_json:
        return print_json(frame.to_dict(orient="records"))
    console.print(arm_comparison_table(frame, a, b, metric))
