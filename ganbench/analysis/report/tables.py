"""The report's tables: a `Table` per file, rendered as Markdown and LaTeX with the best cells marked."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ganbench.analysis.inference import on_display_scale
from ganbench.analysis.report.analysis import PartResult


@dataclass(frozen=True)
class Table:
    """One table of the report: `tables/<stem>.md` and `.tex`, and a block of the README."""

    stem: str  # file name under tables/, without suffix: '<part>' or '<part>_<kind>'
    title: str  # the tail of the LaTeX caption
    caption: str  # the README's line above it ('' for none)
    frame: pd.DataFrame
    best: Mapping[str, str] = field(default_factory=dict)  # column → the arm whose cell is bold


# The per-part tables beside the main one, in the README's order; `update_readme` copies the main
# tables and then the effect tables (stems ending in these kinds tell them apart).
EXTRA_KINDS = ("compute", "noise", "effects", "equal_compute", "factorial")
EFFECT_KINDS = ("effects", "equal_compute")


def arm_cell(row: pd.Series) -> str:
    """'mean [low, high] (n=…)': the interval inside the metric's range, never '± 0'."""
    if not np.isfinite(row["mean"]):
        return "—"
    if row["n"] > 1 and not np.isfinite(row["std"]) or (row["n"] > 1 and row["std"] == 0):
        return f"{row['mean']:.3g} (all {row['n']} equal)"
    if not np.isfinite(row["ci_low"]):
        return f"{row['mean']:.3g} (n={row['n']})"
    return f"{row['mean']:.3g} [{row['ci_low']:.3g}, {row['ci_high']:.3g}] (n={row['n']})"


def share_text(value: float, n: int) -> str:
    return f"{value:.0%}" if np.isfinite(value) else "unavailable"


def main_table(part: PartResult, metrics: list[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Arms × metrics, 'mean [CI] (n)', plus diverged and failure shares; and metric → its best arm."""
    table = pd.DataFrame({"arm": part.arms})
    best: dict[str, str] = {}
    for metric in metrics:
        summary = part.summaries[metric].set_index("arm")
        table[metric] = [arm_cell(summary.loc[a]) if a in summary.index else "—" for a in part.arms]
        means = summary["mean"].dropna()
        if len(means):
            best[metric] = means.idxmax() if part.directions.get(metric) else means.idxmin()
    first = part.summaries[metrics[0]].set_index("arm")
    table["diverged"] = [f"{first.loc[a, 'diverged']:.0%}" for a in part.arms]
    rates = part.failures.set_index("arm") if not part.failures.empty else pd.DataFrame()
    for label, title in (("failed_to_learn", "failed to learn"), ("mode_collapse", "mode collapse"),
                         ("d_wins", "D wins")):
        table[title] = [share_text(rates.loc[a, label], rates.loc[a, f"{label}_n"]) if a in rates.index else "—"
                        for a in part.arms]
    return table, best


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
        f"seed SD of {metric}": [number_text(v, ".3g") for v in summary["std"]],
        "evaluation SD (latent draws)": [number_text(v, ".3g") for v in summary["eval_sd"]],
        "eval / seed": [number_text(e / sd, ".2f") if np.isfinite(sd) and sd > 0 else "—"
                        for e, sd in zip(summary["eval_sd"], summary["std"])],
    })


def md_cell(value: Any) -> str:
    """A Markdown table cell: `|` escaped (it would end the cell), line breaks as spaces."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: pd.DataFrame, best: Mapping[str, str] | None = None) -> str:
    """A Markdown table; the cell of `best[column]`'s arm in bold."""
    best = best or {}
    header = "| " + " | ".join(md_cell(c) for c in table.columns) + " |"
    lines = [header, "|" + "|".join("---" for _ in table.columns) + "|"]
    for _, row in table.iterrows():
        cells = [f"**{md_cell(row[c])}**" if c in best and best[c] == row.get("arm") else md_cell(row[c])
                 for c in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "—": "--",
        "×": r"$\times$", "−": "-"}


def tex_escape(text: str) -> str:
    """Text as LaTeX typesets it: every special character escaped in one pass (a replacement is
    never escaped again)."""
    return "".join(_TEX.get(ch, ch) for ch in text)


def to_latex(table: pd.DataFrame, caption: str, best: Mapping[str, str] | None = None) -> str:
    """A booktabs LaTeX table with `caption`; the cell of `best[column]`'s arm in bold."""
    best = best or {}
    cols = list(table.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{tex_escape(caption)}}}",
             r"\begin{tabular}{l" + "r" * (len(cols) - 1) + "}", r"\toprule",
             " & ".join(tex_escape(c) for c in cols) + r" \\", r"\midrule"]
    for _, row in table.iterrows():
        cells = []
        for c in cols:
            text = tex_escape(str(row[c]))
            cells.append(rf"\textbf{{{text}}}" if c in best and best[c] == row.get("arm") else text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def number_text(value: float, spec: str) -> str:
    return format(value, spec) if np.isfinite(value) else "—"


def interval_text(row: Any) -> str:
    """'Δ [adjusted CI]' in display units (% change on the log scale)."""
    if not np.isfinite(getattr(row, "estimate", math.nan)):
        return "—"
    values = [on_display_scale(v, row.scale) for v in (row.estimate, row.adj_low, row.adj_high)]
    if row.scale == "log":  # % change: whole percents past ±10 %, never 1e+02
        text = [number_text(v, "+.0f" if abs(v) >= 10 else "+.1f") if np.isfinite(v) else "—" for v in values]
        return f"{text[0]} % [{text[1]} %, {text[2]} %]"
    return f"{number_text(values[0], '+.3g')} [{number_text(values[1], '+.3g')}, {number_text(values[2], '+.3g')}]"


def effects_table(part: PartResult, metric: str) -> pd.DataFrame:
    comparison = part.comparisons.get(metric, pd.DataFrame())
    if comparison.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "arm": comparison["arm"],
        f"Δ {metric} vs {part.reference} [simultaneous CI]": [interval_text(r) for r in comparison.itertuples()],
        "n": [f"{r.n:.0f} vs {r.n_reference:.0f}" for r in comparison.itertuples()],
        "test": comparison["test"],
        "p (uncorrected)": [number_text(r.p, ".3g") for r in comparison.itertuples()],
        "p (Holm, family)": [number_text(r.p_holm, ".3g") for r in comparison.itertuples()],
        "p (Dunnett)": [number_text(r.p_dunnett, ".3g") for r in comparison.itertuples()],
        "p (Welch, raw)": [number_text(r.p_welch, ".3g") for r in comparison.itertuples()],
        "p (permutation)": [number_text(r.p_permutation, ".3g") for r in comparison.itertuples()],
        "Hedges' g": [number_text(r.g, "+.2f") for r in comparison.itertuples()],
        "verdict": comparison["verdict"],
    })


def equal_compute_table(part: PartResult, metric: str) -> pd.DataFrame:
    rows = part.equal_compute
    if rows.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "arm": rows["arm"], "basis": rows["basis"],
        f"Δ {metric} vs {part.reference} [simultaneous CI]": [interval_text(r) for r in rows.itertuples()],
        "n": [f"{r.n:.0f} vs {r.n_reference:.0f}" if np.isfinite(getattr(r, "n", math.nan)) else "—"
              for r in rows.itertuples()],
        "p (Holm, family)": [number_text(r.p_holm, ".3g") for r in rows.itertuples()],
        "verdict": [r.verdict if r.basis == "equal FLOPs" else "estimate only (outside the family)"
                    for r in rows.itertuples()],
        "where": rows["note"].fillna(""),
    })


def factorial_table(part: PartResult, metric: str) -> pd.DataFrame:
    effects = part.factorial.get(metric, pd.DataFrame())
    if effects.empty:
        return effects
    return pd.DataFrame({
        "term": effects["term"],
        f"effect on {metric} (off → on) [95 % CI]": [
            f"{r.effect:+.3g} [{r.ci_low:+.3g}, {r.ci_high:+.3g}]" for r in effects.itertuples()],
        "p (t)": [number_text(r.p, ".3g") for r in effects.itertuples()],
        "dof": effects["dof"],
    })
