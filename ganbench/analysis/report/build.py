"""`build_report`: a suite's results → reports/<suite>/ (README.md, tables, summary.csv, figures), and `update_readme`."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or wanted
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ganbench import rundir
from ganbench.analysis import failures, stats
from ganbench.analysis.literature import literature_tables
from ganbench.analysis.results import (MixedSettingsWarning, load_manifest, load_results, load_step_costs,
                                       load_training_stats, save_results)
from ganbench.metrics.registry import value_range
from ganbench.analysis.report.analysis import Analysis, PartResult, analyse, reported_metrics
from ganbench.analysis.report.figures import (forest_plot, interaction_heatmap, loss_curves, main_effects_plot,
                                              metric_curves, sample_montage)
from ganbench.analysis.report.sections import arm_lines, findings, headline, inference_lines, provenance_lines
from ganbench.analysis.report.tables import (EFFECT_KINDS, EXTRA_KINDS, Table, arm_cell, compute_table, convergence_frame,
                                             effects_table,
                                             equal_compute_table, factorial_table, main_table, noise_table, to_latex,
                                             to_markdown)


FORMATS = ("md", "tex", "csv")


def shown_path(path: Path) -> str:
    """`path` relative to the current directory when it lies below it (a report regenerated in
    another checkout reads the same), else as given."""
    here, real = Path.cwd().resolve(), path.resolve()
    return str(real.relative_to(here)) if here in real.parents else str(path)


def build_report(results_dir: str | Path, out_dir: str | Path, metrics: Sequence[str] | None = None,
                 formats: Sequence[str] = FORMATS) -> Path:
    """Write the report; returns the README's path."""
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format '{fmt}'; choose from {FORMATS}")
    manifest = load_manifest(results_dir)
    frame, training, problems = _load_runs(results_dir)
    chosen = reported_metrics(frame, metrics)
    if not chosen:
        raise ValueError(f"no evaluated metric in {results_dir}: nothing to report yet")
    result = analyse(frame, training, manifest, chosen, load_step_costs(results_dir))
    sns.set_theme(style="whitegrid", palette="colorblind", context="paper")
    body = _head(results_dir, manifest, result, frame, problems)
    tables: list[Table] = []
    summary_frames, family_frames = [], []
    for part in result.parts:
        part_body, part_tables = _part_section(part, result, chosen, manifest["name"])
        body += part_body + _figures(frame, training, results_dir, out_dir, manifest, part, result)
        tables += part_tables
        summary_frames += _summaries(frame[frame["arm"].isin(part.arms)], part, chosen)
        family_frames += [*part.comparisons.values(), part.equal_compute]
    for protocol, lines, table in literature_tables(frame, arm_cell):
        body += ["## Against the literature", "", *lines, "", to_markdown(table), ""]
        tables.append(Table(f"literature_{protocol}", f": our runs beside the published figures under protocol "
                            f"{protocol}", "", table))
    body += ["## Findings", "", *findings(result), ""]
    for table in tables:
        write_table(out_dir, table, manifest["name"], formats)
    if "csv" in formats:
        _write_csvs(out_dir, frame, summary_frames, family_frames)
    readme = out_dir / "README.md"
    rundir.atomic_write(readme, lambda tmp: Path(tmp).write_text("\n".join(body)))
    return readme


def _load_runs(results_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(tidy results, training statistics, damaged log lines that were skipped)."""
    with warnings.catch_warnings(record=True) as caught:  # damaged log lines: skipped, and said in the report
        warnings.simplefilter("always", rundir.CorruptLineWarning)
        warnings.simplefilter("always", MixedSettingsWarning)
        frame = load_results(results_dir)
        training = load_training_stats(results_dir)
    said = (rundir.CorruptLineWarning, MixedSettingsWarning)
    problems = [str(w.message) for w in caught if issubclass(w.category, said)]
    for w in caught:  # anything else, and each problem once more for the caller (the CLI prints them)
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return frame, training, problems


def _head(results_dir: Path, manifest: dict[str, Any], result: Analysis, frame: pd.DataFrame,
          problems: list[str]) -> list[str]:
    """Title, design, inference, data problems and setup: the README down to the first part."""
    body = [f"# {manifest['name']}: {manifest.get('description', '')}", "",
            f"Generated by `ganbench report {shown_path(results_dir)}` from {len(manifest['runs'])} runs.", "",
            "## Design", ""]
    for design in manifest["designs"]:
        body.append(f"- {design['part'] or 'design'}: `{design['kind']}` from preset `{design['preset']}` over "
                    f"{len(design['studied_hacks'])} hacks, {len(design['arms'])} arms × {len(manifest['seeds'])} seeds; "
                    f"reference arm `{design['reference_arm'] or '-'}`"
                    + (f"; {design['budget']['text']}" if design.get("budget") else ""))
    body += ["", "## Arms", "", *arm_lines(result, manifest)]
    body += ["", "## Headline", "", *headline(result, manifest)]
    body += ["", "## Inference", "", *inference_lines(result, manifest)]
    if problems:
        body += ["", "## Data problems", "", "Lines of run logs that are not JSON were skipped (every other row "
                 "of those runs is used), and numbers of one metric measured in different settings are reported "
                 "apart, never pooled:", "", *[f"- `{p}`" for p in problems]]
    return body + ["", "## Setup", "", *provenance_lines(frame, results_dir, manifest), "",
                   "Statistics:", "", *[f"- {line}" for line in stats.METHODS], "",
                   "Failure labels (shares of completed runs):", "", *[f"- {line}" for line in failures.DEFINITIONS], ""]


def _part_section(part: PartResult, result: Analysis, chosen: list[str], name: str) -> tuple[list[str], list[Table]]:
    """A part's README block and its tables: the main table, then compute, noise, effects, equal compute, factorial."""
    label, main = part.name or "main", result.primary
    frame, best = main_table(part, chosen)
    tables = [Table(label, "final evaluation, mean [95 % CI] (n)", "", frame, best)]
    body = [f"## Results: {label}", "", "Final evaluation (the mean of its latent draws; `summary.csv` also has "
            "the best-over-training and mean-of-last-3 readings): mean [95 % CI inside the metric's range] "
            "(n = usable runs); bold: the arm whose interval lies clear of every other arm's (none where they overlap). Diverged runs are excluded from the means and counted "
            "in `diverged`.", "", to_markdown(frame, best)]
    factorial = ("main effects and two-way interactions" if part.interactions else "main effects; two-way "
                 "interactions are aliased with each other at this resolution and are not estimated")
    extras = {
        "compute": (compute_table(part), "What each arm costs: parameters, FLOPs per training step (counted), seconds "
                    "per step timed alone on the sweep's device. Equal steps is not equal compute.", "compute per arm"),
        "noise": (noise_table(part, main), f"Evaluation noise against seed noise on `{main}`: a difference smaller "
                  "than the evaluation SD cannot be told from a different latent draw.", "evaluation noise vs seed noise"),
        "convergence": (convergence_frame(part), f"Convergence of `{main}`: each arm's change over its last two "
                        "evaluations (mean over seeds of the per-run change, ± its standard error); *still improving* "
                        "when it goes the better way by more than 2 SE; *flips* when the arm's difference from "
                        f"`{part.reference}` changes sign:", f"convergence of {main}"),
        "effects": (effects_table(part, result.verdict_metrics), f"Every verdict metric against `{part.reference}` at "
                    f"{part.basis}: rows of the family of {result.family_size} "
                    f"({'exploratory: intervals only, no verdicts' if result.exploratory else 'Holm verdicts'})"
                    + (f"; {', '.join(f'`{a}`' for a in part.compared_elsewhere)} train the reference's own steps "
                       "here, so their runs and comparisons are an earlier part's" if part.compared_elsewhere else "")
                    + ":", f"effects at {part.basis}"),
        "equal_compute": (equal_compute_table(part, main), f"`{main}` against `{part.reference}` at equal FLOPs, for "
                          "the arms whose FLOPs per step differ (rows of the family):", f"{main} at equal FLOPs"),
        "factorial": (factorial_table(part, main), f"Factorial effects on `{main}` ({factorial}); exploratory: "
                      "per-effect 95 % intervals, outside the family (no multiplicity control):",
                      f"factorial effects on {main}"),
    }
    for kind in EXTRA_KINDS:
        extra, caption, title = extras[kind]
        if not extra.empty:
            body += [caption, "", to_markdown(extra)]
            tables.append(Table(f"{label}_{kind}", title, caption, extra))
    return body, [dataclasses.replace(t, title=f" ({label}): {t.title}") for t in tables]


def _figures(frame: pd.DataFrame, training: pd.DataFrame, results_dir: Path, out_dir: Path,
             manifest: dict[str, Any], part: PartResult, result: Analysis) -> list[str]:
    """A part's figures under out_dir/figures/, and the README lines that show them."""
    label, main, where = part.name or "main", result.primary, out_dir / "figures"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning in a figure is a bug in the report
        warnings.simplefilter("always", rundir.CorruptLineWarning)  # a damaged sample grid is the data's
        figures = [forest_plot(part, result.verdict_metrics, where / f"{label}_forest"),
                   main_effects_plot(part, main, where / f"{label}_main_effects"),
                   interaction_heatmap(part, main, where / f"{label}_interactions"),
                   metric_curves(frame, part, main, where / f"{label}_{main}_curves"),
                   loss_curves(training, part, where / f"{label}_losses"),
                   sample_montage(results_dir, manifest, part, where / f"{label}_samples")]
    return [line for figure in filter(None, figures) for line in (f"![{figure.stem}](figures/{figure.name})", "")]


def _summaries(part_frame: pd.DataFrame, part: PartResult, chosen: list[str]) -> list[pd.DataFrame]:
    """summary.csv's rows of a part: every metric's arm summaries of all three readings of a run (final,
    best over training, mean of the last 3)."""
    out = []
    for metric in chosen:
        out.append(part.summaries[metric].assign(metric=metric, aggregate="final"))
        for aggregate in ("best", "last_k"):  # 'final' was computed by analyse()
            values = stats.run_values(part_frame, metric, part.directions.get(metric), aggregate)
            out.append(stats.arm_summary(values, value_range(metric)).assign(metric=metric, aggregate=aggregate))
    return out


def _write_csvs(out_dir: Path, frame: pd.DataFrame, summary_frames: list[pd.DataFrame],
                family_frames: list[pd.DataFrame]) -> None:
    save_results(frame, out_dir)  # the tidy table, beside the report that was made from it
    summary = pd.concat(summary_frames, ignore_index=True)
    rundir.atomic_write(out_dir / "summary.csv", lambda tmp: summary.to_csv(tmp, index=False))
    family = pd.concat([f for f in family_frames if not f.empty] or [pd.DataFrame()], ignore_index=True)
    rundir.atomic_write(out_dir / "comparisons.csv", lambda tmp: family.to_csv(tmp, index=False))


def write_table(out_dir: Path, table: Table, suite_name: str, formats: Sequence[str]) -> None:
    """tables/<stem>.md and .tex (as `formats` ask); the LaTeX caption starts with the suite's name."""
    if "md" in formats:
        text = to_markdown(table.frame, table.best)
        rundir.atomic_write(out_dir / "tables" / f"{table.stem}.md", lambda tmp: Path(tmp).write_text(text))
    if "tex" in formats:
        tex = to_latex(table.frame, f"{suite_name}{table.title}", table.best)
        rundir.atomic_write(out_dir / "tables" / f"{table.stem}.tex", lambda tmp: Path(tmp).write_text(tex))


def update_readme(readme: str | Path, report_dir: str | Path, name: str) -> None:
    """Replace the block between `<!-- ganbench:NAME:start -->` and `<!-- ganbench:NAME:end -->`
    in `readme` with the report's headline tables (so the README never holds hand-copied numbers)."""
    readme, report_dir = Path(readme), Path(report_dir)
    start, end = f"<!-- ganbench:{name}:start -->", f"<!-- ganbench:{name}:end -->"
    text = readme.read_text()
    if start not in text or end not in text:
        raise ValueError(f"{readme} has no '{start}' … '{end}' block to fill")
    tables = sorted((report_dir / "tables").glob("*.md"))
    if not tables:
        raise FileNotFoundError(f"no tables in {report_dir}/tables: run `ganbench report` first")
    extras = tuple(f"_{kind}" for kind in EXTRA_KINDS)
    block = "\n".join(f"{t.read_text()}" for t in tables if not t.stem.endswith(extras))
    effects = [t for t in tables if t.stem.endswith(tuple(f"_{kind}" for kind in EFFECT_KINDS))]
    if effects:
        block += "\n" + "\n".join(t.read_text() for t in effects)
    new = text[: text.index(start) + len(start)] + "\n" + block + text[text.index(end):]
    rundir.atomic_write(readme, lambda tmp: Path(tmp).write_text(new))
