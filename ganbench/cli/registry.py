"""`ganbench hacks`, `knobs` and `suite-keys`: what can be toggled and written, and where it comes from;
`ganbench init`: a starter suite."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ganbench.errors import ConfigError
from ganbench.cli.common import JsonOpt, app, console, escape, fail, print_json


@app.command("hacks")
def hacks_command(
    name: Annotated[Optional[str], typer.Argument(help="Show one hack in full: summary, source, knobs, presets.")] = None,
    tag: Annotated[Optional[str], typer.Option(help="Only hacks with this tag.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the registered hacks (name, tags, knobs they set) and the presets; `ganbench hacks NAME`
    shows one hack's summary and source."""
    from rich.table import Table

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
def knobs_command(
    as_json: JsonOpt = False,
    category: Annotated[Optional[str], typer.Option(help="Only this category: execution, cadence, evaluation, "
                                                    "structure or numeric.")] = None,
) -> None:
    """List every TrainConfig knob: its default ("off" value), allowed values or range, category, and
    meaning with its unit. Narrow terminals get one paragraph per knob instead of a table."""
    from rich.table import Table

    from ganbench.config import CATEGORIES, KNOB_CATEGORIES, NOT_FUSED, TrainConfig, knob_choices, knob_docs, range_rule

    docs, defaults = knob_docs(), TrainConfig().to_dict()
    if category is not None and category not in CATEGORIES:
        fail(f"--category {category!r}: expected one of {', '.join(CATEGORIES)}")
    defaults = {k: v for k, v in defaults.items() if category in (None, KNOB_CATEGORIES[k])}

    def allowed(name: str, default: Any) -> str:
        choices = knob_choices(name)
        if choices:
            return " | ".join(map(str, choices))
        rule = range_rule(name)
        return type(default).__name__ + (f", {rule}" if rule else "")

    if as_json:
        return print_json([{"knob": k, "default": v, "allowed": list(knob_choices(k) or ()) or type(v).__name__,
                            "range": range_rule(k), "category": KNOB_CATEGORIES[k], "fuses": k not in NOT_FUSED,
                            "meaning": docs.get(k, "")} for k, v in defaults.items()])
    if console.width < 120:  # a 4-column table at 80 columns folds every meaning into a 15-character strip
        for name, default in defaults.items():
            console.print(f"[bold]{name}[/] = {default!r}  ({KNOB_CATEGORIES[name]}; {escape(allowed(name, default))})",
                          highlight=False)
            console.print(f"    {escape(docs.get(name, ''))}", highlight=False, soft_wrap=False)
        return
    table = Table(title="TrainConfig knobs (set with --set knob=value)")
    for column in ("knob", "default", "allowed", "category", "meaning (unit; off value)"):
        table.add_column(column, overflow="fold", no_wrap=column == "knob")
    for name, default in defaults.items():
        table.add_row(name, repr(default), allowed(name, default), KNOB_CATEGORIES[name], docs.get(name, ""))
    console.print(table)


@app.command("suite-keys")
def suite_keys_command(as_json: JsonOpt = False) -> None:
    """Every key a suite file may hold, section by section, with its type, default and meaning (knob names
    under `base` and an arm's `set` are `ganbench knobs`; hack names are `ganbench hacks`)."""
    from rich.table import Table

    from ganbench.study.design import design_options
    from ganbench.study.suite_keys import sections

    keys_by_section = sections(design_options())
    if as_json:
        return print_json({section: {key: dict(zip(("type", "default", "meaning"), spec)) for key, spec in keys.items()}
                           for section, keys in keys_by_section.items()})
    for section, keys in keys_by_section.items():
        table = Table(title=f"suite keys: {section}", title_justify="left")
        for column in ("key", "type", "default", "meaning"):
            table.add_column(column, overflow="fold", no_wrap=column == "key")
        for key, (kind, default, meaning) in keys.items():
            table.add_row(key, kind, default, meaning)
        console.print(table)


@app.command("init")
def init_command(
    name: Annotated[str, typer.Argument(help="The suite's name (its results go to results/NAME/).")] = "mystudy",
    out: Annotated[Optional[Path], typer.Option(help="The file to write (default: NAME.yaml here).")] = None,
) -> None:
    """Write a commented starter suite (a leave-one-out of four hacks on Fashion-MNIST, fp32, CPU-sized)
    to NAME.yaml; `ganbench plan NAME.yaml` then shows its runs and cost. Never overwrites a file."""
    from ganbench.study.starter import starter_suite
    from ganbench.study.suite import SuiteError, load_suite

    path = out or Path(f"{name}.yaml")
    if path.exists() or path.is_symlink():
        fail(f"{path} exists; ganbench init never overwrites a file (choose another NAME or --out)")
    text = starter_suite(name, str(path))
    try:  # the name must make a valid suite (it names a directory): checked before anything is written
        from tempfile import TemporaryDirectory

        with TemporaryDirectory() as scratch:
            probe = Path(scratch) / path.name
            probe.write_text(text)
            load_suite(probe, Path(scratch) / "results")
    except SuiteError as err:
        fail(str(err).replace(str(Path(scratch) / path.name), str(path)))
    with open(path, "x", encoding="utf-8") as fh:  # "x": a file that appeared meanwhile is not overwritten
        fh.write(text)
    console.print(f"wrote {path}: next, `ganbench plan {path}` (runs, cost here, power), then `ganbench run {path}`",
                  highlight=False)

