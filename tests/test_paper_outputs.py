"""Figures and tables fit for a paper (issue 32): a forest plot's legend holds only what occurs, its
colours are colour-blind safe and tell every verdict apart, an outlying arm is clipped with its value;
curves in panels of at most 8 arms, on a FLOPs axis for a part trained to equal FLOPs; LaTeX tables
one metric each, never blown up or overflowing; no p or g where no test is made."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb

from ganbench.analysis.report import figures
from ganbench.analysis.report.analysis import PartResult
from ganbench.analysis.report.tables import P_FAMILY, Table, effects_table, latex_pieces, to_latex


def part(arms, comparisons=None, reference="all", basis="equal steps"):
    return PartResult("steps", "leave_one_out", reference, list(arms), {}, comparisons or {}, pd.DataFrame(),
                      pd.DataFrame(), {}, False, pd.DataFrame(), {"fid_fmnist": False, "kid_fmnist": False},
                      basis=basis)


def comparison(metric, rows, scale):
    """rows: (arm, estimate, low, high, verdict)."""
    return pd.DataFrame([{"metric": metric, "arm": a, "estimate": e, "adj_low": lo, "adj_high": hi, "scale": scale,
                          "verdict": v, "n": 5, "n_reference": 5, "se": 0.1, "p": 0.01, "p_family": 0.04,
                          "p_permutation": 0.02, "g": 1.5, "runs": 5, "runs_reference": 5}
                         for a, e, lo, hi, v in rows])


@pytest.fixture()
def captured(monkeypatch):
    """The figures a function draws, kept open instead of saved."""
    kept = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: kept.append(fig) or [path])
    yield kept
    for fig in kept:
        figures.plt.close(fig)


def test_the_forest_legend_holds_only_the_verdicts_that_occur_and_an_outlier_is_clipped(captured, tmp_path):
    fid = comparison("fid_fmnist", [("-a", -0.3, -0.4, -0.2, "better"), ("-b", 0.05, -0.1, 0.2, "no clear difference"),
                                    ("-c", 0.4, 0.2, 0.6, "worse")], "log")
    kid = comparison("kid_fmnist", [("-a", -0.01, -0.03, 0.01, "no clear difference"),
                                    ("-b", 0.02, 0.0, 0.04, "worse"), ("-c", 2.2, 1.4, 3.0, "worse")], "raw")
    figures.forest_plot(part(["all", "-a", "-b", "-c"], {"fid_fmnist": fid, "kid_fmnist": kid}),
                        ["fid_fmnist", "kid_fmnist"], tmp_path / "forest")
    (fig,) = captured
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["better", "worse", "no clear difference"]  # no 'exploratory', no 'too few runs'
    kid_axis = fig.axes[1]
    left, right = kid_axis.get_xlim()
    assert right < 0.2 and left < 0  # -c (up to 3.0) does not squash the others (reach 0.04)
    assert any(t.get_text() == "+3" for t in kid_axis.texts)  # the clipped arm says where it goes


def test_verdict_colours_are_colour_blind_safe_and_far_apart():
    colours = [np.array(to_rgb(c)) for c, _ in figures.VERDICT_STYLE.values()]
    markers = [m for _, m in figures.VERDICT_STYLE.values()]
    assert len(set(markers)) == len(markers)  # a greyscale print still tells them apart
    closest = min(np.linalg.norm(a - b) for i, a in enumerate(colours) for b in colours[i + 1:])
    assert closest > 0.25  # 'worse' and 'exploratory' were 0.08 apart (two oranges)
    assert to_rgb(figures.VERDICT_STYLE["better"][0]) != to_rgb(figures.VERDICT_STYLE["worse"][0])


def test_robust_limits_clip_only_a_real_outlier():
    assert figures.robust_limits([-1, -2], [1, 2])[1] == pytest.approx(2 + 0.08 * 4)
    left, right = figures.robust_limits([-0.1, 0.0, 5.0], [0.1, 0.2, 9.0])
    assert right == pytest.approx(0.26 + 0.08 * 0.36) and left < -0.1
    assert figures.robust_limits([], []) == (-1.0, 1.0)


def test_every_arm_of_fourteen_has_its_own_look():
    arms = ["all"] + [f"-h{i}" for i in range(13)]
    colours, dashes = figures.arm_styles(arms, "all")
    looks = {(colours[a] if isinstance(colours[a], str) else tuple(colours[a]), str(dashes[a])) for a in arms}
    assert len(looks) == 14 and all(colours[a] in figures.OKABE_ITO for a in arms[1:])


def curves_frame(arms, steps, flops=None):
    return pd.DataFrame([{"arm": a, "run_id": f"{a}{s}", "status": "completed", "step": st, "metric": "fid_fmnist",
                          "value": 50.0 / (1 + st / 100) + i, "flops_per_step": (flops or {}).get(a, 1e9)}
                         for i, a in enumerate(arms) for s in range(3) for st in steps])


def test_curves_come_in_panels_of_at_most_eight_arms(captured, tmp_path):
    arms = ["all"] + [f"-h{i}" for i in range(13)]
    figures.metric_curves(curves_frame(arms, [100, 200]), part(arms), "fid_fmnist", tmp_path / "curves")
    (fig,) = captured
    panels = [ax for ax in fig.axes if ax.get_legend() is not None]
    assert len(panels) == 2
    for ax in panels:
        names = [t.get_text() for t in ax.get_legend().get_texts()]
        assert len(names) <= 8 and names[0] == "all"  # the reference in every panel
        assert len({tuple(line.get_color()) if not isinstance(line.get_color(), str) else line.get_color()
                    for line in ax.get_legend().get_lines()}) == len(names)
        assert ax.get_xlabel() == "training step"


def test_a_part_trained_to_equal_flops_is_drawn_against_flops(captured, tmp_path):
    arms = ["all", "-strided_conv"]
    frame = curves_frame(arms, [100, 254], flops={"all": 1e10, "-strided_conv": 3.9e10})
    figures.metric_curves(frame, part(arms, basis="equal FLOPs (trained)"), "fid_fmnist", tmp_path / "c",
                          trained_flops=True)
    (ax,) = [a for a in captured[0].axes if a.get_legend() is not None]
    assert "TFLOPs" in ax.get_xlabel()
    ends = sorted(line.get_xdata()[-1] for line in ax.get_lines() if len(line.get_xdata()))
    assert max(ends) == pytest.approx(254 * 3.9e10 / 1e12)


def test_latex_tables_are_one_metric_each_and_never_blown_up():
    main = Table("steps", " (steps): final evaluation", "", pd.DataFrame({
        "arm": ["all", "-a"], "fid_fmnist": ["13.8 [13, 14.5] (n=5)", "8.7 [8.1, 9.2] (n=5)"],
        "kid_fmnist": ["0.1 [0.1, 0.13] (n=5)", "0.05 [0.04, 0.06] (n=5)"], "diverged": ["0%", "0%"],
        "failed to learn": ["0%", "0%"], "mode collapse": ["0%", "0%"], "D wins": ["0%", "0%"]}),
        {"fid_fmnist": "-a"})
    pieces = latex_pieces(main)
    assert [p.stem for p in pieces] == ["steps_fid_fmnist", "steps_kid_fmnist", "steps_failures"]
    assert all(len(p.frame.columns) <= 5 for p in pieces)
    tex = to_latex(pieces[0].frame, "quick" + pieces[0].title, pieces[0].best)
    assert tex.startswith("% ganbench table; needs \\usepackage{booktabs}\\usepackage{graphicx}")
    assert "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}" in tex  # shrink only, never enlarge
    assert "\\textbf{8.7 [8.1, 9.2] (n=5)}" in tex


def test_no_p_or_g_where_no_test_is_made():
    rows = comparison("fid_fmnist", [("-a", -0.3, -0.5, -0.1, "exploratory"), ("-b", 0.1, -0.1, 0.3,
                                                                                "no clear difference")], "log")
    table = effects_table(part(["all", "-a", "-b"], {"fid_fmnist": rows}), ["fid_fmnist"])
    exploratory, tested = table.iloc[0], table.iloc[1]
    for column in ("p (Welch's t, log scale for FID and IS; Fisher's exact for failure shares)",
                   P_FAMILY, "Hedges' g (raw scale)"):
        assert exploratory[column] == "— (no test)" and tested[column] != "— (no test)"
    effects = Table("steps_effects", " (steps): effects", "", table)
    (piece,) = latex_pieces(effects)
    assert list(piece.frame.columns) == ["arm", "Δ vs all [simultaneous CI]", P_FAMILY, "verdict"]
    assert len(piece.frame) == 2


def test_the_curves_band_is_seaborns_own_bootstrap_ci_bit_for_bit():
    """`seaborn_ci95` (one vectorised draw) against seaborn's `errorbar=("ci", 95), seed=0` aggregation, on
    seed counts 2-40, values over six decades, with and without a missing value: equal floats, so a
    regenerated report's figures stay byte-identical."""
    from seaborn._statistics import EstimateAggregator

    seaborns = EstimateAggregator("mean", ("ci", 95), n_boot=1000, seed=0)
    rng = np.random.default_rng(7)
    for trial, n in enumerate(range(2, 41)):
        values = rng.standard_normal(n) * 10 ** rng.uniform(-3, 3)
        if trial % 4 == 0:
            values[rng.integers(0, n)] = np.nan
        frame = pd.DataFrame({"value": values})
        with warnings.catch_warnings():  # both sides warn alike where every resample is the missing value
            warnings.simplefilter("ignore", RuntimeWarning)
            expected, got = seaborns(frame, "value"), figures.seaborn_ci95(frame["value"])
        np.testing.assert_array_equal(got, (expected["valuemin"], expected["valuemax"]))
