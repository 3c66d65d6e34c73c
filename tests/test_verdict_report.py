"""What the report says about its own inference: settings never pooled, bold only when clear, convergence,
power in the plan, and a family whose size is the rows shown (issue 23)."""

import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ganbench.analysis import welch_bound
from ganbench.analysis.convergence import convergence_table
from ganbench.analysis.report.tables import clear_best
from ganbench.analysis.results import MixedSettingsWarning, split_settings
from ganbench.cli import app

REPO = Path(__file__).resolve().parent.parent


def test_one_metric_measured_two_ways_is_reported_apart():
    rows = [{"arm": "a", "run_id": f"r{i}", "step": 10, "metric": "fid_fmnist", "value": 10.0 + i,
             "extractor": "fmnist", "samples_generated": 5000 if i < 3 else 1000} for i in range(4)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = split_settings(pd.DataFrame(rows))
    assert list(frame["metric"]) == ["fid_fmnist"] * 3 + ["fid_fmnist [samples_generated=1000]"]
    assert any(issubclass(w.category, MixedSettingsWarning) and "measured differently" in str(w.message)
               for w in caught)


def test_bold_only_when_the_best_interval_is_clear_of_the_others():
    summary = pd.DataFrame({"mean": [10.0, 12.0, 13.0], "ci_low": [9.0, 11.5, 12.0], "ci_high": [11.0, 12.5, 14.0]},
                           index=["a", "b", "c"])
    assert clear_best(summary, False) == "a"
    summary.loc["b", "ci_low"] = 10.5  # b's interval now reaches into a's
    assert clear_best(summary, False) is None
    assert clear_best(summary, None) is None


def _curves(arm: str, values_by_step: dict[int, float], seeds: int = 4) -> list[dict]:
    return [{"arm": arm, "run_id": f"{arm}{s}", "status": "completed", "step": step, "metric": "fid_fmnist",
             "value": value * (1 + 0.001 * s)} for s in range(seeds) for step, value in values_by_step.items()]


def test_convergence_flags_arms_still_improving_and_flipped_comparisons():
    frame = pd.DataFrame(_curves("ref", {200: 30.0, 400: 20.0, 600: 19.9}) + _curves("steep", {200: 40, 400: 25, 600: 15})
                         + _curves("flat", {200: 22, 400: 21.0, 600: 21.0}))
    table = convergence_table(frame, "fid_fmnist", False, ["ref", "steep", "flat"], "ref").set_index("arm")
    assert table.loc["steep", "still_improving"] and not table.loc["flat", "still_improving"]
    assert table.loc["steep", "change"] == pytest.approx(100 * (15 / 25 - 1), rel=1e-3)
    assert table.loc["steep", "flips"] and not table.loc["flat", "flips"]  # steep: worse at 400, better at 600


@pytest.mark.integration
def test_plan_prints_the_minimum_detectable_change_and_the_suites_seeds_follow_it():
    result = CliRunner().invoke(app, ["plan", str(REPO / "suites" / "hacks.yaml"), "--no-estimate", "--json"])
    assert result.exit_code == 0, result.output
    power = {row["metric"]: row for row in json.loads(result.stdout)["power"]}
    fid = power["fid_fmnist"]
    assert fid["min_detectable"] > 0 and fid["target"] == "10%" and fid["seeds_for_target"] == fid["seeds"]
    assert math.expm1(fid["min_detectable"]) <= 0.10  # at the suite's seeds a 10 % change is detectable
    few = CliRunner().invoke(app, ["plan", str(REPO / "suites" / "quick.yaml"), "--no-estimate"],
                             env={"COLUMNS": "400"})
    assert "3 seeds per arm: below 5 the report gives no verdicts" in few.output


def test_the_quick_report_states_its_family_and_convergence():
    readme = (REPO / "reports" / "quick" / "README.md").read_text()
    size = int(re.search(r"The family is the (\d+) comparisons", readme).group(1))
    shown = 0
    for name in ("main_effects.md", "main_equal_compute.md"):
        lines = (REPO / "reports" / "quick" / "tables" / name).read_text().splitlines()
        delta = next(i for i, cell in enumerate(lines[0].split("|")) if cell.strip().startswith("Δ"))
        # a row without an estimate (a reading refused; every run of an arm failed to learn) is no comparison
        shown += sum(1 for row in lines[2:] if "unavailable" not in row and row.split("|")[delta].strip() != "—")
    assert size == shown
    assert "**Not converged**" in readme and "The budget has not converged" in readme
    assert "n/a (undecidable)" in readme  # -separate_batches: no mode-collapse label for noise
    assert np.isfinite(size)


def test_report_metric_chooses_what_to_show_never_the_family():
    """`report --metric fid_fmnist` once shrank quick's family from 54 to 15 comparisons, narrowing every
    interval without a word: the verdict metrics (declared, or the defaults from every reported metric)
    now stay, and the report says so."""
    from ganbench.analysis.report.build import shown_metrics
    from ganbench.analysis.results import ReportNote

    names = ["fid_fmnist", "kid_fmnist", "precision_fmnist", "recall_fmnist", "modes_covered_fmnist",
             "fid_inf_fmnist"]
    frame = pd.DataFrame([{"metric": name, "value": 1.0} for name in names])
    declared = {"primary": "fid_fmnist", "verdicts": ["fid_fmnist", "kid_fmnist", "recall_fmnist"]}
    assert shown_metrics(frame, None, declared) == (
        ["fid_fmnist", "kid_fmnist", "precision_fmnist", "recall_fmnist", "modes_covered_fmnist"], [])
    with pytest.warns(ReportNote, match="kid_fmnist, recall_fmnist are kept"):
        assert shown_metrics(frame, ["fid_inf_fmnist"], declared) == (
            ["fid_inf_fmnist", "fid_fmnist", "kid_fmnist", "recall_fmnist"], ["fid_fmnist", "kid_fmnist",
                                                                               "recall_fmnist"])
    # Without an `analysis` section the defaults come from every reported metric, not from --metric's.
    with pytest.warns(ReportNote):
        shown, kept = shown_metrics(frame, ["fid_fmnist"], {})
    assert kept == ["kid_fmnist", "precision_fmnist", "recall_fmnist"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReportNote)  # asking for the verdict metrics themselves: nothing to say
        assert shown_metrics(frame, ["fid_fmnist", "kid_fmnist", "recall_fmnist"], declared)[1] == []


# --- The committed loo-cpu report, recomputed from the raw run files (issue 34) --------------------------
LOO = REPO / "results" / "loo-cpu"


def _final(run_id: str, metric: str) -> tuple[float, float, float]:
    """(mean of the last evaluation's draws, their SD, the noise floor) of one run, read from its metrics.jsonl."""
    rows = [json.loads(line) for line in (LOO / "runs" / run_id / "metrics.jsonl").read_text().splitlines() if line]
    rows = [r for r in rows if r["metric"] == metric]
    last = max(r["step"] for r in rows)
    values = [r["value"] for r in rows if r["step"] == last]
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, \
        rows[-1].get("uniform_noise_fid", math.nan)


def _loo_arms() -> dict[str, list[str]]:
    manifest = json.loads((LOO / "suite.json").read_text())
    arms: dict[str, list[str]] = {}
    for run in manifest["runs"]:
        arms.setdefault(run["arm"], []).append(run["run_id"])
    return arms


@pytest.mark.skipif(not (LOO / "suite.json").exists(), reason="needs the committed loo-cpu study")
def test_the_loo_report_recomputes_from_the_raw_run_files_with_failure_as_its_own_outcome():
    from scipy import stats as sps

    arms = _loo_arms()
    fid = {run: _final(run, "fid_fmnist") for runs in arms.values() for run in runs}
    # failed to learn: the final FID within max(3 draw SDs, 1 % of the floor) of uniform noise's FID, or above
    failed = {run for run, (value, sd, floor) in fid.items() if value >= floor - max(3 * sd, 0.01 * floor)}
    assert sorted(r for r in arms["steps:-nonsaturating_loss"] if r in failed) == \
        sorted(["c8b88d9634b3", "fee0519c2fea", "0f00069464cc"])  # 3 of 5, seed 0's 65.572 among them
    table = pd.read_csv(REPO / "reports" / "loo-cpu" / "comparisons.csv")
    size = int(table["family_size"].iloc[0])
    assert table["in_family"].sum() == size
    for row in table.itertuples():
        mine, ref = arms[row.arm], arms[row.reference]
        if row.metric == "failed_to_learn":
            k, k_ref = sum(r in failed for r in mine), sum(r in failed for r in ref)
            assert (row.failed, row.failed_reference) == (k, k_ref)
            assert row.p == pytest.approx(sps.fisher_exact([[k, len(mine) - k], [k_ref, len(ref) - k_ref]]).pvalue)
        elif row.metric == "fid_fmnist" and row.basis in ("equal steps", "equal FLOPs (trained)"):
            x = np.log([fid[r][0] for r in mine if r not in failed])
            y = np.log([fid[r][0] for r in ref if r not in failed])
            assert row.n == len(x) and row.n_reference == len(y)
            if len(x) >= 2:
                assert row.estimate == pytest.approx(x.mean() - y.mean(), rel=1e-9)
                assert row.p == pytest.approx(sps.ttest_ind(x, y, equal_var=False).pvalue, rel=1e-9)
        if np.isfinite(row.p_family):  # Welch's p at its least favourable variance ratio; Fisher's as it is
            bounded = row.p if row.metric == "failed_to_learn" else welch_bound.worst_case_p(row.p, row.n, row.n_reference)
            assert row.p_family == pytest.approx(min(1.0, bounded * size))
        if row.verdict in ("better", "worse") and row.metric != "failed_to_learn":
            assert row.adj_low > 0 or row.adj_high < 0, row  # a verdict never beside an interval containing 0
    nonsat = table[(table["arm"] == "steps:-nonsaturating_loss")]
    assert (nonsat.loc[nonsat["metric"] == "failed_to_learn", "in_family"]).all()
    assert set(nonsat.loc[nonsat["metric"] != "failed_to_learn", "verdict"]) == {"withheld"}


@pytest.mark.skipif(not (LOO / "suite.json").exists(), reason="needs the committed loo-cpu study")
def test_the_loo_report_names_every_called_verdict_and_counts_convergence_once():
    readme = (REPO / "reports" / "loo-cpu" / "README.md").read_text()
    headline = readme.split("## Headline")[1].split("## Results")[0]
    limitations = readme.split("## Limitations")[1].split("## Design")[0]
    assert "`steps:-batch_norm` worse on `recall_fmnist`" in headline
    table = pd.read_csv(REPO / "reports" / "loo-cpu" / "comparisons.csv")
    for arm in table.loc[table["verdict"].isin(["better", "worse"]), "arm"].unique():
        assert f"`{arm}`" in headline, arm  # every arm with a called verdict is named
    counts = re.search(r"(\d+) of (\d+) arms still improve", headline).groups()
    assert re.search(r"(\d+) of (\d+) arms still improve", limitations).groups() == counts
    # each run set once: 10 at equal steps less `-separate_batches` (no run learned) + the 2 trained to equal FLOPs
    assert int(counts[1]) == 11
    convergence = (REPO / "reports" / "loo-cpu" / "tables" / "flops_convergence.md").read_text()
    assert "flops:-strided_conv" in convergence and "flops:-no_fc_hidden" in convergence
