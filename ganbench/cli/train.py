"""`ganbench train` and `ganbench eval`: one run, trained or evaluated again."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ganbench.errors import ConfigError
from ganbench.cli.common import (DataRootOpt, DeviceOpt, AllowSlowPrecisionOpt, data_root_str, escape, exit_on_error, TensorBoardOpt, app, console, fail,
                                 sigterm_as_interrupt)
from ganbench.cli.plan import warn_before_evaluating
from ganbench.cli.results import export_tensorboard, with_tensorboard
from ganbench.cli.tables import describe_phase

if TYPE_CHECKING:  # annotations only: imported when a function runs (a fast `ganbench --help`)
    from ganbench.config import TrainConfig


@app.command("train")
def train_command(
    preset: Annotated[str, typer.Option(help="Starting recipe: vanilla (every hack off), dcgan, ganhacks, modern, "
                                        "or any registered preset (`ganbench hacks` lists them).")] = "dcgan",
    hack: Annotated[Optional[list[str]], typer.Option("--hack", help="Add a hack (repeatable); see `ganbench hacks`.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a knob, knob=value (repeatable; wins over everything).")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Training iterations (shortcut for --set steps=N).")] = None,
    dataset: Annotated[Optional[str], typer.Option(
        # Written out, not read from the registry: importing it would cost every `ganbench --help` (a test
        # keeps this list equal to the built-in datasets).
        help="Dataset: fashion-mnist (default), mnist, cifar10, celeba, image-folder, fake, or one a plugin "
             "registers (`ganbench data list` lists them all).")] = None,
    out: Annotated[Path, typer.Option(help="Run directory (created; an unfinished run of the same config there "
                                           "is resumed, another config is refused).")] = Path("results/train"),
    fresh: Annotated[bool, typer.Option("--fresh", help="Discard whatever run --out holds and start over.")] = False,
    device: DeviceOpt = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (shortcut for --set seed=N).")] = None,
    data_root: DataRootOpt = None,
    tensorboard: TensorBoardOpt = False,
    allow_slow_precision: AllowSlowPrecisionOpt = False,
) -> None:
    """Train one DCGAN and write config.json, stats.jsonl, samples/ and status.json to --out.

    Config precedence, lowest first: defaults < --preset < --hack (in order) < --steps/--dataset/
    --device/--seed < --set.
    """
    from ganbench import devices
    from ganbench.config import parse_assignments
    from ganbench.data.cache import describe
    from ganbench.hacks import resolve

    with exit_on_error(ConfigError):
        shortcuts: dict[str, Any] = {k: v for k, v in (("steps", steps), ("dataset", dataset), ("device", device),
                                                       ("seed", seed)) if v is not None}
        overrides = {**shortcuts, **parse_assignments(set_ or [])}
        cfg, names = resolve(preset, hack or [], overrides)
        device_name = devices.resolve(cfg.device).type  # a missing GPU is said now, before any work
        problem = devices.slow_precision_problem({cfg.precision}, [device_name])
        if problem and not allow_slow_precision:
            raise ConfigError(problem)
    _announce_dataset_defaults(cfg, {**overrides})
    console.print(f"[bold]training[/] preset={preset} hacks={', '.join(names) or '-'} steps={cfg.steps} → {out}",
                  highlight=False)
    warn_before_evaluating([cfg], cfg.device, data_root_str(data_root))
    status = _train_with_progress(cfg, out, preset, names, data_root, fresh, tensorboard)
    if status["status"] != "completed":
        fail(f"run {status['status']}: {status.get('error')}", code=1)
    console.print(f"[green]completed[/] {cfg.steps} steps in {status.get('wall_s', 0):.1f} s → {out}", highlight=False)
    if status.get("data"):
        console.print(f"data: {describe(status['data'])}", highlight=False)


def _train_with_progress(cfg: TrainConfig, out: Path, preset: str, names: tuple[str, ...], data_root: Path | None,
                         fresh: bool, tensorboard: bool) -> dict[str, Any]:
    """`train()` under a progress bar (losses, or the evaluation's images); errors become exit codes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ganbench.data.datasets import DataNotFoundError
    from ganbench.rundir import CHECKPOINT, CONFIG, RunDirError, STATUS
    from ganbench.training.loop import train

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

        progress = with_tensorboard(on_progress, out, out / "tensorboard") if tensorboard else on_progress
        try:
            with sigterm_as_interrupt(), exit_on_error(ConfigError, DataNotFoundError, RunDirError):
                return train(cfg, out, preset=preset, hacks=names, data_root=data_root, progress=progress, fresh=fresh)
        except typer.Exit:  # a mapped error, already said
            raise
        except KeyboardInterrupt:
            checkpoint = out / CHECKPOINT
            fail(f"interrupted; run the same command again to resume from {checkpoint}" if checkpoint.exists() else
                 "interrupted before the first checkpoint; the same command starts the run again", code=130)
        except Exception as err:
            details = f" (details in {out / STATUS})" if (out / STATUS).exists() else ""
            fail(f"run failed: {type(err).__name__}: {err}{details}", code=1)
        finally:
            if tensorboard and (out / CONFIG).exists():
                export_tensorboard(out, out / "tensorboard")
    return {}


def _announce_dataset_defaults(cfg: TrainConfig, explicit: dict[str, Any]) -> None:
    """One line when the dataset chose the network (e.g. --dataset cifar10 → the 32-px colour net)."""
    from ganbench.data.datasets import get_dataset
    from ganbench.hacks import dataset_defaults

    applied = dataset_defaults(cfg.dataset, explicit)
    if applied:
        console.print(f"{get_dataset(cfg.dataset).describe_net_defaults(applied)}, the dataset's default; "
                      "--set to change", highlight=False)


@app.command("eval")
def eval_command(
    target: Annotated[Path, typer.Argument(help="A run directory (config.json and checkpoint.pt), a folder of images, "
                                           "or a generator file (z → images) trained elsewhere: a torch.export .pt2, or TorchScript.")],
    metrics: Annotated[Optional[str], typer.Option(help="Comma-separated metrics (default: the run's own; else "
                                                   "the dataset's 'auto' set).")] = None,
    samples: Annotated[Optional[int], typer.Option(help="Generated images (default: the run's eval_samples, 5000 "
                                                   "for a generator file; every image of a folder).")] = None,
    reference_samples: Annotated[Optional[int], typer.Option(
        help="Real reference images (default: the run's eval_reference_samples; 0 = whole split).")] = None,
    device: DeviceOpt = "auto",
    data_root: DataRootOpt = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KNOB=VALUE", help="A folder or generator: the reference and the generator's knobs, e.g. "
        "--set dataset=cifar10, --set latent_dist=gaussian, --set latent_dim=128, --set data_range=-1_1, "
        "--set eval_split=test, --set seed=3.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="A folder or generator: also append the rows to this "
                                                "JSON-lines file (else nothing is written).")] = None,
) -> None:
    """Re-evaluate a run's final generator (rows appended to its metrics.jsonl, source: ganbench eval), or
    score a folder of images or a generator file with the same metrics, references and provenance. A
    .pt2 (torch.export.save) is loaded without unpickling anything (one holding pickled or compiled parts
    is refused); loading TorchScript runs its program: score only TorchScript files you trust."""
    from rich.table import Table

    from ganbench.data.datasets import DataNotFoundError
    from ganbench.reevaluate import evaluate_run
    from ganbench.rundir import CONFIG

    data_root_str(data_root)  # a --data-root that is not there is said first
    try:
        if (target / CONFIG).exists():
            rows = evaluate_run(target, metrics=metrics, samples=samples, reference_samples=reference_samples,
                                device=device, data_root=data_root)
        else:
            rows = _score_external(target, metrics, samples, reference_samples, device, data_root, set_ or [], out)
    except (ConfigError, DataNotFoundError, FileNotFoundError, ValueError, RuntimeError) as err:
        fail(str(err))
    table = Table(title=f"{target}" + (f" at step {rows[0]['step']}" if rows and "step" in rows[0] else ""))
    for column in ("metric", "value", "better", "extractor", "generated", "reference"):
        table.add_column(column)
    for row in rows:
        better = {True: "higher", False: "lower", None: "-"}[row["higher_is_better"]]
        table.add_row(row["metric"], f"{row['value']:.5g}", better, row["extractor"], str(row["samples_generated"]),
                      f"{row['reference_samples']} ({row['reference_split']})")
    console.print(table)


def _score_external(target: Path, metrics: str | None, samples: int | None, reference_samples: int | None,
                    device: str, data_root: Path | None, assignments: list[str], out: Path | None) -> list[dict]:
    """`ganbench eval FOLDER|G.pt`: the reference from the dataset's defaults and --set; rows to --out."""
    from ganbench import devices
    from ganbench.checks import check_resolved
    from ganbench.config import TrainConfig, parse_assignments
    from ganbench.files import append_jsonl
    from ganbench.hacks import dataset_defaults
    from ganbench.metrics.external import evaluate_external
    from ganbench.metrics.reference import Reference

    knobs = parse_assignments(assignments)
    if reference_samples is not None:
        knobs["eval_reference_samples"] = reference_samples
    dataset = str(knobs.get("dataset", TrainConfig.dataset))
    cfg = TrainConfig().replace(**{**dataset_defaults(dataset, knobs), **knobs})
    check_resolved(cfg.replace(metrics="none"))
    rows = evaluate_external(target, metrics or cfg.metrics, Reference.for_config(cfg, data_root_str(data_root)), cfg,
                             samples or cfg.eval_samples, devices.resolve(device),
                             range_declared=bool({"data_range", "output_activation"} & set(knobs)))
    note = rows[0]["scored"].get("note") if rows else None
    if note:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if out is not None:
        for row in rows:
            append_jsonl(out, row)
    return rows
