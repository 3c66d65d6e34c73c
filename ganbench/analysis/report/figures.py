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
    # No timestamps in the files, so a regenerated report is byte-identical; written beside and renamed,
    # so a symlink planted at the figure's path is replaced, not written through.
    rundir.atomic_write(path.with_suffix(".png"), lambda tmp: fig.savefig(
        tmp, format="png", dpi=150, bbox_inches="tight", metadata={"Software": None}))
    rundir.atomic_write(path.with_suffix(".pdf"), lambda tmp: fig.savefig(
        tmp, format="pdf", bbox_inches="tight", metadata={"CreationDate": None, "ModDate": None}))
    plt.close(fig)
    return [path.with_suffix(".png"), path.with_suffix(".pdf")]


def seaborn_ci95(values: pd.Series) -> tuple[float, float]:
    """seaborn's `errorbar=("ci", 95), seed=0` band (1 000 bootstrap means, percentile interval), bit for bit,
    drawn at once: seaborn draws its resamples in a Python loop, 1 000 calls of `np.mean` per plotted point,
    which was half of a report's time (the loo-cpu report's loss curves: 1 685 points). One `integers` call
    of shape (1 000, n) gives the same draws as seaborn's 1 000 calls of size n from `default_rng(0)`, and a
    row's mean is the same reduction (tests/test_paper_outputs.py holds it to seaborn's own output)."""
    data = np.asarray(values)
    draws = np.random.default_rng(0).integers(0, len(data), (1000, len(data)), dtype=np.intp)
    mean = np.nanmean if np.isnan(np.sum(data)) else np.mean  # seaborn's choice of function, the same way
    low, high = np.nanpercentile(mean(data[draws], axis=1), (2.5, 97.5))
    return float(low), float(high)


VERDICT_ORDER = ("better", "worse", "no clear difference", "exploratory", "withheld", "too few runs")
# Okabe & Ito's colour-blind-safe set: no two of these are confused under any common colour-vision deficiency.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442")
# Verdicts: blue and vermillion (the pair every deficiency tells apart), a neutral grey, purple and bluish green; each
# with its own marker too, so a greyscale print still separates them.
VERDICT_STYLE = {"better": ("#0072B2", "o"), "worse": ("#D55E00", "s"), "no clear difference": ("#7F7F7F", "D"),
                 "exploratory": ("#CC79A7", "^"), "withheld": ("#009E73", "X"), "too few runs": ("#BBBBBB", "v")}
FOLD_LIMITS = (1 / 8, 8)  # log-scale metrics are drawn as fold changes on a log axis, clipped here (marked ◂ ▸)
OUTLIER_RATIO = 3.0  # an arm whose interval reaches this many times further than the next arm's is clipped


def forest_plot(part: PartResult, metrics: list[str], path: Path) -> Path | None:
    """Each verdict metric's differences from the reference with their simultaneous intervals: one panel
    per metric, the legend holding only the verdicts that occur, an outlying arm clipped at the axis
    with an arrow and its value, so it does not squash the others."""
    shown = [m for m in metrics if not part.comparisons.get(m, pd.DataFrame()).empty]
    if not shown:
        return None
    fig, axes = plt.subplots(1, len(shown), figsize=(3.4 * len(shown) + 1.8, 0.42 * len(part.arms) + 1.9),
                             sharey=True, squeeze=False, layout="constrained")
    occurring: dict[str, None] = {}
    for ax, metric in zip(axes[0], shown):
        comp = part.comparisons[metric].iloc[::-1]
        occurring.update(dict.fromkeys(comp["verdict"]))
        _forest_panel(ax, comp)
        ax.set_yticks(np.arange(len(comp)), comp["arm"])
        arrow = "↑ better" if part.directions.get(metric) else "↓ better"
        what = "fold change (log axis)" if (comp["scale"] == "log").any() else "difference"
        ax.set_xlabel(f"{metric} ({arrow})\n{what} vs {part.reference}", fontsize=9)
    handles = [plt.Line2D([], [], marker=VERDICT_STYLE[v][1], ls="", color=VERDICT_STYLE[v][0], label=v)
               for v in VERDICT_ORDER if v in occurring]
    if handles:  # (every row may be without a verdict style: no legend then, not an error)
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    fig.suptitle(f"{part.name or 'design'}: each arm vs '{part.reference}' at {part.basis}\n"
                 "(Bonferroni-simultaneous intervals over the report's family)", fontsize=10)
    save_figure(fig, path)
    return path.with_suffix(".png")


def robust_limits(lows: Sequence[float], highs: Sequence[float]) -> tuple[float, float]:
    """(left, right) of a difference axis: every interval, unless one arm reaches `OUTLIER_RATIO` times
    further from 0 than any other; then the axis stops at 1.3× the next one's reach (that arm is clipped)."""
    reach = sorted((max(abs(lo), abs(hi)) for lo, hi in zip(lows, highs) if np.isfinite(lo) and np.isfinite(hi)),
                   reverse=True)
    if not reach:
        return -1.0, 1.0
    limit = reach[0] if len(reach) < 2 or reach[0] <= OUTLIER_RATIO * reach[1] else 1.3 * reach[1]
    left = max(min(lo for lo in lows if np.isfinite(lo)), -limit)
    right = min(max(hi for hi in highs if np.isfinite(hi)), limit)
    pad = 0.08 * (right - left or 1.0)
    return min(left, 0.0) - pad, max(right, 0.0) + pad


def _forest_panel(ax: Any, comp: pd.DataFrame) -> None:
    """One metric's rows: a fold change (log axis, 1 = no change) on the log scale, else a difference;
    an interval past the axis ends at it with an arrowhead and the value it reaches, so no arm squashes
    the others."""
    log = bool((comp["scale"] == "log").any())
    # a bound of a row with 2 learned runs can lie past e^700: it is drawn as ∞ at the axis end, not an error
    values = [[(math.exp(v) if v < 700 else math.inf) if log else v for v in (r.estimate, r.adj_low, r.adj_high)]
              for r in comp.itertuples()]
    if log:
        low_end, high_end = FOLD_LIMITS
    else:
        low_end, high_end = robust_limits([v[1] for v in values], [v[2] for v in values])
    for yi, (row, (estimate, low, high)) in enumerate(zip(comp.itertuples(), values)):
        mid, lo, hi = (min(max(v, low_end), high_end) if not math.isnan(v) else v for v in (estimate, low, high))
        if not np.isfinite(mid):
            continue
        colour, marker = VERDICT_STYLE.get(row.verdict, ("grey", "o"))
        ax.errorbar(mid, yi, xerr=[[mid - lo], [hi - mid]] if not math.isnan(lo) else None, fmt=marker, color=colour,
                    capsize=3)
        for bound, end, side in ((low, low_end, "<"), (high, high_end, ">")):
            if not math.isnan(bound) and (bound < end if side == "<" else bound > end):
                ax.plot(end, yi, marker=side, color=colour, ms=7)
                ax.annotate("∞" if math.isinf(bound) else f"×{bound:.3g}" if log else f"{bound:+.3g}", (end, yi),
                            xytext=(-4 if side == ">" else 4, 7), textcoords="offset points",
                            ha="right" if side == ">" else "left", fontsize=7, color=colour)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(FOLD_LIMITS[0] / 1.15, FOLD_LIMITS[1] * 1.15)
        ticks = [2.0**k for k in range(-3, 4)]
        ax.set_xticks(ticks, [f"×{t:g}" if t >= 1 else f"×1/{1 / t:g}" for t in ticks], fontsize=8)
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    else:
        ax.set_xlim(low_end, high_end)
        ax.xaxis.set_major_locator(plt.MaxNLocator(5))
        ax.tick_params(axis="x", labelsize=8)
    ax.axvline(1.0 if log else 0.0, color="black", lw=0.8)


PER_PANEL = len(OKABE_ITO)  # arms besides the reference in one curve panel: Okabe–Ito's 7 colours + black


def arm_styles(arms: Sequence[str], reference: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Colour and dash per arm, fixed across figures: the reference black and solid; the others Okabe–Ito's
    7 colour-blind-safe colours in turn, solid for the first 7 arms, then dashed, dotted, dash-dotted, so
    no two arms look alike."""
    others = [a for a in arms if a != reference]
    patterns = ["", (4, 1.5), (1, 1), (3, 1, 1, 1)]
    colours = {a: OKABE_ITO[i % PER_PANEL] for i, a in enumerate(others)}
    dashes = {a: patterns[(i // PER_PANEL) % len(patterns)] for i, a in enumerate(others)}
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


def metric_curves(frame: pd.DataFrame, part: PartResult, metric: str, path: Path,
                  trained_flops: bool = False) -> Path | None:
    """The metric during training, mean over seeds with a bootstrap band: panels of at most `PER_PANEL`
    arms beside the reference (black, in every panel), each arm in its own colour; against FLOPs spent
    for a part trained to equal FLOPs (its arms stop at different steps), else against steps."""
    data = frame[(frame["metric"] == metric) & frame["arm"].isin(part.arms) & (frame["status"] == "completed")]
    if data.empty:
        return None
    x, x_label = "step", "training step"
    if trained_flops and "flops_per_step" in data and data["flops_per_step"].notna().all():
        data = data.assign(tflops=data["step"] * data["flops_per_step"] / 1e12)
        x, x_label = "tflops", "training compute spent (TFLOPs, torch's flop counter)"
    present = [a for a in part.arms if a in set(data["arm"])]
    others = [a for a in present if a != part.reference]
    panels = [others[i:i + PER_PANEL] for i in range(0, len(others), PER_PANEL)] or [[]]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3.4 * len(panels) + 0.6), sharex=True, sharey=True,
                             squeeze=False, layout="constrained")
    seeds = int(data.groupby("arm")["run_id"].nunique().min())
    for ax, panel in zip(axes[:, 0], panels):
        arms = ([part.reference] if part.reference in present else []) + panel
        colours = {a: OKABE_ITO[i] for i, a in enumerate(panel)} | {part.reference: (0.0, 0.0, 0.0)}
        sns.lineplot(data=data[data["arm"].isin(arms)], x=x, y="value", hue="arm", hue_order=arms,
                     errorbar=seaborn_ci95, palette={a: colours[a] for a in arms}, ax=ax, marker="o", ms=4)
        ax.set_ylabel(f"{metric} ({'higher' if part.directions.get(metric) else 'lower'} is better)", fontsize=9)
        ax.set_xlabel(x_label)
        ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    fig.suptitle(f"{part.name or 'design'}: {metric} during training, mean over seeds; band = seaborn's 95 % "
                 f"bootstrap CI over {seeds} seeds" + (" (covers far less than 95 % at so few seeds)" if seeds < 10
                                                        else ""), fontsize=9)
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
                       kind="line", errorbar=seaborn_ci95, facet_kws={"sharey": False}, height=2.8, aspect=1.5,
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
