"""What every command shares: the Typer app, the consoles, common options, the error exit and loading a suite."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer
from typer.core import TyperGroup


class PlainHelpGroup(TyperGroup):
    """The `ganbench` group, whose own help (`ganbench --help`, or no command) is click's plain layout:
    rich's markdown help imports markdown-it, pygments and rich's traceback, 2.5× the start-up of
    `import typer` alone, to list commands. Each command's help stays rich (panels, markdown)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        mode, self.rich_markup_mode = self.rich_markup_mode, None
        try:
            super().format_help(ctx, formatter)
        finally:
            self.rich_markup_mode = mode


app = typer.Typer(
    cls=PlainHelpGroup,
    help="Measure which GAN training hacks matter: toggle hacks, train DCGANs, compare them with numbers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # help text is reflowed to the terminal (a docstring's line breaks are not kept)
    add_completion=True,  # --install-completion / --show-completion [bash|zsh|fish|powershell]
)


class LazyConsole:
    """A rich `Console`, made on first use: importing rich's console costs a tenth of `ganbench --help`,
    which prints through click. Everything else is the console's own (`console.print`, `console.status`…)."""

    def __init__(self, **options: Any) -> None:
        self._options: dict[str, Any] = options
        self._console: Any = None
        self._size: tuple[str | None, str | None] = (None, None)

    def real(self) -> Any:
        """The console, made again when $COLUMNS or $LINES changed since (rich reads them when a console is
        made; one made at import, as before, followed the environment of each command run in a process)."""
        size = (os.environ.get("COLUMNS"), os.environ.get("LINES"))
        if self._console is None or size != self._size:
            from rich.console import Console

            self._console, self._size = Console(**self._options), size
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real(), name)

    # `with console:` (rich's Live and Progress buffer output so) looks its methods up on the type.
    def __enter__(self) -> Any:
        return self.real().__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.real().__exit__(*exc)


console = LazyConsole()
err_console = LazyConsole(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        import torch_fidelity

        from ganbench import __version__

        print(f"ganbench {__version__} (torch-fidelity {torch_fidelity.__version__})")
        raise typer.Exit()


@app.callback()
def _global_options(
    plugin: Annotated[Optional[list[str]], typer.Option(
        "--plugin", "-p", metavar="MODULE",
        help="Import MODULE first (repeatable): a module on the Python path, or a .py file, that registers "
             "your hacks, metrics, datasets or executors. Also read from $GANBENCH_PLUGINS (comma-separated) and from "
             "installed packages' 'ganbench.plugins' entry points; workers, Ray and SLURM tasks load the same.")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print ganbench's version and exit.")] = False,
) -> None:
    """Measure which GAN training hacks matter: toggle hacks, train DCGANs, compare them with numbers."""
    from ganbench.plugins import load_plugins

    with exit_on_error():
        load_plugins(plugin or ())


def escape(text: str) -> str:
    """rich's markup escape (imported when a message is printed, not when the CLI starts)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)  # messages hold [brackets]
    raise typer.Exit(code)


@contextlib.contextmanager
def exit_on_error(*errors: type[BaseException], code: int = 2) -> Iterator[None]:
    """The one mapping from a library error to the CLI's exit: its message on stderr, exit `code`
    (2: the request was wrong, nothing ran; 1: work failed). By default the errors a bad suite,
    knob, results file or dataset raise: SuiteError, ConfigError and CorruptFile are ValueErrors."""
    from ganbench.data.datasets import DataNotFoundError
    from ganbench.rundir import RunDirError

    try:
        yield
    except errors or (ValueError, RunDirError, DataNotFoundError) as err:
        fail(str(err), code)


def data_root_str(data_root: Path | None, here: bool = True) -> str | None:
    """--data-root as the libraries take it (None: the default search order). A directory that does not
    exist here is refused (it was once ignored without a word, and the default searched instead), unless
    `here` is False: a cluster's nodes read it, not this machine."""
    if data_root and here and not data_root.is_dir():
        fail(f"--data-root {data_root}: no such directory (leave it out to search $GANBENCH_DATA, ~/.cache/ganbench "
             "and /usr/share/datasets)")
    return str(data_root) if data_root else None


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (for scripts) instead of tables.")]


TensorBoardOpt = Annotated[bool, typer.Option("--tensorboard", help=(
    "Also write TensorBoard event files from the run files, every 30 s while training and at the end, to "
    "tensorboard/SUITE_NAME (`run`, as `ganbench tensorboard`) or OUT/tensorboard (`train`); needs the tensorboard extra: pip install 'ganbench[tensorboard]'."))]


def print_json(value: Any) -> None:
    """JSON on stdout, unwrapped (rich would wrap it at the terminal's width)."""
    import json

    typer.echo(json.dumps(value, indent=2, default=str))


SuiteArg = Annotated[Path, typer.Argument(help="A suite YAML file, e.g. suites/quick.yaml.")]
OnlyOpt = Annotated[Optional[list[str]], typer.Option("--only", help=(
    "Only this arm (repeatable). An arm that starts with '-' (leave-one-out) is written --only=-kernel_4."))]
SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", metavar="KNOB=VALUE", help="Override a knob in every run of the suite (repeatable; wins over the suite's "
    "base, hacks and arms' `set`). Other knobs make other runs: they train beside the suite's own.")]
SeedsOpt = Annotated[Optional[str], typer.Option(help="Only these seeds, comma-separated (e.g. 0,1).")]
AllowSlowPrecisionOpt = Annotated[bool, typer.Option("--allow-slow-precision", help=(
    "Train bf16 on a CPU without native bf16 (no AMX / AVX512-BF16) anyway: it is emulated there, 11–15× slower "
    "than fp32. Without it such a run is refused before any work."))]
ResultsOpt = Annotated[Path, typer.Option(help="Results root; the suite's runs go to ROOT/SUITE_NAME/.")]
# --device in the two forms commands take it: one device (train, eval, selftest), or a sweep's devices.
DeviceOpt = Annotated[Optional[str], typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")]
DevicesOpt = Annotated[str, typer.Option(help=(
    "auto, cpu, cuda (all GPUs) or cuda:0,1: the devices a sweep's runs are spread over (`plan` times its "
    "estimate on the first)."))]
DataRootOpt = Annotated[Optional[Path], typer.Option(help=(
    "Directory with the dataset files, searched first (then $GANBENCH_DATA, ~/.cache/ganbench, "
    "/usr/share/datasets); one holding only part of a dataset's files is an error."))]


def seed_list(seeds: str | None) -> tuple[int, ...]:
    """--seeds 0,1 → (0, 1); a clear error naming the option otherwise."""
    if not seeds:
        return ()
    try:
        return tuple(int(s) for s in seeds.split(","))
    except ValueError:
        fail(f"--seeds {seeds!r}: expected seeds separated by commas, e.g. --seeds 0,1")
    return ()


def load_selection(suite_file: Path, results_root: Path, only: list[str] | None, seeds: str | None,
                   device: str = "cpu", record_budget: bool = False,
                   assignments: list[str] | None = None) -> tuple[Any, Any, list[str]]:
    """(suite, selection, devices) from the CLI's words (`assignments`: --set knob=value, over every
    arm), or a clear error and exit code 2. Writes nothing unless `record_budget` (see
    `load_planned_suite`)."""
    from ganbench.config import parse_assignments
    from ganbench.devices import expand
    from ganbench.execution.plan import load_planned_suite
    from ganbench.execution.sweep import Selection, select_runs
    from ganbench.rundir import RunDirError

    chosen_seeds = seed_list(seeds)
    with exit_on_error(ValueError, RunDirError):  # SuiteError, ConfigError and CorruptFile are ValueErrors
        try:
            suite = load_planned_suite(suite_file, results_root, record=record_budget,
                                       overrides=parse_assignments(assignments or ()))
        except ValueError as err:
            hint = _plugins_hint(suite_file, results_root)
            if hint:
                fail(f"{err}\n{hint}")
            raise
        by_label = {label: arm for arm, label in arm_labels(suite.arms).items()}
        selection = Selection(tuple(by_label.get(name, name) for name in only or ()), chosen_seeds)
        select_runs(suite, selection)
        devices = expand(device)
    return suite, selection, devices


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the interrupt that stops a sweep cleanly (its message says which signal came)."""


def _plugins_hint(suite_file: Path, results_root: Path) -> str | None:
    """When a suite fails to load and its last sweep had plugins that are not loaded now (a hack the
    suite names lives in one): which, and the -p that loads them. Read from suite.json; never imported."""
    from ganbench.plugins import loaded_plugins
    from ganbench.rundir import RunDirError
    from ganbench.study.suite import suite_results_dir
    from ganbench.suitedir import SuiteDir

    try:
        recorded = SuiteDir(suite_results_dir(suite_file, results_root)[0]).read_manifest().plugins
    except (ValueError, OSError, RunDirError):
        return None
    missing = [p for p in recorded if p not in loaded_plugins()]
    return ("its results were made with plugin(s) " + ", ".join(missing) + ": load them again with "
            + " ".join(f"-p {p}" for p in missing) + " (ganbench -p MODULE COMMAND …)") if missing else None


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler, `kill`, a closing terminal) stops the sweep as Ctrl-C does: workers
    are stopped, every unfinished run is recorded interrupted, and the same command resumes."""
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


ARM_NAME_WIDTH = 22  # longer arm names (factorial arms list their hacks) show as 'part:#N' in tables


def arm_labels(arms: list[str], shown: set[str] | None = None) -> dict[str, str]:
    """Arm name → what a table shows: the name, or 'part:#N' (N: its place among the suite's arms,
    which `--only` also accepts) for a name too long for a column; `print_arm_legend` prints
    those in full below."""
    labels = {}
    for i, arm in enumerate(arms, start=1):
        if shown is None or arm in shown:
            part = arm.split(":", 1)[0] + ":" if ":" in arm else ""
            labels[arm] = arm if len(arm) <= ARM_NAME_WIDTH else f"{part}#{i}"
    return labels
