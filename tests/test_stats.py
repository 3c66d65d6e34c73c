"""Statistics against hand-computed values and simulated data."""

import itertools

import numpy as np
import pandas as pd
import pytest

from ganbench.analysis import inference, stats


def test_welch_matches_scipy_and_hand_values():
    from scipy import stats as sps

    from ganbench.analysis.inference import _p_value

    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0]
    estimate, se, dof = stats.welch_contrast(a, b)
    assert _p_value(estimate, se, dof) == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue)
    assert estimate == pytest.approx(2.5 - 4.0)


def test_exact_permutation_pvalue_by_hand():
    # 3 vs 3 completely separated: only the observed split (and its mirror) is as extreme: 2/20.
    assert stats.permutation_pvalue([10, 11, 12], [0, 1, 2]) == pytest.approx(0.1)
    assert stats.permutation_pvalue([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)


def test_hedges_g_by_hand():
    a, b = [2.0, 4.0, 6.0], [1.0, 3.0, 5.0]  # pooled sd 2, d = 0.5, J = 1 − 3/(4·6 − 9) = 0.8
    assert stats.hedges_g(a, b) == pytest.approx(0.5 * 0.8)


@pytest.mark.parametrize("n", [3, 5, 30])
def test_mean_ci_coverage_close_to_95_percent(n):
    rng = np.random.default_rng(1)
    sims, hits = 400, 0
    for _ in range(sims):
        lo, hi, _ = stats.mean_ci(rng.normal(10.0, 2.0, n))
        hits += lo <= 10.0 <= hi
    assert 0.92 <= hits / sims <= 0.98, hits / sims  # ± 3 standard errors of a 95 % rate


@pytest.mark.integration
def test_welch_difference_ci_coverage():
    """A family of one comparison (what `ganbench compare` shows): its Welch interval covers 95 %."""
    from ganbench.analysis import inference

    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(400):
        values = pd.DataFrame([{"part": "", "arm": arm, "value": v} for arm, draws in
                               (("a", rng.normal(1, 1, 4)), ("ref", rng.normal(0, 3, 6))) for v in draws])
        row = inference.apply_family(inference.compare_to_reference(values, "ref", "kid_fmnist", False)).iloc[0]
        hits += row["adj_low"] <= 1.0 <= row["adj_high"]
    assert 0.92 <= hits / 400 <= 0.98


def _frame(rows):
    return pd.DataFrame(rows)


def test_run_values_and_comparison_direction():
    rows = []
    for arm, base in (("ref", 20.0), ("good", 10.0), ("same", 20.0)):
        for seed in range(4):
            for step, offset in ((100, 5.0), (200, 0.0)):
                rows.append({"part": "", "arm": arm, "seed": seed, "run_id": f"{arm}{seed}", "status": "completed",
                             "step": step, "metric": "fid_fmnist", "value": base + offset + 0.1 * seed})
    rows.append({"part": "", "arm": "good", "seed": 9, "run_id": "dead", "status": "diverged", "step": None,
                 "metric": None, "value": None})
    values = stats.run_values(_frame(rows), "fid_fmnist", higher_is_better=False)
    assert len(values) == 13 and values.loc[values["run_id"] == "dead", "value"].isna().all()
    assert values.loc[values["run_id"] == "ref0", "value"].item() == 20.0  # final, not the step-100 value
    summary = stats.arm_summary(values).set_index("arm")
    assert summary.loc["good", "runs"] == 5 and summary.loc["good", "n"] == 4 and summary.loc["good", "diverged"] == 0.2
    assert summary.loc["ref", "ci_method"] == stats.CI_T
    comparison = inference.apply_family(inference.compare_to_reference(values, "ref", "fid_fmnist", False))
    comparison = comparison.set_index("arm")  # 4 seeds: estimates and intervals, no verdicts
    assert comparison.loc["good", "diff"] == pytest.approx(-10.0) and comparison.loc["good", "verdict"] == "exploratory"
    assert comparison.loc["good", "adj_high"] < 0 < comparison.loc["same", "adj_high"]
    best = stats.run_values(_frame(rows), "fid_fmnist", higher_is_better=False, aggregate="best")
    assert best.loc[best["run_id"] == "ref0", "value"].item() == 20.0


def test_factorial_main_effect_recovered():
    """A 2^3 design with a known effect of +4 for A, −2 for B, none for C, noise sd 0.5."""
    rng = np.random.default_rng(3)
    factors, rows = {}, []
    for levels in itertools.product((False, True), repeat=3):
        arm = "".join(name for name, on in zip("ABC", levels) if on) or "none"
        factors[arm] = dict(zip("ABC", levels))
        for seed in range(4):
            value = 10 + 4 * levels[0] - 2 * levels[1] + rng.normal(0, 0.5)
            rows.append({"part": "", "arm": arm, "seed": seed, "run_id": f"{arm}{seed}", "status": "completed",
                         "value": value})
    effects = stats.factorial_effects(pd.DataFrame(rows), factors).set_index("term")
    assert effects.loc["A", "ci_low"] < 4 < effects.loc["A", "ci_high"] and effects.loc["A", "p"] < 1e-6
    assert effects.loc["B", "ci_low"] < -2 < effects.loc["B", "ci_high"]
    assert effects.loc["C", "ci_low"] < 0 < effects.loc["C", "ci_high"]
    with_interactions = stats.factorial_effects(pd.DataFrame(rows), factors, interactions=True)
    assert "A×B" in set(with_interactions["term"])
