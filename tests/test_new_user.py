"""The frictions a new user met in two hours (issue 32): slips that get their fix named, warnings for
arms that measure nothing, one message per mistake, a starter suite, and the files a citable tool ships."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ganbench.cli import app

REPO = Path(__file__).resolve().parent.parent


def invoke(*args, cwd=None):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


SMALL = """
    name: small
    dataset: fake
    preset: dcgan
    hacks: [batch_norm, label_smoothing]
    design: leave_one_out
    seeds: 1
    steps: 6
    evaluation: {metrics: METRICS}
"""


def test_the_usual_slips_get_their_fix_named(monkeypatch, capsys):
    import ganbench.cli as cli

    assert cli.usage_hint(["plan", "s.yaml", "--set", "steps", "200"]) == \
        "--set takes KNOB=VALUE as one word: --set steps=200"
    assert "goes after `--`" in cli.usage_hint(["compare", "--suite", "s.yaml", "-kernel_4", "all"])
    assert cli.usage_hint(["compare", "--suite", "s.yaml", "--", "-kernel_4", "all"]) is None  # written right
    assert cli.usage_hint(["-p", "mine.py", "plan", "s.yaml", "--set", "steps=2"]) is None
    monkeypatch.setattr(sys, "argv", ["ganbench", "plan", str(REPO / "suites" / "quick.yaml"), "--set", "steps", "200"])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == 2 and "hint: --set takes KNOB=VALUE as one word: --set steps=200" in capsys.readouterr().err


def test_a_data_root_that_is_not_there_is_refused(tmp_path):
    result = invoke("plan", write(tmp_path, SMALL.replace("METRICS", "none")), "--no-estimate", "--data-root",
                    tmp_path / "nonexistent", "--results-root", tmp_path / "results")
    assert result.exit_code == 2 and "no such directory" in result.output


def test_an_unknown_arm_lists_the_arms(tmp_path):
    result = invoke("plan", write(tmp_path, SMALL.replace("METRICS", "none")), "--no-estimate", "--only", "y",
                    "--results-root", tmp_path / "results")
    assert result.exit_code == 2 and "its arms: all, -batch_norm, -label_smoothing" in result.output


def test_a_mistake_every_arm_shares_is_said_once(tmp_path):
    result = invoke("plan", write(tmp_path, SMALL.replace("METRICS", "fid_fmnits")), "--no-estimate",
                    "--results-root", tmp_path / "results")
    assert result.exit_code == 2
    assert result.output.count("unknown metric 'fid_fmnits'") == 1 and "every arm (3)" in result.output


def test_an_arm_that_trains_its_references_runs_is_warned_of(tmp_path):
    path = write(tmp_path, """
        name: twin
        dataset: fake
        preset: dcgan
        arms: {a: {}, b: {hacks: [batch_norm]}, c: {hacks: [label_smoothing]}}
        reference: a
        seeds: 1
        steps: 6
        evaluation: {metrics: none}
    """)
    for command in (("plan", path, "--no-estimate"), ("run", path, "--dry-run")):
        result = invoke(*command, "--results-root", tmp_path / "results")
        assert result.exit_code == 0, result.output
        said = " ".join(result.output.split())
        assert "arm b trains exactly its reference arm's runs" in said and "arm c trains" not in said


@pytest.mark.integration
def test_init_writes_a_starter_suite_that_plan_accepts_and_never_overwrites(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    made = invoke("init", "mine")
    assert made.exit_code == 0 and (tmp_path / "mine.yaml").exists(), made.output
    text = (tmp_path / "mine.yaml").read_text()
    assert text.count("\n#") >= 3 and "precision: fp32" in text  # commented, and portable
    plan = invoke("plan", "mine.yaml", "--no-estimate", "--results-root", tmp_path / "results")
    assert plan.exit_code == 0 and "5 arms × 5 seeds = 25 runs" in plan.output, plan.output
    again = invoke("init", "mine")
    assert again.exit_code == 2 and "never overwrites" in again.output and (tmp_path / "mine.yaml").read_text() == text
    bad = invoke("init", "no/good")
    assert bad.exit_code == 2 and not (tmp_path / "no").exists()


def test_the_files_a_citable_tool_ships():
    assert "MIT License" in (REPO / "LICENSE").read_text()
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT" and citation["title"]
    assert 'license = { text = "MIT" }' in (REPO / "pyproject.toml").read_text()


def test_run_help_groups_the_cluster_options_and_reflows_its_text():
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0
    text = result.output
    for panel in ("Ray (--executor ray)", "SLURM (--executor slurm)", "Ray and SLURM"):
        assert panel in text
    everyday = text[:text.index("Ray (--executor ray)")]
    assert "--slurm-partition" not in everyday and "--address" not in everyday and "--workers" in everyday
    assert "tensorboard/SUITE_NAME" in text  # no <placeholder> swallowed as markup


@pytest.mark.integration
def test_plan_of_a_large_suite_prints_counts_not_an_empty_table():
    result = invoke("plan", REPO / "suites" / "hacks.yaml", "--no-estimate")
    assert result.exit_code == 0, result.output
    assert "1472 runs (1472 pending); --runs lists each of them" in result.output
    assert "run id" not in result.output  # the empty table's header is gone


def test_compare_of_two_arms_fits_80_columns_with_its_units(tmp_path):
    import pandas as pd

    from ganbench.cli.tables import arm_comparison_table
    from rich.console import Console

    frame = pd.DataFrame([
        {"arm": "-label_smoothing", "n": 3, "runs": 3, "mean": 17.1, "std": 0.8, "ci_low": 15.0, "ci_high": 19.3,
         "scale": "log", "change": -0.6, "change_low": -60.0, "change_high": 145.0, "test": "Welch's t (log scale)",
         "p": 0.853, "g": -0.12, "verdict": "exploratory"},
        {"arm": "all", "n": 3, "runs": 3, "mean": 17.2, "std": 0.1, "ci_low": 17.0, "ci_high": 17.5, "scale": "log"}])
    console = Console(width=80, record=True, file=open(tmp_path / "out.txt", "w"))
    console.print(arm_comparison_table(frame, "-label_smoothing", "all", "fid_fmnist"))
    text = console.export_text()
    assert "-0.6 % [-60 %, 145 %]" in text and "all (reference)" in text
    assert max(len(line) for line in text.splitlines()) <= 80
