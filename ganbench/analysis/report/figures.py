"""The report's figures: seaborn's colour-blind palette, PNG and PDF without timestamps (byte-identical on regeneration)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from PIL import Image  # noqa: E402

from ganbench import rundir
from ganbench.suitedir import SuiteDir
from ganbench.analysis.report.analysis import PartResult


def save_figure(fig: plt.Figure, path: Path) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    # No timestamps in the files, so a regenerated report is byte-identical.
    fig.savefig(path.with_suffix(".png"), dpi=150, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight", metadata={"CreationDate": None, "ModDate": None})
    plt.close(fig)
    return [path.with_suffix(".png"), path.with_suffix(".pdf")]


VERDICT_ORDER = ("better", "worse", "no clear difference", "exploratory", "too few runs")
FOLD_LIMITS = (1 / 8, 8)  # log-scale metrics are drawn as fold changes on a log axis, clipped here (marked ◂ ▸)


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
        _forest_panel(ax, comp, palette)
        ax.set_yticks(np.arange(len(comp)), comp["arm"])
        arrow = "↑ better" if part.directions.get(metric) else "↓ better"
        what = "fold change, log axis" if (comp["scale"] == "log").any() else "difference"
        ax.set_xlabel(f"{metric}: {what} vs {part.reference} ({arrow})")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=v) for v, c in palette.items()]
    fig.legend(handles=handles, loc="lower center", ncol=5, bbox_to_anchor=(0.5, -0.02 - 0.3 / len(part.arms)),
               frameon=False)
    fig.suptitle(f"{part.name or 'design'}: each arm vs '{part.reference}' at {part.basis} "
                 "(Bonferroni-simultaneous intervals over the report's family)")
    save_figure(fig, path)
    return path.with_suffix(".png")


def _forest_panel(ax: Any, comp: pd.DataFrame, palette: dict[str, Any]) -> None:
    """One metric's rows: a fold change (log axis, 1 = no change) on the log scale, else a difference;
    an interval past the axis ends at it with an arrowhead marker, so no arm squashes the others."""
    log = bool((comp["scale"] == "log").any())
    low_end, high_end = FOLD_LIMITS if log else (-math.inf, math.inf)
    for yi, row in enumerate(comp.itertuples()):
        values = [math.exp(v) if log else v for v in (row.estimate, row.adj_low, row.adj_high)]
        mid, lo, hi = (min(max(v, low_end), high_end) if np.isfinite(v) else v for v in values)
        if not np.isfinite(mid):
            continue
        colour = palette.get(row.verdict, "grey")
        ax.errorbar(mid, yi, xerr=[[mid - lo], [hi - mid]] if np.isfinite(lo) else None, fmt="o", color=colour,
                    capsize=3)
        for bound, end, marker in ((values[1], low_end, "<"), (values[2], high_end, ">")):
            if np.isfinite(bound) and (bound < end if marker == "<" else bound > end):
                ax.plot(end, yi, marker=marker, color=colour, ms=7)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(FOLD_LIMITS[0] / 1.15, FOLD_LIMITS[1] * 1.15)
        ticks = [2.0**k for k in range(-3, 4)]
        ax.set_xticks(ticks, [f"×{t:g}" if t >= 1 else f"×1/{1 / t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.axvline(1.0 if log else 0.0, color="black", lw=0.8)


def arm_styles(arms: Sequence[str], reference: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Colour and dash per arm, fixed across figures: the reference black and solid; the others a colour
    each (seaborn's colour-blind palette for up to 10, then husl hues, evenly spaced) and, past 10 arms, a
    dash pattern too, so no two arms look alike."""
    others = [a for a in arms if a != reference]
    palette = sns.color_palette("colorblind", len(others)) if len(others) <= 10 else sns.color_palette("husl", len(others))
    patterns = ["", (4, 1.5), (1, 1), (3, 1, 1, 1)]
    colours = {a: palette[i] for i, a in enumerate(others)}
    dashes = {a: patterns[i % 4] if len(others) > 10 else "" for i, a in enumerate(others)}
    if reference in arms:
        colours[reference], dashes[reference] = (0.0, 0.0, 0.0), ""
    return colours, dashes


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
    save_figure(fig, path)
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
    save_figure(fig, path)
    return path.with_suffix(".png")


def metric_curves(frame: pd.DataFrame, part: PartResult, metric: str, path: Path) -> Path | None:
    data = frame[(frame["metric"] == metric) & frame["arm"].isin(part.arms) & (frame["status"] == "completed")]
    if data.empty:
        return None
    present = [a for a in part.arms if a in set(data["arm"])]
    colours, dashes = arm_styles(part.arms, part.reference)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sns.lineplot(data=data, x="step", y="value", hue="arm", hue_order=present, style="arm", style_order=present,
                 dashes={a: dashes[a] for a in present}, errorbar=("ci", 95), seed=0,
                 palette={a: colours[a] for a in present}, ax=ax, marker="o")
    ax.set_ylabel(f"{metric} ({'higher' if part.directions.get(metric) else 'lower'} is better)")
    seeds = int(data.groupby("arm")["run_id"].nunique().min()) if len(data) else 0
    ax.set_title(f"{metric} during training: mean over seeds, band = seaborn's 95 % bootstrap CI over {seeds} seeds"
                 + (" (covers far less than 95 % at so few seeds)" if seeds < 10 else ""), fontsize=9)
    ax.legend(fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    save_figure(fig, path)
    return path.with_suffix(".png")


def loss_curves(training: pd.DataFrame, part: PartResult, path: Path) -> Path | None:
    data = training[training["arm"].isin(part.arms)]
    if data.empty:
        return None
    long = data.melt(id_vars=["arm", "seed", "step"], value_vars=["loss_d", "loss_g", "d_real", "d_fake_before"],
                     var_name="statistic")
    present = [a for a in part.arms if a in set(long["arm"])]
    colours, dashes = arm_styles(part.arms, part.reference)
    grid = sns.relplot(data=long, x="step", y="value", hue="arm", hue_order=present, style="arm",
                       style_order=present, dashes={a: dashes[a] for a in present}, col="statistic", col_wrap=2,
                       kind="line", errorbar=("ci", 95), seed=0, facet_kws={"sharey": False}, height=2.8, aspect=1.5,
                       palette={a: colours[a] for a in present})
    titles = {"loss_d": "D loss", "loss_g": "G loss", "d_real": "D(x)", "d_fake_before": "D(G(z)) before D step"}
    for ax, name in zip(grid.axes.flat, ["loss_d", "loss_g", "d_real", "d_fake_before"]):
        ax.set_title(titles[name])
    grid.figure.suptitle("training statistics: mean over seeds, band = 95 % bootstrap CI over seeds "
                         "(under-covers with fewer than 10)", y=1.02)
    save_figure(grid.figure, path)
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
    save_figure(fig, path)
    return path.with_suffix(".png")
