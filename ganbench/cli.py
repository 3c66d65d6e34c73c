"""`ganbench` command line: each command parses its options, then calls one library function."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ganbench.config import ConfigError, TrainConfig, knob_choices, knob_docs, parse_assignments
from ganbench.data import DataNotFoundError

app = typer.Typer(
    help="Measure which GAN training hacks matter: toggle hacks, train DCGANs, compare them with numbers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@app.command("hacks")
def hacks_command(
    tag: Annotated[Optional[str], typer.Option(help="Only hacks with this tag.")] = None,
) -> None:
    """List the registered hacks (name, tags, knobs they set, source) and the presets."""
    from ganbench.hacks import HACKS, PRESETS

    table = Table(title=f"{len(HACKS)} registered hacks", show_lines=True)
    for column in ("name", "tags", "sets", "summary", "source"):
        table.add_column(column, overflow="fold")
    for hack in HACKS.values():
        if tag and tag not in hack.tags:
            continue
        sets = "\n".join(f"{k}={v}" for k, v in hack.sets.items())
        table.add_row(hack.name, ", ".join(hack.tags), sets, hack.summary, hack.source)
    console.print(table)
    for name, members in PRESETS.items():
        console.print(f"[bold]preset {name}[/]: {', '.join(members) or '(every hack off)'}", highlight=False)


@app.command("knobs")
def knobs_command() -> None:
    """List every TrainConfig knob with its default ("off" value), allowed values and unit."""
    table = Table(title="TrainConfig knobs (set with --set knob=value)")
    for column in ("knob", "default", "allowed", "meaning"):
        table.add_column(column, overflow="fold")
    docs, defaults = knob_docs(), TrainConfig().to_dict()
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
    dataset: Annotated[Optional[str], typer.Option(help="Dataset: fashion-mnist (default) or fake.")] = None,
    out: Annotated[Path, typer.Option(help="Run directory (created; an unfinished run there is resumed).")] = Path("results/train"),
    device: Annotated[Optional[str], typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (shortcut for --set seed=N).")] = None,
    data_root: Annotated[Optional[Path], typer.Option(help="Directory with the dataset files (searched first).")] = None,
) -> None:
    """Train one DCGAN and write config.json, stats.jsonl, samples/ and status.json to --out.

    Config precedence, lowest first: defaults < --preset < --hack (in order) < --steps/--dataset/
    --device/--seed < --set.
    """
    from ganbench.hacks import resolve
    from ganbench.train import train

    try:
        shortcuts: dict[str, Any] = {k: v for k, v in (("steps", steps), ("dataset", dataset), ("device", device),
                                                       ("seed", seed)) if v is not None}
        overrides = {**shortcuts, **parse_assignments(set_ or [])}
        cfg, names = resolve(preset, hack or [], overrides)
    except ConfigError as err:
        fail(str(err))
    console.print(f"[bold]training[/] preset={preset} hacks={', '.join(names) or '-'} steps={cfg.steps} → {out}",
                  highlight=False)
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                  console=console, transient=False) as bar:
        task = bar.add_task("steps", total=cfg.steps, info="")

        def on_progress(step: int, total: int, row: dict[str, Any] | None) -> None:
            info = "" if row is None else f"loss_d {row['loss_d']:.3f} loss_g {row['loss_g']:.3f} D(x) {row['d_real']:.2f}"
            bar.update(task, completed=step, info=info)

        try:
            status = train(cfg, out, preset=preset, hacks=names, data_root=data_root, progress=on_progress)
        except (ConfigError, DataNotFoundError) as err:
            fail(str(err))
        except KeyboardInterrupt:
            fail(f"interrupted; run the same command again to resume from {out}/checkpoint.pt", code=130)
        except Exception as err:
            fail(f"run failed: {type(err).__name__}: {err} (details in {out}/status.json)", code=1)
    if status["status"] != "completed":
        fail(f"run {status['status']}: {status.get('error')}", code=1)
    console.print(f"[green]completed[/] {cfg.steps} steps in {status.get('wall_s', 0):.1f} s → {out}", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
