"""The error rates the report claims, checked by seeded simulation (issue 23).

- Under the null, with per-arm seed SDs as unequal as the 800-step quick study's (log FID: 0.0027 to 0.143),
  the family-wise error rate of the verdicts is at most α (plus Monte Carlo error).
- With real effects, the simultaneous intervals cover every true difference together with
  probability at least 1 − α (minus Monte Carlo error).
- No comparison enters the family twice.
- The power `ganbench plan` prints is the power of the test the report runs.

Each study is a DataFrame like `stats.run_values` gives; the permutation p (shown in the report,
never used for a verdict or an interval) is skipped to keep the simulations fast.
"""

import math

import numpy as np
import pandas as pd
import pytest

from ganbench.analysis import inference, power, stats

ALPHA = 0.05
QUICK_SDS = np.geomspace(0.0027, 0.143, 13)  # the spread of the per-arm SDs of log FID at 49f301b's quick study
REFERENCE_SD = 0.054  # its pooled SD


@pytest.fixture(autouse=True)
def no_permutation_test(monkeypatch):
    monkeypatch.setattr(stats, "permutation_pvalue", lambda a, b, seed=0: math.nan)


def _study(rng: np.random.Generator, seeds: int, sds: dict[str, float], effects: dict[str, float],
           base: float = math.log(18.0)) -> pd.DataFrame:
    """Final values per run: log-normal around exp(base + effect) with the arm's SD on the log scale."""
    rows = []
    for arm, sd in sds.items():
        for seed, z in enumerate(rng.standard_normal(seeds)):
            rows.append({"part": "", "arm": arm, "seed": seed, "run_id": f"{arm}-{seed}", "status": "completed",
                         "value": math.exp(base + effects.get(arm, 0.0) + sd * z)})
    return pd.DataFrame(rows)


def _family(rng, seeds, sds, effects, metrics=("fid_fmnist",)) -> pd.DataFrame:
    arms = [a for a in sds if a != "ref"]
    rows = [inference.compare_to_reference(_study(rng, seeds, sds, effects), "ref", metric, False, arms)
            for metric in metrics]
    return inference.apply_family(pd.concat(rows, ignore_index=True))


def test_family_wise_error_is_at_most_alpha_with_unequal_variances():
    rng = np.random.default_rng(23)
    sds = {"ref": REFERENCE_SD, **{f"arm{i}": float(sd) for i, sd in enumerate(QUICK_SDS)}}
    repetitions, errors, noisy = 400, 0, 0
    for _ in range(repetitions):
        family = _family(rng, 10, sds, {})
        called = family["verdict"].isin(["better", "worse"])
        errors += bool(called.any())
        noisy += bool(called[family["arm"] == "arm12"].any())  # the noisiest arm (SD 0.143)
    fwer = errors / repetitions
    monte_carlo = 3 * math.sqrt(ALPHA * (1 - ALPHA) / repetitions)
    assert fwer <= ALPHA + monte_carlo, fwer
    assert noisy / repetitions <= ALPHA / 13 + 3 * math.sqrt(ALPHA / 13 / repetitions), noisy / repetitions


def test_simultaneous_intervals_cover_every_true_difference_together():
    rng = np.random.default_rng(64)
    effects = {f"arm{i}": e for i, e in enumerate([math.log(1.5), math.log(0.5)] * 3)}
    sds = {"ref": REFERENCE_SD, **{arm: float(sd) for arm, sd in zip(effects, np.geomspace(0.01, 0.14, 6))}}
    repetitions, covered = 300, 0
    for _ in range(repetitions):
        family = _family(rng, 6, sds, effects, metrics=("fid_fmnist", "isc_fmnist"))
        truth = family["arm"].map(effects).to_numpy()
        covered += bool(((family["adj_low"] <= truth) & (truth <= family["adj_high"])).all())
    coverage = covered / repetitions
    assert coverage >= 1 - ALPHA - 3 * math.sqrt(ALPHA * (1 - ALPHA) / repetitions), coverage


def test_a_comparison_enters_the_family_once():
    """An arm with the reference's FLOPs per step has no equal-FLOPs row (it would be the equal-steps one)."""
    steps = [200, 400]
    frame = pd.DataFrame([{"part": "", "arm": arm, "seed": s, "run_id": f"{arm}{s}", "status": "completed",
                           "step": step, "metric": "fid_fmnist", "value": 30.0 - step / 100 + s, "knob_steps": 400}
                          for arm in ("ref", "same", "costly") for s in range(5) for step in steps])
    rows = inference.compare_at_equal_compute(frame, "ref", "fid_fmnist", False,
                                              {"ref": 1.0, "same": 1.0, "costly": 2.0}, ["same", "costly"])
    assert list(rows["arm"]) == ["costly"]
    values = stats.run_values(frame, "fid_fmnist", False)
    at_steps = inference.compare_to_reference(values, "ref", "fid_fmnist", False, ["same", "costly"])
    family = inference.apply_family(pd.concat([at_steps, rows], ignore_index=True))
    keys = list(zip(family["metric"], family["arm"], family["basis"]))
    assert len(keys) == len(set(keys)) and (family["family_size"] == len(family)).all()


@pytest.mark.parametrize("sd, target, family", [(REFERENCE_SD, 0.10, 119), (0.02, 0.05, 30), (0.1, 0.25, 10)])
def test_the_power_plan_prints_is_the_power_of_the_reports_test(sd, target, family):
    delta = math.log1p(target)
    seeds = power.seeds_needed(delta, sd, family)
    printed = power.power_of(delta, sd, seeds, family)
    assert printed >= power.POWER
    rng = np.random.default_rng(seeds)
    repetitions, rejected = 2000, 0
    for _ in range(repetitions):
        x, y = rng.normal(delta, sd, seeds), rng.normal(0.0, sd, seeds)
        estimate, se, dof = stats.welch_contrast(x, y)
        rejected += inference._p_value(estimate, se, dof) < ALPHA / family
    simulated = rejected / repetitions
    assert abs(simulated - printed) < 0.035, (simulated, printed)
    assert power.min_detectable(sd, seeds, family) <= delta
