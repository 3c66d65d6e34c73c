"""The Python API (`ganbench.load`, `plan`, `run`, `results`, `report`): the CLI's runs and numbers."""

from __future__ import annotations

import textwrap

import pytest

from ganbench import rundir

from conftest import OWN_SUITE, cli_process

@pytest.mark.integration
def test_the_python_api_gives_the_clis_runs_and_numbers(tmp_path, capsys):
    import ganbench

    (tmp_path / "api.yaml").write_text(textwrap.dedent(OWN_SUITE).replace("hacks: [ttur_sagan_plugin]",
                                                                      "hacks: [label_smoothing]"))
    with pytest.raises(ganbench.ConfigError, match="could not be imported"):  # the API's -p
        ganbench.load(tmp_path / "api.yaml", tmp_path / "by_api", plugins=["no_such_plugin_module"])
    suite = ganbench.load(tmp_path / "api.yaml", tmp_path / "by_api", set={"steps": "2"})
    assert [p["status"] for p in ganbench.plan(suite, estimate=False).runs] == ["pending"] * 4
    states = ganbench.run(suite, device="cpu", workers=1)
    assert [s.status for s in states] == ["completed"] * 4
    said = capsys.readouterr().out  # what `ganbench run` says in a log, in a notebook too
    assert "planned: ≈ " in said and said.count("completed ") == 4
    by_cli = cli_process("run", "api.yaml", "--device", "cpu", "--workers", "1", "--set", "steps=2", "--results-root", "by_cli",
                 cwd=tmp_path)
    assert by_cli.returncode == 0, by_cli.stderr

    def numbers(root: str) -> dict:
        runs = tmp_path / root / "own" / "runs"
        return {p.name: [{k: v for k, v in row.items() if k != "step_time_s"} for row in rundir.read_jsonl(p / "stats.jsonl")]
                for p in runs.iterdir()}

    assert numbers("by_api") == numbers("by_cli") and len(numbers("by_api")) == 4
    frame = ganbench.results(suite)
    assert set(frame["run_id"]) == set(numbers("by_api")) and "hack_label_smoothing" in frame
    assert ganbench.report(suite, out=tmp_path / "rep").name == "README.md"
