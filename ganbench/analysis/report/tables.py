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
EXTRA_KINDS = ("compute", "noise", "convergence", "effects", "equal_compute", "factorial")
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
    """A label's share of the runs where it is decided, with the count ('60 % (3/5)'); n/a where it is
    decided for none of them."""
    return f"{value:.0%} ({round(value * n):.0f}/{n:.0f})" if np.isfinite(value) else "n/a (undecidable)"


def main_table(part: PartResult, metrics: list[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Arms × metrics, 'mean [CI] (n)', plus diverged and failure shares; and metric → its clearly best arm."""
    table = pd.DataFrame({"arm": part.arms})
    best: dict[str, str] = {}
    for metric in metrics:
        summary = part.summaries[metric].set_index("arm")
        table[metric] = [arm_cell(summary.loc[a]) if a in summary.index else "—" for a in part.arms]
        leader = clear_best(summary, part.directions.get(metric))
        if leader is not None:
            best[metric] = leader
    first = part.summaries[metrics[0]].set_index("arm")
    table["diverged"] = [f"{first.loc[a, 'diverged']:.0%}" for a in part.arms]
    rates = part.failures.set_index("arm") if not part.failures.empty else pd.DataFrame()
    for label, title in (("failed_to_learn", "failed to learn"), ("mode_collapse", "mode collapse"),
                         ("d_wins", "D wins")):
        table[title] = [share_text(rates.loc[a, label], rates.loc[a, f"{label}_n"]) if a in rates.index else "—"
                        for a in part.arms]
    for i, arm in enumerate(part.arms):  # another part's very runs: said once, there, not printed again
        if arm in part.same_runs:
            table.loc[i, table.columns[1:]] = [f"same runs as `{part.same_runs[arm]}`"] + [""] * (len(table.columns) - 2)
    return table, best


def clear_best(summary: pd.DataFrame, higher_is_better: bool | None) -> str | None:
    """The arm with the best mean whose interval lies clear of every other arm's (so bold means something);
    None when intervals overlap, there is a tie, or no direction."""
    rows = summary.dropna(subset=["mean"])
    if higher_is_better is None or len(rows) < 2:
        return None
    order = rows["mean"].sort_values(ascending=not higher_is_better)
    leader, runner_up = order.index[0], order.index[1]
    if order.iloc[0] == order.iloc[1]:
        return None
    low, high = rows.loc[leader, "ci_low"], rows.loc[leader, "ci_high"]
    others = rows.drop(index=leader)
    if not (np.isfinite(low) and np.isfinite(high)) or others[["ci_low", "ci_high"]].isna().any().any():
        return None
    clear = (others["ci_high"] < low).all() if higher_is_better else (others["ci_low"] > high).all()
    return str(leader) if clear and runner_up is not None else None


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
    """Per arm: SD of run values over seeds next to the evaluation noise in a run's value (the SD over one
    generator's latent draws, and that over √draws: the SD of their mean, which is what a run's value is)."""
    summary = part.summaries[metric]
    of_value = summary["eval_sd_of_value"] if "eval_sd_of_value" in summary else pd.Series(math.nan, summary.index)
    return pd.DataFrame({
        "arm": summary["arm"], "n": summary["n"],
        f"seed SD of {metric}": [number_text(v, ".3g") for v in summary["std"]],
        "SD of one draw": [number_text(v, ".3g") for v in summary["eval_sd"]],
        "SD of a run's value (draw mean)": [number_text(v, ".3g") for v in of_value],
        "value SD / seed SD": [number_text(e / sd, ".2f") if np.isfinite(sd) and sd > 0 and np.isfinite(e) else "—"
                               for e, sd in zip(of_value, summary["std"])],
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
        "×": r"$\times$", "−": "-", "Δ": r"$\Delta$", "→": r"$\to$", "≤": r"$\le$", "≥": r"$\ge$",
        "√": r"$\surd$", "∞": r"$\infty$", "·": r"$\cdot$", "…": r"\ldots{}", "‖": r"$\|$", "◂": "<", "▸": ">"}


def tex_escape(text: str) -> str:
    """Text as LaTeX typesets it: every special character escaped in one pass (a replacement is
    never escaped again)."""
    return "".join(_TEX.get(ch, ch) for ch in text)


LATEX_PACKAGES = r"\usepackage{booktabs}\usepackage{graphicx}"  # what every .tex table of a report needs


def to_latex(table: pd.DataFrame, caption: str, best: Mapping[str, str] | None = None) -> str:
    """A booktabs LaTeX table with `caption`, at its natural size, shrunk to the text width only when wider
    (`\\resizebox` with graphicx's `\\width`: a narrow table is never blown up, a wide one never overflows);
    the cell of `best[column]`'s arm in bold. The symbols the report writes (Δ, →, ≤, ±, …) are escaped, so
    pdflatex compiles it. Needs booktabs and graphicx (`LATEX_PACKAGES`), said in its first line."""
    best = best or {}
    cols = list(table.columns)
    lines = [f"% ganbench table; needs {LATEX_PACKAGES} in the preamble", r"\begin{table}[t]", r"\centering",
             r"\small", rf"\caption{{{tex_escape(caption)}}}",
             r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
             r"\begin{tabular}{l" + "r" * (len(cols) - 1) + "}", r"\toprule",
             " & ".join(tex_escape(c) for c in cols) + r" \\", r"\midrule"]
    for _, row in table.iterrows():
        cells = []
        for c in cols:
            text = tex_escape(str(row[c]))
            cells.append(rf"\textbf{{{text}}}" if c in best and best[c] == row.get("arm") else text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


FAILURE_COLUMNS = ("diverged", "failed to learn", "mode collapse", "D wins")
P_FAMILY = "p (family: worst-case variance ratio, Bonferroni)"
COMPACT_EFFECT_COLUMNS = (P_FAMILY, "verdict")  # beside arm and Δ [CI] in a paper's table


def latex_pieces(table: "Table") -> list["Table"]:
    """The LaTeX tables of one report table, each readable at a column's width: the main table as one table
    per metric (arm, mean [CI] (n)) and one of failure shares; the effects table as one per metric (arm,
    Δ [simultaneous CI], family p, verdict); the others whole. The Markdown and CSV keep every column."""
    frame = table.frame
    if table.stem.rsplit("_", 1)[-1] not in EXTRA_KINDS and "arm" in frame and "metric" not in frame:
        metrics = [c for c in frame.columns if c != "arm" and c not in FAILURE_COLUMNS]
        pieces = [Table(f"{table.stem}_{metric}", f"{table.title}: {metric}", "",
                        frame[["arm", metric]].rename(columns={metric: f"{metric}: mean [95 % CI] (n)"}),
                        {f"{metric}: mean [95 % CI] (n)": table.best[metric]} if metric in table.best else {})
                  for metric in metrics]
        failures = [c for c in FAILURE_COLUMNS if c in frame]
        return pieces + ([Table(f"{table.stem}_failures", f"{table.title}: failures (shares of runs)", "",
                                frame[["arm", *failures]])] if failures else [])
    if table.stem.endswith("_effects") and "metric" in frame:
        delta = next(c for c in frame.columns if c.startswith("Δ"))
        return [Table(f"{table.stem}_{metric}", f"{table.title}: {metric}", "",
                      rows[["arm", delta, *COMPACT_EFFECT_COLUMNS]].reset_index(drop=True))
                for metric, rows in frame.groupby("metric", sort=False)]
    return [table]


def number_text(value: float, spec: str) -> str:
    return format(value, spec) if np.isfinite(value) else "—"


def runs_share_text(k: float, n: float, low: float, high: float) -> str:
    """'3/5 [15 %, 99 %]': a count of runs and the exact interval of its share."""
    return f"{k:.0f}/{n:.0f} [{low:.0%}, {high:.0%}]" if np.isfinite(low) else f"{k:.0f}/{n:.0f}"


def interval_text(row: Any) -> str:
    """'Δ [adjusted CI]' in display units (% change on the log scale); for a failure-share row the two
    shares, each with its exact interval at the family's level."""
    if getattr(row, "scale", None) == "share":
        return (f"failed {runs_share_text(row.failed, row.n, row.share_low, row.share_high)} vs "
                f"{runs_share_text(row.failed_reference, row.n_reference, row.share_low_reference, row.share_high_reference)}")
    if not np.isfinite(getattr(row, "estimate", math.nan)):
        return "—"
    values = [on_display_scale(v, row.scale) for v in (row.estimate, row.adj_low, row.adj_high)]
    if row.scale == "log":  # % change: whole percents past ±10 %, never 1e+02
        text = [number_text(v, "+.0f" if abs(v) >= 10 else "+.1f") if np.isfinite(v) else "+∞" if v == math.inf
                else "—" for v in values]
        return f"{text[0]} % [{text[1]} %, {text[2]} %]"
    return f"{number_text(values[0], '+.3g')} [{number_text(values[1], '+.3g')}, {number_text(values[2], '+.3g')}]"


def _failed(row: Any, side: str = "") -> float:
    """A comparison row's runs that failed to learn (0 where it does not say)."""
    value = getattr(row, f"failed{side}", 0)
    return float(value) if isinstance(value, (int, float, np.number)) and np.isfinite(value) else 0.0


def _lost(r: Any) -> str:
    """'k/n vs k/n' runs without a value (diverged or crashed), with Fisher's exact p when any was lost."""
    runs, runs_ref = getattr(r, "runs", math.nan), getattr(r, "runs_reference", math.nan)
    if not (np.isfinite(runs) and np.isfinite(runs_ref)) or getattr(r, "scale", None) == "share":
        return "—"
    lost, lost_ref = (runs - _failed(r) - r.n, runs_ref - _failed(r, "_reference") - r.n_reference)
    text = f"{lost:.0f}/{runs:.0f} vs {lost_ref:.0f}/{runs_ref:.0f}"
    p = getattr(r, "p_no_value", math.nan)
    return text + (f" (Fisher p {p:.2g})" if np.isfinite(p) else "")


UNTESTED = ("exploratory", "too few runs", "unavailable", "n/a", "descriptive", "withheld")  # rows no test was made for


def effects_table(part: PartResult, metrics: list[str]) -> pd.DataFrame:
    """Every verdict metric's comparisons with the reference at the part's basis (rows of the family)."""
    frames = [part.comparisons[m] for m in metrics if not part.comparisons.get(m, pd.DataFrame()).empty]
    if not frames:
        return pd.DataFrame()
    comparison = pd.concat(frames, ignore_index=True)
    rows = list(comparison.itertuples())
    tested = [r.verdict not in UNTESTED for r in rows]
    share = [getattr(r, "scale", None) == "share" for r in rows]

    def test_text(values: Any, spec: str, shares_too: bool = True) -> list[str]:  # only where a test was made
        return [number_text(v, spec) if t and (shares_too or not s) else "— (no test)" if not t else "—"
                for v, t, s in zip(values, tested, share)]

    return pd.DataFrame({
        "metric": comparison["metric"], "arm": comparison["arm"],
        f"Δ vs {part.reference} [simultaneous CI]": [interval_text(r) for r in rows],
        "n (runs that learned)": [f"{r.n - (_failed(r) if s else 0):.0f} vs "
                                  f"{r.n_reference - (_failed(r, '_reference') if s else 0):.0f}"
                                  for r, s in zip(rows, share)],
        "failed to learn": [f"{_failed(r):.0f}/{r.runs:.0f} vs {_failed(r, '_reference'):.0f}/{r.runs_reference:.0f}"
                            for r in rows],
        "no value (diverged, crashed)": [_lost(r) for r in rows],
        "p (Welch's t, log scale for FID and IS; Fisher's exact for failure shares)":
            test_text([r.p for r in rows], ".3g"),
        P_FAMILY: test_text([r.p_family for r in rows], ".3g"),
        "p (exact permutation, same scale)": test_text([getattr(r, "p_permutation", math.nan) for r in rows], ".3g",
                                                       False),
        "Hedges' g (raw scale)": test_text([getattr(r, "g", math.nan) for r in rows], "+.2f", False),
        "verdict": comparison["verdict"],
    })


def equal_compute_table(part: PartResult, metric: str) -> pd.DataFrame:
    """The primary metric at equal FLOPs, for the arms whose FLOPs per step differ from the reference's."""
    rows = part.equal_compute
    if rows.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "arm": rows["arm"],
        f"Δ {metric} vs {part.reference} [simultaneous CI]": [interval_text(r) for r in rows.itertuples()],
        "n": [f"{r.n:.0f} vs {r.n_reference:.0f}" if np.isfinite(getattr(r, "n", math.nan)) else "—"
              for r in rows.itertuples()],
        P_FAMILY: [number_text(r.p_family, ".3g") for r in rows.itertuples()],
        "verdict": rows["verdict"],
        "where": rows["note"].fillna(""),
    })


def capacity_text(part: PartResult, arm: str) -> str:
    """' (G ×4.6, D ×30 parameters, ×1.6 FLOPs/step)' where an arm's networks differ in size from the
    reference's: a hack that changes capacity is not only a trick; '' where they are the same."""
    compute = part.compute.set_index("arm") if not part.compute.empty else pd.DataFrame()
    if arm not in compute.index or part.reference not in compute.index:
        return ""
    mine, ref = compute.loc[arm], compute.loc[part.reference]
    said = [f"{net.upper()} ×{mine[f'params_{net}'] / ref[f'params_{net}']:.2g} parameters" for net in ("g", "d")
            if np.isfinite(mine[f"params_{net}"]) and ref[f"params_{net}"] > 0
            and not math.isclose(mine[f"params_{net}"], ref[f"params_{net}"], rel_tol=0.05)]
    flops = mine["flops_per_step"] / ref["flops_per_step"] if ref["flops_per_step"] > 0 else math.nan
    if np.isfinite(flops) and not math.isclose(flops, 1.0, rel_tol=0.05):
        said.append(f"×{flops:.2g} FLOPs/step")
    return f" ({', '.join(said)})" if said else ""


def convergence_frame(part: PartResult) -> pd.DataFrame:
    """Per arm: the primary metric's change over its own last stretch, and the comparison's sign at both ends."""
    c = part.convergence
    if c.empty:
        return c
    unit = " %" if (c["scale"] == "log").any() else ""
    se = [100 * v if s == "log" else v for v, s in zip(c["change_se"], c["scale"])]
    table = pd.DataFrame({
        "arm": c["arm"],
        "last stretch (its own steps)": [f"{a} → {b}" for a, b in zip(c["previous_step"], c["last_step"])],
        "change (± SE)": [f"{number_text(v, '+.3g')}{unit} ± {number_text(e, '.2g')}{unit}"
                          for v, e in zip(c["change"], se)],
        "still improving": ["yes" if v else "no" for v in c["still_improving"]],
    })
    if "flips" in c:
        table[f"vs {part.reference} then → now"] = [
            f"{number_text(a, '+.3g')}{unit} → {number_text(b, '+.3g')}{unit}" + (" (flips)" if f is True else "")
            if isinstance(f, bool) else "—"
            for a, b, f in zip(c.get("vs_reference_previous"), c.get("vs_reference_last"), c["flips"])]
    return table


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
