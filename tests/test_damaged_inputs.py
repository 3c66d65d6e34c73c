"""Damaged or misleading values are data problems with a name, never silent numbers (issue 36's
silently-wrong cases; each test names its case id)."""

from __future__ import annotations

import json

import pytest
from test_faults import SUITE, cli, digest, study, trained, write  # noqa: F401 — the finished 4-run study

from ganbench.study.suite import SuiteError, load_suite


def said(result) -> str:
    return " ".join(result.output.split())


def test_y09_a_key_given_twice_is_refused_not_last_wins(tmp_path):
    # Y09: `steps: 4 … steps: 400000` trained 400 000 steps; a repeated arm became another arm's run.
    with pytest.raises(SuiteError, match=r"key 'steps' is given twice in one mapping \(first on line \d+\)"):
        load_suite(write(tmp_path, SUITE + "    steps: 400000\n"), tmp_path / "results")
    repeated_arm = SUITE.replace("      smooth: {hacks: [label_smoothing]}",
                                 "      smooth: {hacks: [label_smoothing]}\n      plain: {hacks: [batch_norm]}")
    with pytest.raises(SuiteError, match="key 'plain' is given twice"):
        load_suite(write(tmp_path, repeated_arm), tmp_path / "results")
    # a YAML merge key, then a key that overrides what it merged: allowed, the explicit key wins
    inside = SUITE.replace("    base: {batch_size: 8,", "    base: {<<: {batch_size: 4}, batch_size: 8,")
    suite = load_suite(write(tmp_path, inside), tmp_path / "results")
    assert suite.runs[0].config.batch_size == 8


@pytest.mark.parametrize("name", ["plain\u200b", "label_smoothing\u202e", "a\u2028b"])
def test_y06_arm_names_with_invisible_characters_are_refused(tmp_path, name):
    # Y06: `plain` and `plain\u200b` were two arms that read the same; U+202E made one display as another.
    text = SUITE.replace("      smooth: {hacks: [label_smoothing]}", f'      "{name}": {{hacks: [label_smoothing]}}')
    text = text.replace('"a\u2028b"', '"a\\u2028b"')
    with pytest.raises(SuiteError, match="invisible or direction-changing character"):
        load_suite(write(tmp_path, text), tmp_path / "results")


def test_d3_run_never_replaces_a_suite_json_it_did_not_write(tmp_path):
    # D3: a results directory holding the user's own suite.json: `run` replaced it.
    suite_file = write(tmp_path, SUITE)
    own = tmp_path / "results" / "flt" / "suite.json"
    own.parent.mkdir(parents=True)
    own.write_text(json.dumps({"my": "own notes"}))
    before = digest(tmp_path / "results")
    result = cli("run", suite_file, "--results-root", tmp_path / "results", "--device", "cpu")
    assert result.exit_code == 2 and "not a suite manifest ganbench wrote" in said(result), result.output
    assert digest(tmp_path / "results") == before


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def _damage(kind, run):
    metrics, stats, config = run / "metrics.jsonl", run / "stats.jsonl", run / "config.json"
    if kind in ("X01_step_four", "X02_stats_step_two", "X02_stats_step_huge"):
        path = metrics if kind == "X01_step_four" else stats
        rows = _rows(path)
        rows[0]["step"] = {"X01_step_four": "four", "X02_stats_step_two": "two", "X02_stats_step_huge": 1e300}[kind]
        _write_rows(path, rows)
    elif kind == "X02_stats_empty_row":
        stats.write_text("{}\n" + stats.read_text())
    elif kind == "X01_no_metric":
        rows = _rows(metrics)
        rows[0].pop("metric")
        _write_rows(metrics, rows)
    elif kind.startswith("X01c_value"):  # the final evaluation's value: "abc", 1e999, -1e999
        text = metrics.read_text().splitlines()
        last = json.loads(text[-1])
        bad = {"X01c_value_abc": '"abc"', "X01c_value_inf": "1e999", "X01c_value_minus_inf": "-1e999"}[kind]
        text[-1] = text[-1].replace(f'"value": {json.dumps(last["value"])}', f'"value": {bad}')
        metrics.write_text("\n".join(text) + "\n")
    elif kind == "X01_loss_high":
        rows = _rows(stats)
        rows[0]["loss_d"] = "high"
        _write_rows(stats, rows)
    elif kind == "X01_config_steps_many":
        record = json.loads(config.read_text())
        record["config"]["steps"] = "many"
        config.write_text(json.dumps(record))
    elif kind in ("X03_metrics_is_a_directory", "X03_stats_is_a_directory"):
        path = metrics if kind.startswith("X03_metrics") else stats
        path.unlink()
        path.mkdir()


DAMAGES = ["X01_step_four", "X01_no_metric", "X01c_value_abc", "X01c_value_inf", "X01c_value_minus_inf",
           "X01_loss_high", "X01_config_steps_many", "X02_stats_step_two", "X02_stats_step_huge",
           "X02_stats_empty_row", "X03_metrics_is_a_directory", "X03_stats_is_a_directory"]


@pytest.mark.parametrize("kind", DAMAGES)
def test_x01_x03_a_damaged_value_is_said_with_its_file_and_the_rest_goes_on(study, tmp_path, kind):
    """X01–X03, X01c: damaged values in a run's files made report/compare raise TypeError,
    tensorboard KeyError, or were reported as NaN/inf with exit 0 and no word. Each is now said with
    the file (and line), left out, and every command goes on with the rest."""
    results = study / "results" / "flt"
    runs = sorted((results / "runs").iterdir())
    damaged = runs[0]
    _damage(kind, damaged)
    commands = {"report": ["report", results, "--out", tmp_path / "rep"],
                "compare": ["compare", "--suite", study / "flt.yaml", "--results-root", study / "results",
                            "plain", "smooth"],
                "status": ["status", study / "flt.yaml", "--results-root", study / "results"],
                "tensorboard": ["tensorboard", results, "--logdir", tmp_path / "tb"]}
    for name, args in commands.items():
        result = cli(*args)
        assert result.exit_code == 0 and result.exception is None, (name, result.output, result.exception)
        in_stats, in_config = "stats" in kind or "loss" in kind, "config" in kind
        reads_it = name == "report" or (name == "compare" and not in_stats) or (name == "tensorboard" and not in_config)
        if reads_it:  # the damaged file is named (status reads neither log)
            assert str(damaged) in said(result).replace(" ", ""), (name, said(result))
    readme = (tmp_path / "rep" / "README.md").read_text()
    assert "## Data problems" in readme and damaged.name in readme
    if kind.startswith("X01c"):  # the damaged final value is not a number in the tidy table
        import pandas as pd

        table = pd.read_csv(tmp_path / "rep" / "results.csv")
        values = table[(table["run_id"] == damaged.name) & (table["metric"] == "fid_fmnist")]["value"]
        assert values.map(lambda v: v == v and abs(v) != float("inf")).all()
