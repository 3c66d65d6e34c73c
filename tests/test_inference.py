"""Comparisons, the multiplicity family, equal compute and failure labels, on synthetic tables."""

import math

import numpy as np
import pandas as pd
import pytest

from ganbench.analysis import failures, inference, stats, welch_bound


def _values(arms: dict[str, list[float]], part: str = "") -> pd.DataFrame:
    return pd.DataFrame([{"part": part, "arm": arm, "seed": i, "run_id": f"{arm}-{i}", "status": "completed",
                          "value": v, "draw_sd": math.nan} for arm, xs in arms.items() for i, v in enumerate(xs)])


def _study(rng, n: int, effects: dict[str, float], sd: float = 1.0, base: float = 20.0) -> pd.DataFrame:
    return _values({"ref": list(rng.normal(base, sd, n)),
                    **{arm: list(rng.normal(base + e, sd, n)) for arm, e in effects.items()}})


def test_the_family_is_every_row_across_metrics():
    rng = np.random.default_rng(0)
    effects = {"a": -3.0, "b": 0.0, "c": 2.0}
    rows = pd.concat([inference.compare_to_reference(_study(rng, 6, effects), "ref", "fid_fmnist", False),
                      inference.compare_to_reference(_study(rng, 6, effects, base=0.5, sd=0.05), "ref",
                                                     "precision_fmnist", True)], ignore_index=True)
    family = inference.apply_family(rows)
    assert (family["family_size"] == 6).all()
    # Bonferroni over all six rows of each row's p at its least favourable variance ratio, by hand;
    # statsmodels' multipletests gives the same
    from statsmodels.stats.multitest import multipletests

    bounded = [welch_bound.worst_case_p(r.p, r.n, r.n_reference) for r in rows.itertuples()]
    assert (np.asarray(bounded) >= rows["p"].to_numpy()).all()
    assert family["p_family"].to_numpy() == pytest.approx(np.minimum(1.0, 6 * np.asarray(bounded)))
    assert family["p_family"].to_numpy() == pytest.approx(multipletests(bounded, method="bonferroni")[1])


@pytest.mark.parametrize("seed", range(30))
def test_a_verdict_exactly_when_its_interval_excludes_zero(seed):
    """Bonferroni intervals and Bonferroni verdicts at one level: a row is called exactly when its simultaneous
    interval excludes 0 (loo-cpu once showed a Holm verdict beside [−0.003, +0.17])."""
    rng = np.random.default_rng(seed)
    effects = {f"arm{i}": float(rng.choice([0.0, 0.0, -1.5, 1.5, -4.0])) for i in range(6)}
    rows = pd.concat([inference.compare_to_reference(_study(rng, int(rng.integers(5, 11)), effects), "ref",
                                                     "fid_fmnist", False),
                      inference.compare_to_reference(_study(rng, 7, effects), "ref", "kid_fmnist", False)],
                     ignore_index=True)
    family = inference.apply_family(rows)
    excludes_zero = (family["adj_low"] > 0) | (family["adj_high"] < 0)
    called = family["verdict"].isin(["better", "worse"])
    assert (called == excludes_zero).all()
    assert family["interval_level"].tolist() == pytest.approx([1 - 0.05 / 12] * 12)  # Bonferroni over the 12 shown
    lower_is_better = family["estimate"] < 0
    assert (family.loc[called & lower_is_better, "verdict"] == "better").all()


def test_under_five_seeds_there_are_no_verdicts():
    rng = np.random.default_rng(1)
    rows = inference.compare_to_reference(_study(rng, 3, {"far": -15.0, "same": 0.0}), "ref", "fid_fmnist", False)
    family = inference.apply_family(rows)
    assert set(family["verdict"]) == {"exploratory"} and family["p_family"].isna().all()
    assert (family["family_size"] == 2).all() and (family["family_tested"] == 0).all()
    assert family["interval_level"].tolist() == pytest.approx([1 - 0.05 / 2] * 2)  # Bonferroni over the rows shown
    assert np.isfinite(family["adj_low"]).all()
    assert (family["test"] == "Welch's t (log scale)").all()
    five = inference.apply_family(inference.compare_to_reference(_study(rng, 5, {"far": -15.0}), "ref", "fid_fmnist",
                                                                 False))
    assert five["verdict"].item() == "better" and five["test"].item() == "Welch's t (log scale)"


def test_each_row_is_welch_and_matches_scipy():
    """Every difference is Welch's t on its two arms alone (scipy's ttest_ind with equal_var=False)."""
    from scipy import stats as sps

    rng = np.random.default_rng(2)
    values = _study(rng, 6, {"a": -2.0, "b": 1.0, "c": 0.0})
    values.loc[values["arm"] == "c", "value"] += rng.normal(0, 2.0, 6)  # unequal spreads: the case Welch is for
    rows = inference.compare_to_reference(values, "ref", "fid_fmnist", False).set_index("arm")
    ref = np.log(values.loc[values["arm"] == "ref", "value"])
    for arm in ("a", "b", "c"):
        x = np.log(values.loc[values["arm"] == arm, "value"])
        test = sps.ttest_ind(x, ref, equal_var=False)
        assert rows.loc[arm, "scale"] == "log"
        assert rows.loc[arm, "estimate"] == pytest.approx(x.mean() - ref.mean(), rel=1e-12)
        assert rows.loc[arm, "p"] == pytest.approx(test.pvalue, rel=1e-9)
    # A thin arm changes no other row: adding one leaves a, b, c as they were.
    thin = pd.concat([values, _values({"thin": [20.0, 21.0]})], ignore_index=True)
    again = inference.compare_to_reference(thin, "ref", "fid_fmnist", False).set_index("arm")
    assert again.loc[["a", "b", "c"], "p"].tolist() == rows.loc[["a", "b", "c"], "p"].tolist()


def _curves(arm: str, seeds: int, steps: list[int], fn) -> list[dict]:
    return [{"part": "", "arm": arm, "seed": s, "run_id": f"{arm}{s}", "status": "completed", "step": step,
             "metric": "fid_fmnist", "value": fn(step) + s * 0.01, "knob_steps": steps[-1]}
            for s in range(seeds) for step in steps]


def test_equal_compute_reads_the_costlier_arm_early():
    # ref: 1 FLOP/step, FID falls 100 → 20 linearly over 800 steps; pooled: 4 FLOPs/step, flat 10.
    frame = pd.DataFrame(_curves("ref", 5, [200, 400, 600, 800], lambda s: 100 - 0.1 * s)
                         + _curves("pooled", 5, [100, 200, 300, 400, 800], lambda s: 10.0))
    rows = inference.compare_at_equal_compute(frame, "ref", "fid_fmnist", False, {"ref": 1.0, "pooled": 4.0},
                                              ["pooled"]).set_index("arm")
    assert rows.loc["pooled", "budget"] == 800.0 and rows.loc["pooled", "early_arm"] == "pooled"
    assert rows.loc["pooled", "step_read"] == 200.0
    assert rows.loc["pooled", "diff"] == pytest.approx(10.0 - (100 - 80) - 0.0, abs=1e-9)
    # Read between evaluations: ref at 3 FLOPs/step → budget 800 = pooled's step 200 … ref 2400 → ref's 800.
    rows = inference.compare_at_equal_compute(frame, "ref", "fid_fmnist", False, {"ref": 1.0, "pooled": 1.5},
                                              ["pooled"]).set_index("arm")
    assert rows.loc["pooled", "step_read"] == pytest.approx(800 / 1.5)
    assert inference.read_curve_at(np.array([200, 400]), np.array([50.0, 30.0]), 1.0, 300) == pytest.approx(40.0)
    assert math.isnan(inference.read_curve_at(np.array([200, 400]), np.array([50.0, 30.0]), 1.0, 100))


def test_findings_say_both_when_equal_compute_disagrees():
    from ganbench.analysis.report.analysis import Analysis, PartResult
    from ganbench.analysis.report.sections import findings

    rng = np.random.default_rng(4)
    at_steps = inference.compare_to_reference(_study(rng, 6, {"pooled": -8.0}), "ref", "fid_fmnist", False)
    at_compute = at_steps.assign(basis="equal FLOPs", estimate=-at_steps["estimate"], note="at 1e9 FLOPs")
    family = inference.apply_family(pd.concat([at_steps, at_compute], ignore_index=True))
    part = PartResult(name="", kind="arms", reference="ref", arms=["ref", "pooled"],
                      summaries={"fid_fmnist": stats.arm_summary(_study(rng, 6, {"pooled": -8.0}))},
                      comparisons={"fid_fmnist": family[family["basis"] == "equal steps"]},
                      equal_compute=family[family["basis"] == "equal FLOPs"], failures=pd.DataFrame(), factorial={},
                      interactions=False, compute=pd.DataFrame(), directions={"fid_fmnist": False})
    result = Analysis(parts=[part], primary="fid_fmnist", verdict_metrics=["fid_fmnist"], family_size=2,
                      family_tested=2, exploratory=False)
    line = next(line for line in findings(result) if "pooled" in line)
    assert "better than `ref` at equal steps but *worse* at equal compute" in line
    assert "simultaneous CI over 2" in line and "n = 6 vs 6" in line and "after Bonferroni over the 2" in line


def test_intervals_stay_in_the_metric_range():
    values = _values({"low": [0.0, 0.01, 0.17], "ceiling": [10.0, 10.0, 10.0]})
    recall = stats.arm_summary(values[values["arm"] == "low"], (0.0, 1.0)).iloc[0]
    assert recall["ci_low"] == 0.0 and recall["ci_high"] <= 1.0
    modes = stats.arm_summary(values[values["arm"] == "ceiling"], (0.0, 10.0)).iloc[0]
    assert math.isnan(modes["ci_low"]) and "same value" in modes["ci_method"]
    from ganbench.analysis.report import arm_cell as _cell

    assert _cell(modes) == "10 (all 3 equal)"


def _run(run_id: str, fid: float, noise: float, kl: float, classes: float, **knobs) -> list[dict]:
    base = {"arm": run_id, "run_id": run_id, "status": "completed", "step": 100,
            **{f"knob_{k}": v for k, v in knobs.items()}}
    return [{**base, "metric": "fid_fmnist", "value": fid, "uniform_noise_fid": noise},
            {**base, "metric": "modes_kl_fmnist", "value": kl}, {**base, "metric": "modes_covered_fmnist",
                                                                  "value": classes}]


def test_failure_labels_on_constructed_runs():
    frame = pd.DataFrame(_run("noise", 81.0, 65.7, 2.0, 2.0) + _run("collapsed", 30.0, 65.7, 1.2, 3.0)
                         + _run("fine", 8.0, 65.7, 0.02, 10.0)
                         + _run("smoothed_d", 9.0, 65.7, 0.02, 10.0, label_smoothing=0.1)
                         + _run("smoothed_flipped", 9.0, 65.7, 0.02, 10.0, label_smoothing=0.1, label_flip_p=0.05))
    training = pd.DataFrame([{"run_id": "noise", "step": 100, "loss_d": 1.3}, {"run_id": "collapsed", "step": 100, "loss_d": 0.9},
                             {"run_id": "fine", "step": 100, "loss_d": 0.04},
                             {"run_id": "smoothed_d", "step": 100, "loss_d": 0.36},
                             {"run_id": "smoothed_flipped", "step": 100, "loss_d": 0.62}])
    labels = failures.failure_labels(frame, training).set_index("run_id")
    assert labels.loc["noise", "failed_to_learn"] == 1 and math.isnan(labels.loc["noise", "mode_collapse"])
    assert labels.loc["collapsed", "failed_to_learn"] == 0 and labels.loc["collapsed", "mode_collapse"] == 1
    assert labels.loc["fine", ["failed_to_learn", "mode_collapse"]].tolist() == [0, 0]
    assert labels.loc["fine", "d_wins"] == 1  # 0.04 nats above a floor of 0
    # One-sided smoothing 0.1: floor H(0.9) = 0.325; 0.36 is within 0.05 of it (the old "< 0.05" rule never fires).
    assert labels.loc["smoothed_d", "d_loss_floor"] == pytest.approx(0.3251, abs=1e-4)
    assert labels.loc["smoothed_d", "d_wins"] == 1
    assert labels.loc["smoothed_flipped", "d_loss_floor"] == pytest.approx(0.597, abs=1e-3)
    assert labels.loc["smoothed_flipped", "d_wins"] == 1
    assert labels.loc["collapsed", "d_wins"] == 0
    no_noise = frame.drop(columns="uniform_noise_fid")
    assert failures.failure_labels(no_noise, training)["failed_to_learn"].isna().all()  # unavailable, not "no"


def test_an_arm_without_values_is_counted_and_leaves_the_family():
    rng = np.random.default_rng(5)
    values = _study(rng, 6, {"good": -5.0})
    values = pd.concat([values, _values({"dead": [math.nan] * 6})], ignore_index=True)
    rows = inference.apply_family(inference.compare_to_reference(values, "ref", "fid_fmnist", False)).set_index("arm")
    assert rows.loc["good", "verdict"] == "better"
    assert rows.loc["dead", "verdict"] == "too few runs" and rows.loc["dead", "family_size"] == 1
    assert rows.loc["dead", "runs"] == 6 and rows.loc["dead", "n"] == 0  # its runs are counted, not dropped
    assert rows.loc["dead", "p_no_value"] == pytest.approx(0.0022, abs=1e-4)  # Fisher: 6/6 lost vs 0/6


def _labels(counts: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """failure_labels-like rows: arm → (failed, runs)."""
    return pd.DataFrame([{"arm": arm, "run_id": f"{arm}-{i}", inference.FAILURE: float(i < k)}
                         for arm, (k, n) in counts.items() for i in range(n)])


def test_failure_shares_are_compared_exactly_and_join_the_family_only_where_a_run_failed():
    from scipy import stats as sps

    labels = _labels({"ref": (0, 5), "broken": (5, 5), "half": (3, 5), "fine": (0, 5)})
    rows = inference.compare_failures(labels, "ref", ["broken", "half", "fine"])
    assert rows["arm"].tolist() == ["broken", "half"]  # 0/5 vs 0/5 can call nothing: not a row
    assert rows["p"].tolist() == pytest.approx([sps.fisher_exact([[5, 0], [0, 5]]).pvalue,
                                                sps.fisher_exact([[3, 2], [0, 5]]).pvalue])
    assert rows["p"].iloc[1] == pytest.approx(0.1667, abs=1e-4)  # the 3/5 vs 0/5
    family = inference.apply_family(rows)
    assert family["family_size"].tolist() == [2, 2] and family["verdict"].tolist() == ["worse", "no clear difference"]
    low, high = family.loc[1, ["share_low", "share_high"]]
    ci = sps.binomtest(3, 5).proportion_ci(confidence_level=1 - 0.05 / 2, method="exact")
    assert (low, high) == pytest.approx((ci.low, ci.high))
    assert inference.seeds_to_decide(3, 5, 0, 5, 0.05 / 2) > 5  # how many seeds the same shares would need


def test_quality_is_compared_on_the_runs_that_learned_and_withheld_below_five():
    rng = np.random.default_rng(4)
    values = _study(rng, 5, {"bimodal": 0.0})
    broken = values.index[(values["arm"] == "bimodal") & (values["seed"] < 3)]
    values.loc[broken, "value"] = 65.6  # three seeds of noise: a mean over both modes would be +190 %
    failed = set(values.loc[broken, "run_id"])
    row = inference.apply_family(inference.compare_to_reference(values, "ref", "fid_fmnist", False, ["bimodal"],
                                                                failed=failed)).iloc[0]
    assert (row.n, row.failed, row.runs) == (2, 3, 5) and row.verdict == "withheld"
    learned = values[(values["arm"] == "bimodal") & ~values["run_id"].isin(failed)]["value"]
    reference = values[values["arm"] == "ref"]["value"]
    assert row.estimate == pytest.approx(np.log(learned).mean() - np.log(reference).mean())
    assert "runs that learned" in row.test


def test_the_smallest_exact_p_at_five_seeds_cannot_reach_a_family_level():
    assert inference.smallest_exact_p(5, 5) == pytest.approx(2 / 252)
    assert inference.smallest_exact_p(5, 5) > 0.05 / 44


def test_the_comparison_scale_is_each_metrics_own_declaration():
    """FID and IS declare log-scale comparisons (`Output.log_scale`); the report's scale and the plan's power
    read that one declaration for every value name a metric writes (a plugin's metric declares its own)."""
    from ganbench.analysis.inference import metric_scale
    from ganbench.analysis.power import scale_of
    from ganbench.metrics.registry import KINDS, METRICS, value_name

    declared = {value_name(out.name, metric.extractor): out.log_scale
                for metric in METRICS.values() for out in (*KINDS[metric.kind].outputs, *KINDS[metric.kind].optional)}
    assert {name for name, log in declared.items() if log} == {"fid", "isc", "fid_fmnist", "isc_fmnist"}
    for name, log in declared.items():
        assert metric_scale(name, [1.0, 2.0]) == scale_of(name) == ("log" if log else "raw")
    assert metric_scale("fid_fmnist", [0.0, 2.0]) == "raw"  # a value at 0 has no log
    assert scale_of("not_a_metric") == "raw"
