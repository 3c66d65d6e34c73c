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
from ganbench.analysis import failures, inference, stats  # noqa: E402
from ganbench.analysis.inference import on_display_scale  # noqa: E402
from ganbench.analysis.literature import literature_tables  # noqa: E402
from ganbench.analysis.results import (load_manifest, load_results, load_step_costs,  # noqa: E402
                                       load_training_stats, metric_directions, save_results)
from ganbench.metrics.registry import value_range  # noqa: E402
from ganbench.suitedir import SuiteDir  # noqa: E402

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
    comparisons: dict[str, pd.DataFrame]  # metric → comparison rows at equal steps, after the family correction
    equal_compute: pd.DataFrame  # primary metric at equal FLOPs (in the family) and equal seconds (estimates)
    failures: pd.DataFrame  # arm → shares of failed to learn / mode collapse / D wins
    factorial: dict[str, pd.DataFrame]  # metric → factorial_effects (factorial designs only)
    interactions: bool  # two-way interactions estimable (full factorial, or resolution ≥ V)
    compute: pd.DataFrame  # arm → parameters, FLOPs per step, seconds per step timed alone
    directions: dict[str, bool | None]  # metric → higher is better (True/False) or neither (None), from its rows


@dataclass
class Analysis:
    """Every part, and the choices that shape the whole report's inference."""

    parts: list[PartResult]
    primary: str
    verdict_metrics: list[str]
    family_size: int
    exploratory: bool  # no row could be tested (every comparison has < MIN_SEEDS runs on a side)


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


def choose_metrics(chosen: list[str], analysis: dict[str, Any]) -> tuple[str, list[str]]:
    """(primary metric, verdict metrics): the suite's `analysis` section, else the dataset's FID
    (the fmnist one where present) and the next three scored metrics reported."""
    primary = analysis.get("primary") or next((m for m in ("fid_fmnist", "fid") if m in chosen), chosen[0])
    if primary not in chosen:
        raise ValueError(f"the suite's primary metric '{primary}' is not in these results; present: {chosen}")
    verdicts = list(analysis.get("verdicts") or [primary, *[m for m in chosen if m != primary][:3]])
    if primary not in verdicts:
        verdicts.insert(0, primary)
    return primary, [m for m in verdicts if m in chosen]


def _compute_table(frame: pd.DataFrame, arms: list[str], costs: dict[str, Any]) -> pd.DataFrame:
    runs = frame[frame["arm"].isin(arms)].drop_duplicates(["arm", "run_id"])
    timed = costs.get("arms", {})
    rows = []
    for arm in arms:
        first = runs[runs["arm"] == arm].head(1)
        value = (lambda col: first[col].iloc[0] if len(first) and col in first and pd.notna(first[col].iloc[0])
                 else math.nan)
        rows.append({"arm": arm, "params_g": value("params_g"), "params_d": value("params_d"),
                     "flops_per_step": value("flops_per_step"), "steps": value("knob_steps"),
                     "step_seconds": timed.get(arm, {}).get("step_seconds", math.nan)})
    return pd.DataFrame(rows)


def analyse(frame: pd.DataFrame, training: pd.DataFrame, manifest: dict[str, Any], metrics: list[str],
            costs: dict[str, Any] | None = None) -> Analysis:
    directions = metric_directions(frame)
    primary, verdict_metrics = choose_metrics(metrics, manifest.get("analysis") or {})
    labels = failures.failure_labels(frame, training)
    parts, rows = [], []
    for design in manifest["designs"]:
        arms = [a["name"] for a in design["arms"]]
        part_frame = frame[frame["arm"].isin(arms)]
        reference = design["reference_arm"]
        others = [a for a in arms if a != reference]
        summaries = {}
        for metric in metrics:
            values = stats.run_values(part_frame, metric, directions.get(metric))
            summaries[metric] = stats.arm_summary(values, value_range(metric))
            if reference and metric in verdict_metrics:
                rows.append(inference.compare_to_reference(values, reference, metric, directions.get(metric), others)
                            .assign(part=design["part"]))
        compute = _compute_table(frame, arms, costs or {})
        if reference:
            flops = compute.set_index("arm")["flops_per_step"].dropna().to_dict()
            rows.append(inference.compare_at_equal_compute(part_frame, reference, primary, directions.get(primary),
                                                           flops, others, "FLOPs").assign(part=design["part"]))
            seconds = compute.set_index("arm")["step_seconds"].dropna().to_dict()
            timed = inference.compare_at_equal_compute(part_frame, reference, primary, directions.get(primary),
                                                       seconds, others, "seconds")
            rows.append(timed.assign(part=design["part"], testable=False))  # an estimate, outside the family
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
        parts.append(PartResult(design["part"], design["kind"], reference, arms, summaries, {}, pd.DataFrame(),
                                failures.failure_rates(labels[labels["arm"].isin(arms)]), factorial, interactions,
                                compute, directions))
    family = inference.apply_family(pd.concat(rows, ignore_index=True)) if rows else pd.DataFrame()
    for part in parts:
        mine = family[family["part"] == part.name] if not family.empty else family
        for metric in verdict_metrics:
            part.comparisons[metric] = (mine[(mine["metric"] == metric) & (mine["basis"] == "equal steps")]
                                        if not mine.empty else pd.DataFrame())
        part.equal_compute = mine[mine["basis"] != "equal steps"] if not mine.empty else pd.DataFrame()
    size = int(family["family_size"].iloc[0]) if not family.empty else 0
    return Analysis(parts, primary, verdict_metrics, size, size == 0)


# --- Tables -------------------------------------------------------------------------------------

def _cell(row: pd.Series) -> str:
    """'mean [low, high] (n=…)': the interval inside the metric's range, never '± 0'."""
    if not np.isfinite(row["mean"]):
        return "—"
    if row["n"] > 1 and not np.isfinite(row["std"]) or (row["n"] > 1 and row["std"] == 0):
        return f"{row['mean']:.3g} (all {row['n']} equal)"
    if not np.isfinite(row["ci_low"]):
        return f"{row['mean']:.3g} (n={row['n']})"
    return f"{row['mean']:.3g} [{row['ci_low']:.3g}, {row['ci_high']:.3g}] (n={row['n']})"


def _share(value: float, n: int) -> str:
    return f"{value:.0%}" if np.isfinite(value) else "unavailable"


def main_table(part: PartResult, metrics: list[str]) -> pd.DataFrame:
    """Arms × metrics, 'mean [CI] (n)', plus diverged and failure shares; best marked."""
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
    rates = part.failures.set_index("arm") if not part.failures.empty else pd.DataFrame()
    for label, title in (("failed_to_learn", "failed to learn"), ("mode_collapse", "mode collapse"),
                         ("d_wins", "D wins")):
        table[title] = [_share(rates.loc[a, label], rates.loc[a, f"{label}_n"]) if a in rates.index else "—"
                        for a in part.arms]
    table.attrs["best"] = best
    return table


def compute_table(part: PartResult) -> pd.DataFrame:
    """Per arm: parameters, FLOPs per step, seconds per step timed alone, and the run's budget."""
    def fmt(value: float, spec: str, scale: float = 1.0) -> str:
        return format(value / scale, spec) if np.isfinite(value) else "unavailable"

    c = part.compute
    return pd.DataFrame({
        "arm": c["arm"], "params G (M)": [fmt(v, ".3f", 1e6) for v in c["params_g"]],
        "params D (M)": [fmt(v, ".3f", 1e6) for v in c["params_d"]],
        "GFLOPs/step": [fmt(v, ".2f", 1e9) for v in c["flops_per_step"]],
        "steps": [fmt(v, ".0f") for v in c["steps"]],
        "total TFLOPs": [fmt(f * n, ".1f", 1e12) for f, n in zip(c["flops_per_step"], c["steps"])],
        "s/step alone": [fmt(v, ".3g") for v in c["step_seconds"]],
    })


def noise_table(part: PartResult, metric: str) -> pd.DataFrame:
    """Per arm: SD over seeds next to the evaluation noise (SD over latent draws of one generator)."""
    summary = part.summaries[metric]
    return pd.DataFrame({
        "arm": summary["arm"], "n": summary["n"],
        f"seed SD of {metric}": [_num(v, ".3g") for v in summary["std"]],
        "evaluation SD (latent draws)": [_num(v, ".3g") for v in summary["eval_sd"]],
        "eval / seed": [_num(e / sd, ".2f") if np.isfinite(sd) and sd > 0 else "—"
                        for e, sd in zip(summary["eval_sd"], summary["std"])],
    })


def _md_cell(value: Any) -> str:
    """A Markdown table cell: `|` escaped (it would end the cell), line breaks as spaces."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: pd.DataFrame) -> str:
    best = table.attrs.get("best", {})
    header = "| " + " | ".join(_md_cell(c) for c in table.columns) + " |"
    lines = [header, "|" + "|".join("---" for _ in table.columns) + "|"]
    for _, row in table.iterrows():
        cells = [f"**{_md_cell(row[c])}**" if c in best and best[c] == row.get("arm") else _md_cell(row[c])
                 for c in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "—": "--",
        "×": r"$\times$", "−": "-"}


def _tex_escape(text: str) -> str:
    """Text as LaTeX typesets it: every special character escaped in one pass (a replacement is
    never escaped again)."""
    return "".join(_TEX.get(ch, ch) for ch in text)


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


def _interval(row: Any) -> str:
    """'Δ [adjusted CI]' in display units (% change on the log scale)."""
    if not np.isfinite(getattr(row, "estimate", math.nan)):
        return "—"
    values = [on_display_scale(v, row.scale) for v in (row.estimate, row.adj_low, row.adj_high)]
    if row.scale == "log":  # % change: whole percents past ±10 %, never 1e+02
        text = [_num(v, "+.0f" if abs(v) >= 10 else "+.1f") if np.isfinite(v) else "—" for v in values]
        return f"{text[0]} % [{text[1]} %, {text[2]} %]"
    return f"{_num(values[0], '+.3g')} [{_num(values[1], '+.3g')}, {_num(values[2], '+.3g')}]"


def effects_table(part: PartResult, metric: str) -> pd.DataFrame:
    comparison = part.comparisons.get(metric, pd.DataFrame())
    if comparison.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "arm": comparison["arm"],
        f"Δ {metric} vs {part.reference} [simultaneous CI]": [_interval(r) for r in comparison.itertuples()],
        "n": [f"{r.n:.0f} vs {r.n_reference:.0f}" for r in comparison.itertuples()],
        "test": comparison["test"],
        "p (uncorrected)": [_num(r.p, ".3g") for r in comparison.itertuples()],
        "p (Holm, family)": [_num(r.p_holm, ".3g") for r in comparison.itertuples()],
        "p (Dunnett)": [_num(r.p_dunnett, ".3g") for r in comparison.itertuples()],
        "p (Welch, raw)": [_num(r.p_welch, ".3g") for r in comparison.itertuples()],
        "p (permutation)": [_num(r.p_permutation, ".3g") for r in comparison.itertuples()],
        "Hedges' g": [_num(r.g, "+.2f") for r in comparison.itertuples()],
        "verdict": comparison["verdict"],
    })


def equal_compute_table(part: PartResult, metric: str) -> pd.DataFrame:
    rows = part.equal_compute
    if rows.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "arm": rows["arm"], "basis": rows["basis"],
        f"Δ {metric} vs {part.reference} [simultaneous CI]": [_interval(r) for r in rows.itertuples()],
        "n": [f"{r.n:.0f} vs {r.n_reference:.0f}" if np.isfinite(getattr(r, "n", math.nan)) else "—"
              for r in rows.itertuples()],
        "p (Holm, family)": [_num(r.p_holm, ".3g") for r in rows.itertuples()],
        "verdict": [r.verdict if r.basis == "equal FLOPs" else "estimate only (outside the family)"
                    for r in rows.itertuples()],
        "where": rows["note"].fillna(""),
    })


# --- Figures ------------------------------------------------------------------------------------

def _save(fig: plt.Figure, path: Path) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    # No timestamps in the files, so a regenerated report is byte-identical.
    fig.savefig(path.with_suffix(".png"), dpi=150, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight", metadata={"CreationDate": None, "ModDate": None})
    plt.close(fig)
    return [path.with_suffix(".png"), path.with_suffix(".pdf")]


VERDICT_ORDER = ("better", "worse", "no clear difference", "exploratory", "too few runs")


def forest_plot(part: PartResult, metrics: list[str], path: Path) -> Path | None:
    """Each verdict metric's differences from the reference with their simultaneous intervals."""
    shown = [m for m in metrics if not part.comparisons.get(m, pd.DataFrame()).empty]
    if not shown:
        return None
    fig, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown) + 1.5, 0.42 * len(part.arms) + 1.6),
                             sharey=True, squeeze=False)
    palette = dict(zip(VERDICT_ORDER, sns.color_palette("colorblind", len(VERDICT_ORDER))))
    for ax, metric in zip(axes[0], shown):
        comp = part.comparisons[metric].iloc[::-1]
        y = np.arange(len(comp))
        for yi, row in zip(y, comp.itertuples()):
            mid, lo, hi = (on_display_scale(v, row.scale) for v in (row.estimate, row.adj_low, row.adj_high))
            if np.isfinite(mid):
                ax.errorbar(mid, yi, xerr=[[mid - lo], [hi - mid]] if np.isfinite(lo) else None, fmt="o",
                            color=palette.get(row.verdict, "grey"), capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, comp["arm"])
        arrow = "↑ better" if part.directions.get(metric) else "↓ better"
        unit = " (%)" if (comp["scale"] == "log").any() else ""
        ax.set_xlabel(f"Δ {metric}{unit} vs {part.reference} ({arrow})")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=v) for v, c in palette.items()]
    fig.legend(handles=handles, loc="lower center", ncol=5, bbox_to_anchor=(0.5, -0.02 - 0.3 / len(part.arms)),
               frameon=False)
    fig.suptitle(f"{part.name or 'design'}: each arm vs '{part.reference}' at equal steps "
                 "(simultaneous intervals over the report's family)")
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
    suite_dir = SuiteDir(results_dir)
    for arm in part.arms:
        entry = min((r for r in manifest["runs"] if r["arm"] == arm), key=lambda r: r["seed"], default=None)
        try:
            grids = sorted((suite_dir.run_path(entry["run_id"]) / "samples").glob("step_*.png")) if entry else []
        except rundir.RunDirError:
            grids = []
        if grids:
            try:
                with Image.open(grids[-1]) as image:
                    image.load()
            except (OSError, SyntaxError) as err:  # PIL raises these for a truncated or foreign file
                warnings.warn(f"{grids[-1]}: not a readable PNG ({err}); arm {arm} left out of the sample montage",
                              rundir.CorruptLineWarning, stacklevel=2)
                continue
            tiles.append((f"{arm} (seed {entry['seed']})", image))
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

def _first_config(results_dir: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """config.json of the first run that has started and whose record reads (a report of a partly
    trained suite, `run --only`, must not need the rest; a damaged one is said by load_results)."""
    suite_dir = SuiteDir(results_dir)
    for entry in manifest["runs"]:
        try:
            config = suite_dir.run_dir(entry["run_id"]).read_config()
        except rundir.RunDirError:
            continue
        if config and isinstance(config.get("provenance"), dict):
            return config
    return None


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
    # The first run that has started: a report of a partly trained suite (`run --only`) must not need the rest.
    config = _first_config(results_dir, manifest)
    if config:
        prov, cfg = config["provenance"], config["config"]
        versions = ", ".join(f"{k} {v}" for k, v in prov["versions"].items())
        equal_steps = (manifest.get("budget") or {}).get("kind", "steps") == "steps"
        steps = f"{cfg['steps']} steps" if equal_steps else "the steps of the compute table"
        lines.append(f"- training: {steps} of batch {cfg['batch_size']} on `{cfg['dataset']}` "
                     f"(`{cfg['data_split']}` split), precision {cfg['precision']}, evaluation every "
                     f"{cfg['eval_every']} steps")
        lines.append(f"- machine: {prov['machine'].get('host_cpu')} ({prov['machine'].get('cpu_count')} cores), "
                     f"device `{prov['machine'].get('device')}`; {versions}; ganbench commit `{prov['git_commit']}`")
    return lines


def _finding_numbers(row: Any, metric: str, family: int) -> str:
    return (f"{row.basis}, Δ {metric} = {_interval(row)} (simultaneous CI), n = {row.n:.0f} vs {row.n_reference:.0f}, "
            f"{row.test}" + (f", Holm p = {_num(row.p_holm, '.3g')} in a family of {family}"
                             if np.isfinite(row.p_holm) else
                             f", not tested (exploratory; Bonferroni interval over {row.family_rows} comparisons)"))


def _findings(result: Analysis) -> list[str]:
    """One line per arm on the primary metric, at equal steps and equal FLOPs, with the other
    verdict metrics' verdicts where they say something; every line gives basis, n, CI, family."""
    metric, lines = result.primary, []
    for part in result.parts:
        steps = part.comparisons.get(metric, pd.DataFrame())
        if steps.empty:
            continue
        compute = part.equal_compute
        flops = {r.arm: r for r in compute[compute["basis"] == "equal FLOPs"].itertuples()} if len(compute) else {}
        if result.exploratory:
            lines += _exploratory_findings(part, steps, flops, metric)
            steps = steps.iloc[0:0]
        verdicts = {m: dict(zip(part.comparisons[m]["arm"], part.comparisons[m]["verdict"]))
                    for m in result.verdict_metrics if m != metric and not part.comparisons[m].empty}
        for row in steps.itertuples():
            at_steps = _finding_numbers(row, metric, result.family_size)
            crow = flops.get(row.arm)
            compute_verdict = crow.verdict if crow is not None and np.isfinite(crow.estimate) else None
            if compute_verdict is not None:
                at_compute = f"{_finding_numbers(crow, metric, result.family_size)}; {crow.note}"
            else:
                at_compute = crow.note if crow is not None and isinstance(crow.note, str) else "no equal-compute reading"
            if row.verdict in ("better", "worse") and compute_verdict not in (None, row.verdict):
                head = (f"- **{row.arm}** is {row.verdict} than `{part.reference}` at equal steps but "
                        f"*{compute_verdict}* at equal compute: both readings hold under their conditions")
            elif row.verdict in ("better", "worse"):
                head = f"- **{row.arm}** is {row.verdict} than `{part.reference}` at equal steps"
                if compute_verdict == row.verdict:
                    head += " and at equal compute"
            elif compute_verdict in ("better", "worse"):
                head = (f"- **{row.arm}**: {row.verdict} from `{part.reference}` at equal steps, "
                        f"{compute_verdict} at equal compute")
            else:
                head = f"- {row.arm}: {row.verdict} (equal steps)" + (
                    f", {compute_verdict} (equal compute)" if compute_verdict else "")
            others = [f"{m}: {v[row.arm]}" for m, v in verdicts.items() if v.get(row.arm) in ("better", "worse")]
            lines.append(f"{head} ({at_steps}; {at_compute})." + (
                f" Other metrics: {', '.join(others)}." if others else ""))
        summary = part.summaries[metric]
        for row in summary.itertuples():
            if row.diverged > 0 or row.failed > 0:
                lines.append(f"- {row.arm}: {row.diverged:.0%} of its {row.runs} runs diverged and "
                             f"{row.failed:.0%} failed; they are excluded from its mean and counted here.")
            if row.unfinished > 0:
                lines.append(f"- {row.arm}: {row.unfinished:.0%} of its {row.runs} runs have not finished; "
                             "its numbers are provisional.")
    return lines or ["- No arm could be compared with a reference arm."]


def _exploratory_findings(part: PartResult, steps: pd.DataFrame, flops: dict[str, Any], metric: str) -> list[str]:
    """No verdicts: each arm's estimate at equal steps and at equal FLOPs, with n and the intervals."""
    lines = []
    for row in steps.itertuples():
        text = f"- {row.arm} vs `{part.reference}` on {metric}: equal steps {_interval(row)}"
        crow = flops.get(row.arm)
        if crow is not None:
            text += (f"; equal FLOPs {_interval(crow)} ({crow.note})" if np.isfinite(crow.estimate)
                     else f"; equal FLOPs {crow.note}")
        lines.append(f"{text}; n = {row.n:.0f} vs {row.n_reference:.0f}; not tested (exploratory), simultaneous "
                     f"Bonferroni intervals over the {row.family_rows} comparisons shown.")
    return lines


def _inference_lines(result: Analysis, manifest: dict[str, Any]) -> list[str]:
    budget = (manifest.get("budget") or {}).get("text", "equal steps")
    if result.exploratory:
        mode = (f"**Exploratory study**: fewer than {inference.MIN_SEEDS} usable runs per arm, so no comparison is "
                "tested and there are no better/worse verdicts; the tables give estimates with simultaneous "
                "intervals (Bonferroni over every comparison shown). Run at least "
                f"{inference.MIN_SEEDS} seeds per arm for verdicts.")
    else:
        mode = (f"Verdicts: at equal steps from the pooled-variance model (Dunnett and Welch p beside it), at "
                f"equal FLOPs from Welch's t; one Holm correction over a family of {result.family_size} "
                "comparisons (every verdict in this report), with simultaneous intervals that agree with it.")
    return [mode, "", f"- primary metric: `{result.primary}`; verdict metrics: "
            f"{', '.join(f'`{m}`' for m in result.verdict_metrics)}",
            f"- budget: {budget}", f"- {inference.INTERPOLATION}"]


def _shown_path(path: Path) -> str:
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
    with warnings.catch_warnings(record=True) as caught:  # damaged log lines: skipped, and said in the report
        warnings.simplefilter("always", rundir.CorruptLineWarning)
        frame = load_results(results_dir)
        training = load_training_stats(results_dir)
    problems = [str(w.message) for w in caught if issubclass(w.category, rundir.CorruptLineWarning)]
    for w in caught:  # anything else, and each problem once more for the caller (the CLI prints them)
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    chosen = reported_metrics(frame, metrics)
    if not chosen:
        raise ValueError(f"no evaluated metric in {results_dir}: nothing to report yet")
    result = analyse(frame, training, manifest, chosen, load_step_costs(results_dir))
    sns.set_theme(style="whitegrid", palette="colorblind", context="paper")
    main = result.primary
    body = [f"# {manifest['name']}: {manifest.get('description', '')}", "",
            f"Generated by `ganbench report {_shown_path(results_dir)}` from {len(manifest['runs'])} runs.", "",
            "## Design", ""]
    for design in manifest["designs"]:
        body.append(f"- {design['part'] or 'design'}: `{design['kind']}` from preset `{design['preset']}` over "
                    f"{len(design['studied_hacks'])} hacks, {len(design['arms'])} arms × {len(manifest['seeds'])} seeds; "
                    f"reference arm `{design['reference_arm'] or '-'}`")
    body += ["", "## Inference", "", *_inference_lines(result, manifest)]
    if problems:
        body += ["", "## Data problems", "", "Lines of run logs that are not JSON were skipped (every other row "
                 "of those runs is used):", "", *[f"- `{p}`" for p in problems]]
    body += ["", "## Setup", "", *_provenance(frame, results_dir, manifest), "",
             "Statistics:", "", *[f"- {line}" for line in stats.METHODS], "",
             "Failure labels (shares of completed runs):", "", *[f"- {line}" for line in failures.DEFINITIONS], ""]
    summary_frames, family_frames = [], []
    for part in result.parts:
        label = part.name or "main"
        table = main_table(part, chosen)
        body += [f"## Results: {label}", "", "Final evaluation (the mean of its latent draws; `summary.csv` also has "
                 "the best-over-training and mean-of-last-3 readings): mean [95 % CI inside the metric's range] "
                 "(n = usable runs); best per column in bold. Diverged runs are excluded from the means and counted "
                 "in `diverged`.", "", to_markdown(table)]
        _write_table(out_dir, label, table, f"{manifest['name']} ({label}): final evaluation, mean [95 % CI] (n)",
                     formats)
        tables = [("compute", compute_table(part), "What each arm costs: parameters, FLOPs per training step "
                   "(counted), seconds per step timed alone on the sweep's device. Equal steps is not equal compute.",
                   "compute per arm"),
                  ("noise", noise_table(part, main), f"Evaluation noise against seed noise on `{main}`: a "
                   "difference smaller than the evaluation SD cannot be told from a different latent draw.",
                   "evaluation noise vs seed noise"),
                  ("effects", effects_table(part, main), f"Effects on `{main}` against `{part.reference}` at "
                   f"equal steps ({'exploratory: no tests' if result.exploratory else 'verdicts from the family'}):",
                   f"effects on {main} at equal steps"),
                  ("equal_compute", equal_compute_table(part, main), f"`{main}` against `{part.reference}` at "
                   "equal compute (FLOPs: in the family; seconds timed alone: an estimate):",
                   f"{main} at equal compute"),
                  ("factorial", factorial_table(part, main), f"Factorial effects on `{main}` "
                   f"({'main effects and two-way interactions' if part.interactions else 'main effects; two-way interactions are aliased with each other at this resolution and are not estimated'}):",
                   f"factorial effects on {main}")]
        for suffix, extra, caption, title in tables:
            if not extra.empty:
                body += [caption, "", to_markdown(extra)]
                _write_table(out_dir, f"{label}_{suffix}", extra, f"{manifest['name']} ({label}): {title}", formats)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning in a figure is a bug in the report
            warnings.simplefilter("always", rundir.CorruptLineWarning)  # a damaged sample grid is the data's
            figures = [forest_plot(part, result.verdict_metrics, out_dir / "figures" / f"{label}_forest"),
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
                summary_frames.append(stats.arm_summary(values, value_range(metric))
                                      .assign(metric=metric, aggregate=aggregate))
        family_frames += [*part.comparisons.values(), part.equal_compute]
    for protocol, lines, table in literature_tables(frame, _cell):
        body += ["## Against the literature", "", *lines, "", to_markdown(table), ""]
        _write_table(out_dir, f"literature_{protocol}", table, f"{manifest['name']}: our runs beside the published "
                     f"figures under protocol {protocol}", formats)
    body += ["## Findings", "", *_findings(result), ""]
    if "csv" in formats:
        save_results(frame, out_dir)  # the tidy table, beside the report that was made from it
        summary = pd.concat(summary_frames, ignore_index=True)
        rundir.atomic_write(out_dir / "summary.csv", lambda tmp: summary.to_csv(tmp, index=False))
        family = pd.concat([f for f in family_frames if not f.empty] or [pd.DataFrame()], ignore_index=True)
        rundir.atomic_write(out_dir / "comparisons.csv", lambda tmp: family.to_csv(tmp, index=False))
    readme = out_dir / "README.md"
    rundir.atomic_write(readme, lambda tmp: Path(tmp).write_text("\n".join(body)))
    return readme


def _write_table(out_dir: Path, stem: str, table: pd.DataFrame, caption: str, formats: Sequence[str]) -> None:
    if "md" in formats:
        rundir.atomic_write(out_dir / "tables" / f"{stem}.md", lambda tmp: Path(tmp).write_text(to_markdown(table)))
    if "tex" in formats:
        tex = to_latex(table, caption)
        rundir.atomic_write(out_dir / "tables" / f"{stem}.tex", lambda tmp: Path(tmp).write_text(tex))


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
    extras = ("_compute", "_noise", "_effects", "_equal_compute", "_factorial")
    block = "\n".join(f"{t.read_text()}" for t in tables if not t.stem.endswith(extras))
    effects = [t for t in tables if t.stem.endswith(("_effects", "_equal_compute"))]
    if effects:
        block += "\n" + "\n".join(t.read_text() for t in effects)
    new = text[: text.index(start) + len(start)] + "\n" + block + text[text.index(end):]
    rundir.atomic_write(readme, lambda tmp: Path(tmp).write_text(new))
