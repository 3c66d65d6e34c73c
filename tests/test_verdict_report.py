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
        rows = (REPO / "reports" / "quick" / "tables" / name).read_text().splitlines()[2:]
        shown += sum(1 for row in rows if "unavailable" not in row)
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
