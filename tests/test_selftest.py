"""`ganbench selftest` on the CPU (toy sizes): every part passes, each in its own process; a part that
crashes or hangs loses only itself; `run` on a GPU runs the smoke part once and refuses a failed one."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.selftest import PARTS
from ganbench.selftest.runner import SelftestFailed, run_selftest, smoke_gate

pytestmark = pytest.mark.integration  # real worker processes / long runs: `pytest -m integration`


def test_selftest_passes_on_the_cpu_and_writes_its_reports(tmp_path):
    result = CliRunner().invoke(app, ["selftest", "--device", "cpu", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "selftest.json").read_text())
    assert summary["passed"] and summary["toy_sizes"] and list(summary["parts"]) == list(PARTS)
    for part, outcome in summary["parts"].items():
        assert outcome["status"] == "passed" and outcome["checks"], part  # every part judged something
        assert (tmp_path / f"{part}.json").exists() and (tmp_path / f"{part}.log").exists()
    smoke = summary["parts"]["smoke"]
    assert smoke["checks"]["per_run_tensors: a stopped run stays frozen"]["value"] == 0.0
    assert "no CUDA graph" in next(iter(smoke["skipped"].values()))  # what a CPU cannot check is said
    assert all(c["ok"] for name, c in summary["parts"]["eval"]["checks"].items() if "torch-fidelity" in name)
    assert "| smoke | passed |" in (tmp_path / "selftest.md").read_text()


def test_a_crashing_or_hanging_part_loses_only_itself(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nseeds: [not, a, number\n")
    result = CliRunner().invoke(app, ["selftest", "--device", "cpu", "--out", str(tmp_path / "a"), "--suite", str(broken),
                                      "--part", "structures", "--part", "env"])
    assert result.exit_code == 1
    summary = json.loads((tmp_path / "a" / "selftest.json").read_text())
    assert summary["parts"]["structures"]["status"] == "crashed" and "broken.yaml" in summary["parts"]["structures"]["error"]
    assert summary["parts"]["env"]["status"] == "passed"
    hung = run_selftest("cpu", ["smoke", "env"], tmp_path / "b", timeouts={"smoke": 1})
    assert hung["parts"]["smoke"]["status"] == "timed out" and hung["parts"]["env"]["status"] == "passed"
    assert not hung["passed"]


def test_run_runs_the_smoke_part_once_per_machine_and_refuses_a_failed_one(tmp_path, monkeypatch):
    said = []
    assert "smoke selftest passed on cpu" in smoke_gate("cpu", tmp_path, on_start=said.append)
    assert said == ["cpu"] and smoke_gate("cpu", tmp_path, on_start=said.append) is None  # remembered
    assert said == ["cpu"]

    from ganbench.selftest import runner

    failed = {"parts": {"smoke": {"status": "failed", "failed_checks": ["graph = eager (statistics)"]}}}
    monkeypatch.setattr(runner, "run_selftest", lambda *a, **k: failed)
    with pytest.raises(SelftestFailed, match=r"graph = eager \(statistics\).*--no-selftest"):
        smoke_gate("cpu", tmp_path / "other")
    assert not list((tmp_path / "other").glob("smoke-*.json"))  # a failure is not remembered

    from ganbench.cli import run as run_cli

    monkeypatch.setattr(runner, "smoke_gate", lambda *a, **k: (_ for _ in ()).throw(SelftestFailed("engine broken")))
    with pytest.raises(SystemExit) as stop:
        try:
            run_cli._smoke_selftest(["cuda:0"], None)
        except Exception as err:  # typer.Exit
            raise SystemExit(getattr(err, "exit_code", 1)) from err
    assert stop.value.code == 2
