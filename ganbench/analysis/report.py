"""A suite's results → reports/<suite>/: README.md, tables (md, tex), summary.csv, figures.

Every number in a table or a finding carries its CI and n; the methods are named in the
report. Figures use seaborn's colour-blind palette and are written as PNG and PDF.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from PIL import Image  # noqa: E402

from ganbench import rundir
from ganbench.analysis import stats  # noqa: E402
from ganbench.analysis.results import (load_manifest, load_results, load_training_stats, metric_directions,  # noqa: E402
                                       save_results)

PREFERRED = ("fid_fmnist", "kid_fmnist", "isc_fmnist", "precision_fmnist", "recall_fmnist", "modes_covered_fmnist",
             "modes_kl_fmnist", "fid", "kid", "isc", "precision", "recall")
FORMATS = ("md", "tex", "csv")


@dataclass
class PartResult:
    """The numbers of one design part for every reported metric."""

    name: str
    kind: str
    reference: str | None
    arms: list[str]
    summaries: dict[str, pd.DataFrame]  # metric → arm_summary
    comparisons: dict[str, pd.DataFrame]  # metric → compare_to_reference (empty without a reference)
    collapse: pd.DataFrame
    factorial: dict[str, pd.DataFrame]  # metric → factorial_effects (factorial designs only)
    interactions: bool  # two-way interactions estimable (full factorial, or resolution ≥ V)
    wall_s: dict[str, float]  # arm → median wall-clock seconds of its completed runs
    directions: dict[str, bool | None]  # metric → higher is better (True/False) or neither (None), from its rows


def reported_metrics(frame: pd.DataFrame, requested: Sequence[str] | None) -> list[str]:
    present = [m for m in frame["metric"].dropna().unique()]
    if requested:
        missing = [m for m in requested if m not in present]
        if missing:
            raise ValueError(f"metric(s) {missing} not in these results; present: {sorted(present)}")
        return list(requested)
    directions = metric_directions(frame)
    scored = [m for m in present if directions.get(m) is not None]
    return sorted(scored, key=lambda m: (PREFERRED.index(m) if m in PREFERRED else len(PREFERRED), m))


def analyse(frame: pd.DataFrame, training: pd.DataFrame, manifest: dict[str, Any], metrics: list[str]) -> list[PartResult]:
    parts = []
    directions = metric_directions(frame)
    for design in manifest["designs"]:
        arms = [a["name"] for a in design["arms"]]
        part_frame = frame[frame["arm"].isin(arms)]
        summaries, comparisons = {}, {}
        for metric in metrics:
            values = stats.run_values(part_frame, metric, directions.get(metric))
            summaries[metric] = stats.arm_summary(values)
            reference = design["reference_arm"]
            comparisons[metric] = (stats.compare_to_reference(values, reference, directions.get(metric),
                                                              [a for a in arms if a != reference])
                                   if reference else pd.DataFrame())
        factorial, interactions = {}, False
        if design["kind"] in ("full_factorial", "fractional_factorial"):
            interactions = design["kind"] == "full_factorial" or (design["resolution"] or 0) >= 5
            factors = {a["name"]: a["factors"] for a in design["arms"]}
            for metric in metrics:
                values = stats.run_values(part_frame, metric, directions.get(metric))
                try:
                    factorial[metric] = stats.factorial_effects(values, factors, interactions)
                except ValueError:  # too few runs for the model: say so in the report, not crash
                    factorial[metric] = pd.DataFrame()
        runs = part_frame.drop_duplicates(["arm", "run_id"])
        wall = runs[runs["status"] == "completed"].groupby("arm")["wall_s"].median().to_dict()
        parts.append(PartResult(design["part"], design["kind"], design["reference_arm"], arms, summaries,
                                comparisons, stats.collapse_rate(part_frame, training), factorial, interactions,
                                wall, directions))
    return parts


# --- Tables -------------------------------------------------------------------------------------

def _cell(row: pd.Series) -> str:
    if not np.isfinite(row["mean"]):
        return "—"
    if not np.isfinite(row["ci_low"]):
        return f"{row['mean']:.3g} (n={row['n']})"
    half = (row["ci_high"] - row["ci_low"]) / 2
    return f"{row['mean']:.3g} ± {half:.2g} (n={row['n']})"


def main_table(part: PartResult, metrics: list[str]) -> pd.DataFrame:
    """Arms × metrics, 'mean ± CI half-width (n)', plus diverged and collapsed shares; best marked."""
    table = pd.DataFrame({"arm": part.arms})
    best: dict[str, str] = {}
    for metric in metrics:
        summary = part.summaries[metric].set_index("arm")
        table[metric] = [_cell(summary.loc[a]) if a in summary.index else "—" for a in part.arms]
        means = summary["mean"].dropna()
        if len(means):
            best[metric] = means.idxmax() if part.directions.get(metric) else means.idxmin()
    first = part.summaries[metrics[0]].set_index("arm")
    table["diverged"] = [f"{first.loc[a, 'diverged']:.0%}" for a in part.arms]
    collapse = part.collapse.set_index("arm")["collapsed"] if not part.collapse.empty else pd.Series(dtype=float)
    table["collapsed"] = [f"{collapse[a]:.0%}" if a in collapse.index else "—" for a in part.arms]
    # Equal steps are not equal compute: show what each arm cost, so a win bought with time is visible.
    table["s/run"] = [f"{part.wall_s.get(a, math.nan):.0f}" if np.isfinite(part.wall_s.get(a, math.nan)) else "—"
                      for a in part.arms]
    table.attrs["best"] = best
    return table


def to_markdown(table: pd.DataFrame) -> str:
    best = table.attrs.get("best", {})
    header = "| " + " | ".join(table.columns) + " |"
    lines = [header, "|" + "|".join("---" for _ in table.columns) + "|"]
    for _, row in table.iterrows():
        cells = [f"**{row[c]}**" if c in best and best[c] == row.get("arm") else str(row[c]) for c in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _tex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("—", "--"), ("×", r"$\times$"), ("−", "-")):
        text = text.replace(a, b)
    return text


def to_latex(table: pd.DataFrame, caption: str) -> str:
    best = table.attrs.get("best", {})
    cols = list(table.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{_tex_escape(caption)}}}",
             r"\begin{tabular}{l" + "r" * (len(cols) - 1) + "}", r"\toprule",
             " & ".join(_tex_escape(c) for c in cols) + r" \\", r"\midrule"]
    for _, row in table.iterrows():
        cells = []
        for c in cols:
            text = _tex_escape(str(row[c]))
            cells.append(rf"\textbf{{{text}}}" if c in best and best[c] == row.get("arm") else text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _num(value: float, spec: str) -> str:
    return format(value, spec) if np.isfinite(value) else "—"


def effects_table(part: PartResult, metric: str) -> pd.DataFrame:
    comparison = part.comparisons[metric]
    if comparison.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "arm": comparison["arm"],
        f"Δ {metric} vs {part.reference} [95 % CI]": [
            f"{_num(r.diff, '+.3g')} [{_num(r.ci_low, '+.3g')}, {_num(r.ci_high, '+.3g')}]" if np.isfinite(r.diff)
            else "—" for r in comparison.itertuples()],
        "n": [f"{r.n} vs {r.n_reference}" for r in comparison.itertuples()],
        "p (Welch)": [_num(r.p, ".3g") for r in comparison.itertuples()],
        "p (Holm)": [_num(r.p_holm, ".3g") for r in comparison.itertuples()],
        "Hedges' g": [_num(r.g, "+.2f") for r in comparison.itertuples()],
        "verdict": comparison["verdict"],
    })


# --- Figures ------------------------------------------------------------------------------------

def _save(fig: plt.Figure, path: Path) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    # No timestamps in the files, so a regenerated report is byte-identical.
    fig.savefig(path.with_suffix(".png"), dpi=150, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight", metadata={"CreationDate": None, "ModDate": None})
    plt.close(fig)
    return [path.with_suffix(".png"), path.with_suffix(".pdf")]


def forest_plot(part: PartResult, metrics: list[str], path: Path, most: int = 4) -> Path | None:
    shown = [m for m in metrics if not part.comparisons[m].empty][:most]
    if not shown:
        return None
    fig, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown) + 1.5, 0.42 * len(part.arms) + 1.6),
                             sharey=True, squeeze=False)
    palette = dict(zip(("better", "worse", "no clear difference", "too few runs"), sns.color_palette("colorblind", 4)))
    for ax, metric in zip(axes[0], shown):
        comp = part.comparisons[metric].iloc[::-1]
        y = np.arange(len(comp))
        for yi, row in zip(y, comp.itertuples()):
            colour = palette.get(row.verdict, "grey")
            ax.errorbar(row.diff, yi, xerr=[[row.diff - row.ci_low], [row.ci_high - row.diff]], fmt="o",
                        color=colour, capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, comp["arm"])
        arrow = "↑ better" if part.directions.get(metric) else "↓ better"
        ax.set_xlabel(f"Δ {metric} vs {part.reference} ({arrow})")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=v) for v, c in palette.items()]
    fig.legend(handles=handles, loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.02 - 0.3 / len(part.arms)),
               frameon=False)
    fig.suptitle(f"{part.name or 'design'}: effect of each arm vs '{part.reference}' (95 % CI over seeds)")
    _save(fig, path)
    return path.with_suffix(".png")


def arm_styles(arms: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Colour and dash per arm, fixed across figures; past 10 arms colours repeat, dashes tell them apart."""
    colours = sns.color_palette("colorblind", 10)
    dashes = ["", (4, 1.5), (1, 1), (3, 1, 1, 1)]
    return ({a: colours[i % 10] for i, a in enumerate(arms)}, {a: dashes[i // 10 % 4] for i, a in enumerate(arms)})


def factorial_table(part: PartResult, metric: str) -> pd.DataFrame:
    effects = part.factorial.get(metric, pd.DataFrame())
    if effects.empty:
        return effects
    return pd.DataFrame({
        "term": effects["term"],
        f"effect on {metric} (off → on) [95 % CI]": [
            f"{r.effect:+.3g} [{r.ci_low:+.3g}, {r.ci_high:+.3g}]" for r in effects.itertuples()],
        "p (t)": [_num(r.p, ".3g") for r in effects.itertuples()],
        "dof": effects["dof"],
    })


def main_effects_plot(part: PartResult, metric: str, path: Path) -> Path | None:
    effects = part.factorial.get(metric, pd.DataFrame())
    if effects.empty:
        return None
    main = effects[~effects["term"].str.contains("×")].iloc[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.38 * len(main) + 1.4))
    colour = sns.color_palette("colorblind", 1)[0]
    y = np.arange(len(main))
    ax.errorbar(main["effect"], y, xerr=[main["effect"] - main["ci_low"], main["ci_high"] - main["effect"]],
                fmt="o", color=colour, capsize=3)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, main["term"])
    ax.set_xlabel(f"main effect on {metric}, off → on ({'↑' if part.directions.get(metric) else '↓'} better), 95 % CI")
    ax.set_title(f"{part.name or 'design'}: main effects (OLS on ±1-coded hacks)")
    _save(fig, path)
    return path.with_suffix(".png")


def interaction_heatmap(part: PartResult, metric: str, path: Path) -> Path | None:
    effects = part.factorial.get(metric, pd.DataFrame())
    if effects.empty or not part.interactions:
        return None
    pairs = effects[effects["term"].str.contains("×")]
    hacks = sorted({h for term in pairs["term"] for h in term.split("×")})
    matrix = pd.DataFrame(np.nan, index=hacks, columns=hacks)
    for row in pairs.itertuples():
        a, b = row.term.split("×")
        matrix.loc[a, b] = matrix.loc[b, a] = row.effect
    fig, ax = plt.subplots(figsize=(1.0 * len(hacks) + 3, 0.8 * len(hacks) + 2))
    values = matrix.to_numpy(float)
    # One colour scale for main effects and interactions, so a tiny interaction looks tiny.
    limit = float(np.nanmax(np.abs(effects["effect"].to_numpy()))) or 1.0
    # Plain imshow: seaborn's heatmap trips a matplotlib deprecation warning in its internals.
    image = ax.imshow(np.ma.masked_invalid(values), cmap=sns.color_palette("vlag", as_cmap=True),
                      vmin=-limit, vmax=limit)
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(j, i, f"{value:+.2g}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(hacks)), hacks, rotation=45, ha="right")
    ax.set_yticks(range(len(hacks)), hacks)
    ax.grid(False)
    fig.colorbar(image, ax=ax, label=f"interaction effect on {metric}")
    ax.set_title(f"{part.name or 'design'}: two-way interactions")
    _save(fig, path)
    return path.with_suffix(".png")


def metric_curves(frame: pd.DataFrame, part: PartResult, metric: str, path: Path) -> Path | None:
    data = frame[(frame["metric"] == metric) & frame["arm"].isin(part.arms) & (frame["status"] == "completed")]
    if data.empty:
        return None
    present = [a for a in part.arms if a in set(data["arm"])]
    colours, dashes = arm_styles(part.arms)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sns.lineplot(data=data, x="step", y="value", hue="arm", hue_order=present, style="arm", style_order=present,
                 dashes={a: dashes[a] for a in present}, errorbar=("ci", 95), seed=0,
                 palette={a: colours[a] for a in present}, ax=ax, marker="o")
    ax.set_ylabel(f"{metric} ({'higher' if part.directions.get(metric) else 'lower'} is better)")
    ax.set_title(f"{metric} during training (mean over seeds, 95 % bootstrap band)")
    ax.legend(fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    _save(fig, path)
    return path.with_suffix(".png")


def loss_curves(training: pd.DataFrame, part: PartResult, path: Path) -> Path | None:
    data = training[training["arm"].isin(part.arms)]
    if data.empty:
        return None
    long = data.melt(id_vars=["arm", "seed", "step"], value_vars=["loss_d", "loss_g", "d_real", "d_fake_before"],
                     var_name="statistic")
    present = [a for a in part.arms if a in set(long["arm"])]
    colours, dashes = arm_styles(part.arms)
    grid = sns.relplot(data=long, x="step", y="value", hue="arm", hue_order=present, style="arm",
                       style_order=present, dashes={a: dashes[a] for a in present}, col="statistic", col_wrap=2,
                       kind="line", errorbar=("ci", 95), seed=0, facet_kws={"sharey": False}, height=2.8, aspect=1.5,
                       palette={a: colours[a] for a in present})
    titles = {"loss_d": "D loss", "loss_g": "G loss", "d_real": "D(x)", "d_fake_before": "D(G(z)) before D step"}
    for ax, name in zip(grid.axes.flat, ["loss_d", "loss_g", "d_real", "d_fake_before"]):
        ax.set_title(titles[name])
    grid.figure.suptitle("training statistics (mean over seeds, 95 % band)", y=1.02)
    _save(grid.figure, path)
    return path.with_suffix(".png")


def sample_montage(results_dir: Path, manifest: dict[str, Any], part: PartResult, path: Path) -> Path | None:
    """The last sample grid of each arm's first seed, side by side (same fixed noise in every run)."""
    tiles = []
    for arm in part.arms:
        entry = min((r for r in manifest["runs"] if r["arm"] == arm), key=lambda r: r["seed"], default=None)
        grids = sorted((results_dir / "runs" / entry["run_id"] / "samples").glob("step_*.png")) if entry else []
        if grids:
            tiles.append((f"{arm} (seed {entry['seed']})", Image.open(grids[-1])))
    if not tiles:
        return None
    cols = min(5, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, image) in zip(axes.flat, tiles):
        ax.imshow(image, cmap="gray")
        ax.set_title(title, fontsize=8)
    fig.suptitle("final samples, same fixed noise for every arm")
    _save(fig, path)
    return path.with_suffix(".png")


# --- The report ---------------------------------------------------------------------------------

def _provenance(frame: pd.DataFrame, results_dir: Path, manifest: dict[str, Any]) -> list[str]:
    rows = frame.dropna(subset=["metric"])
    lines = []
    for extractor, group in rows.groupby("extractor"):
        first = group.iloc[0]
        lines.append(f"- metrics with the `{extractor}` extractor (`{first['feature_extractor']}`, layer "
                     f"`{first.get('feature_layer', '-')}`, weights sha256 `{str(first['weights_sha256'])[:16]}…`, "
                     f"{first['weights_source']}): {int(first['samples_generated'])} generated vs "
                     f"{int(first['reference_samples'])} real `{first['reference_split']}` images, resize: "
                     f"{first['resize_mode']}, torch-fidelity {first['torch_fidelity_version']}")
    first_run = next(iter(manifest["runs"]), None)
    if first_run:
        config = rundir.read_json(results_dir / "runs" / first_run["run_id"] / "config.json")
        prov, cfg = config["provenance"], config["config"]
        versions = ", ".join(f"{k} {v}" for k, v in prov["versions"].items())
        lines.append(f"- budget: {cfg['steps']} steps of batch {cfg['batch_size']} on `{cfg['dataset']}` "
                     f"(`{cfg['data_split']}` split), precision {cfg['precision']}, evaluation every "
                     f"{cfg['eval_every']} steps")
        lines.append(f"- machine: {prov['machine'].get('host_cpu')} ({prov['machine'].get('cpu_count')} cores), "
                     f"device `{prov['machine'].get('device')}`; {versions}; ganbench commit `{prov['git_commit']}`")
    return lines


def _findings(parts: list[PartResult], metric: str) -> list[str]:
    lines = []
    for part in parts:
        comparison = part.comparisons.get(metric)
        if comparison is None or comparison.empty:
            continue
        for row in comparison.itertuples():
            numbers = (f"Δ {metric} = {_num(row.diff, '+.3g')}, 95 % CI [{_num(row.ci_low, '+.3g')}, "
                       f"{_num(row.ci_high, '+.3g')}], n = {row.n} vs {row.n_reference}, Welch p = "
                       f"{_num(row.p, '.3g')}, Holm p = {_num(row.p_holm, '.3g')}, g = {_num(row.g, '+.2f')}")
            if row.verdict in ("better", "worse"):
                lines.append(f"- **{row.arm}** is {row.verdict} than `{part.reference}` ({numbers}).")
            else:
                lines.append(f"- {row.arm}: {row.verdict} from `{part.reference}` ({numbers}).")
        summary = part.summaries[metric]
        for row in summary.itertuples():
            if row.diverged > 0 or row.failed > 0:
                lines.append(f"- {row.arm}: {row.diverged:.0%} of its {row.runs} runs diverged and "
                             f"{row.failed:.0%} failed; they are excluded from its mean and counted here.")
            if row.unfinished > 0:
                lines.append(f"- {row.arm}: {row.unfinished:.0%} of its {row.runs} runs have not finished; "
                             "its numbers are provisional.")
    return lines or ["- No arm could be compared with a reference arm."]


def build_report(results_dir: str | Path, out_dir: str | Path, metrics: Sequence[str] | None = None,
                 formats: Sequence[str] = FORMATS) -> Path:
    """Write the report; returns the README's path."""
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format '{fmt}'; choose from {FORMATS}")
    manifest = load_manifest(results_dir)
    with warnings.catch_warnings(record=True) as caught:  # damaged log lines: skipped, and said in the report
        warnings.simplefilter("always", rundir.CorruptLineWarning)
        frame = load_results(results_dir)
        training = load_training_stats(results_dir)
    problems = [str(w.message) for w in caught if issubclass(w.category, rundir.CorruptLineWarning)]
    for w in caught:  # anything else, and each problem once more for the caller (the CLI prints them)
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    save_results(frame, results_dir)
    chosen = reported_metrics(frame, metrics)
    if not chosen:
        raise ValueError(f"no evaluated metric in {results_dir}: nothing to report yet")
    parts = analyse(frame, training, manifest, chosen)
    sns.set_theme(style="whitegrid", palette="colorblind", context="paper")
    main = chosen[0]
    body = [f"# {manifest['name']}: {manifest.get('description', '')}", "",
            f"Generated by `ganbench report {results_dir}` from {len(manifest['runs'])} runs.", "",
            "## Design", ""]
    for design in manifest["designs"]:
        body.append(f"- {design['part'] or 'design'}: `{design['kind']}` from preset `{design['preset']}` over "
                    f"{len(design['studied_hacks'])} hacks, {len(design['arms'])} arms × {len(manifest['seeds'])} seeds; "
                    f"reference arm `{design['reference_arm'] or '-'}`")
    if problems:
        body += ["", "## Data problems", "", "Lines of run logs that are not JSON were skipped (every other row "
                 "of those runs is used):", "", *[f"- `{p}`" for p in problems]]
    body += ["", "## Setup", "", *_provenance(frame, results_dir, manifest), "",
             "Statistics:", "", *[f"- {line}" for line in stats.METHODS], ""]
    summary_frames = []
    for part in parts:
        label = part.name or "main"
        table = main_table(part, chosen)
        body += [f"## Results: {label}", "", "Final evaluation (`summary.csv` also has the best-over-training and "
                 "mean-of-last-3 readings), mean ± 95 % CI half-width (n = usable runs); best "
                 "per column in bold. Diverged runs are excluded from the means and counted in `diverged`. "
                 "`s/run` is the median wall-clock time of a run: arms compare at equal steps, not equal compute.",
                 "",
                 to_markdown(table)]
        if "md" in formats:
            rundir.atomic_write(out_dir / "tables" / f"{label}.md", lambda tmp, t=table: Path(tmp).write_text(to_markdown(t)))
        if "tex" in formats:
            tex = to_latex(table, f"{manifest['name']} ({label}): final evaluation, mean ± 95 % CI (n)")
            rundir.atomic_write(out_dir / "tables" / f"{label}.tex", lambda tmp, t=tex: Path(tmp).write_text(t))
        effects = effects_table(part, main)
        if not effects.empty:
            body += [f"Effects on `{main}` against `{part.reference}`:", "", to_markdown(effects)]
            if "md" in formats:
                rundir.atomic_write(out_dir / "tables" / f"{label}_effects.md",
                                   lambda tmp, e=effects: Path(tmp).write_text(to_markdown(e)))
            if "tex" in formats:
                tex = to_latex(effects, f"{manifest['name']} ({label}): effects on {main}")
                rundir.atomic_write(out_dir / "tables" / f"{label}_effects.tex", lambda tmp, t=tex: Path(tmp).write_text(t))
        factorial = factorial_table(part, main)
        if not factorial.empty:
            body += [f"Factorial effects on `{main}` ({'main effects and two-way interactions' if part.interactions else 'main effects; two-way interactions are aliased with each other at this resolution and are not estimated'}):",
                     "", to_markdown(factorial)]
            if "md" in formats:
                rundir.atomic_write(out_dir / "tables" / f"{label}_factorial.md",
                                   lambda tmp, f=factorial: Path(tmp).write_text(to_markdown(f)))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning in a figure is a bug in the report
            figures = [forest_plot(part, chosen, out_dir / "figures" / f"{label}_forest"),
                       main_effects_plot(part, main, out_dir / "figures" / f"{label}_main_effects"),
                       interaction_heatmap(part, main, out_dir / "figures" / f"{label}_interactions"),
                       metric_curves(frame, part, main, out_dir / "figures" / f"{label}_{main}_curves"),
                       loss_curves(training, part, out_dir / "figures" / f"{label}_losses"),
                       sample_montage(results_dir, manifest, part, out_dir / "figures" / f"{label}_samples")]
        for figure in filter(None, figures):
            body += [f"![{figure.stem}](figures/{figure.name})", ""]
        part_frame = frame[frame["arm"].isin(part.arms)]
        for metric in chosen:
            # summary.csv carries all three readings of a run: final, best over training, mean of the last 3.
            summary_frames.append(part.summaries[metric].assign(metric=metric, aggregate="final"))
            for aggregate in ("best", "last_k"):  # 'final' was computed by analyse()
                values = stats.run_values(part_frame, metric, part.directions.get(metric), aggregate)
                summary_frames.append(stats.arm_summary(values).assign(metric=metric, aggregate=aggregate))
    body += ["## Findings", "", *_findings(parts, main), ""]
    if "csv" in formats:
        summary = pd.concat(summary_frames, ignore_index=True)
        rundir.atomic_write(out_dir / "summary.csv", lambda tmp: summary.to_csv(tmp, index=False))
    readme = out_dir / "README.md"
    rundir.atomic_write(readme, lambda tmp: Path(tmp).write_text("\n".join(body)))
    return readme


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
    block = "\n".join(f"{t.read_text()}" for t in tables if not t.stem.endswith("_effects"))
    effects = [t for t in tables if t.stem.endswith("_effects")]
    if effects:
        block += "\n" + "\n".join(t.read_text() for t in effects)
    new = text[: text.index(start) + len(start)] + "\n" + block + text[text.index(end):]
    rundir.atomic_write(readme, lambda tmp: Path(tmp).write_text(new))
