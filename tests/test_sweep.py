"""The sweep runner end to end on fake data: real worker processes, real kills."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from typer.testing import CliRunner

from ganbench import runio
from ganbench.cli import app
from ganbench.suite import load_suite
from ganbench.sweep import Selection, run_suite

SUITE = """
    name: sweep
    dataset: fake
    preset: dcgan
    hacks: [batch_norm]
    design: leave_one_out
    seeds: 1
    steps: {steps}
    base: {{batch_size: {batch}, log_every: 5, sample_every: 0, checkpoint_every: {ckpt}, threads: 1}}
    evaluation: {{every: {ckpt}, samples: 64, reference_samples: 0, metrics: fid_fmnist}}
"""


def suite_file(tmp_path, steps=8, batch=8, ckpt=4, extra=""):
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent(SUITE.format(steps=steps, batch=batch, ckpt=ckpt)) + textwrap.dedent(extra))
    return path


def losses(run_dir):
    stats = [(r["step"], r["loss_d"], r["loss_g"]) for r in runio.read_jsonl(run_dir / "stats.jsonl")]
    metrics = [(r["step"], r["metric"], r["value"]) for r in runio.read_jsonl(run_dir / "metrics.jsonl")]
    return stats, metrics


def test_sweep_runs_everything_then_skips_finished(tmp_path):
    suite = load_suite(suite_file(tmp_path), tmp_path / "results")
    states = run_suite(suite, workers=2)
    assert sorted(s.status for s in states) == ["completed", "completed"]
    manifest = runio.read_json(suite.results_dir / "suite.json")
    assert {r["arm"] for r in manifest["runs"]} == {"all", "-batch_norm"}
    finished = {s.run.run_id: runio.read_json(s.run_dir / "status.json")["finished_at"] for s in states}
    again = run_suite(suite, workers=2)
    assert {s.run.run_id: runio.read_json(s.run_dir / "status.json")["finished_at"] for s in again} == finished


def test_single_run_equals_train_command(tmp_path):
    """A run trained by a worker process equals the same config trained in-process."""
    from ganbench.train import train

    suite = load_suite(suite_file(tmp_path), tmp_path / "results")
    run_suite(suite, Selection(only_arms=("all",)), workers=1)
    run = next(r for r in suite.runs if r.arm == "all")
    train(run.config.replace(device="cpu"), tmp_path / "direct")
    assert losses(suite.run_dirs()[run.run_id]) == losses(tmp_path / "direct")


def test_diverged_run_is_recorded_and_the_others_complete(tmp_path):
    extra = """
        design: {type: arms, reference: fine}
        arms:
          fine: {}
          exploding: {set: {lr_d: 1.0e+30, lr_g: 1.0e+30}}
    """
    text = SUITE.replace("    hacks: [batch_norm]\n    design: leave_one_out\n", "")
    path = tmp_path / "div.yaml"
    path.write_text(textwrap.dedent(text.format(steps=8, batch=8, ckpt=4)) + textwrap.dedent(extra))
    result = CliRunner().invoke(app, ["run", str(path), "--workers", "2", "--device", "cpu",
                                      "--results-root", str(tmp_path / "results")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output  # diverging is a result, not a failure of the sweep
    suite = load_suite(path, tmp_path / "results")
    status = {r.arm: runio.read_json(suite.run_dirs()[r.run_id] / "status.json") for r in suite.runs}
    assert status["fine"]["status"] == "completed"
    assert status["exploding"]["status"] == "diverged" and "non-finite" in status["exploding"]["error"]
    assert "diverged" in result.output


def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
    path = suite_file(tmp_path, steps=120, batch=64, ckpt=40)
    env = {**os.environ, "COLUMNS": "200"}
    reference = subprocess.run([sys.executable, "-m", "ganbench.cli", "run", str(path), "--workers", "1",
                                "--device", "cpu", "--results-root", str(tmp_path / "whole")], env=env,
                               capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr
    suite = load_suite(path, tmp_path / "killed")
    first, second = [suite.run_dirs()[r.run_id] for r in suite.runs]
    sweep = subprocess.Popen([sys.executable, "-m", "ganbench.cli", "run", str(path), "--workers", "1",
                              "--device", "cpu", "--results-root", str(tmp_path / "killed")], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:  # kill once the second run is past its first checkpoint
            rows = runio.read_jsonl(second / "stats.jsonl")
            if rows and 45 <= rows[-1]["step"] < 120:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the second run never reached step 45")
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait()
    assert runio.read_json(first / "status.json")["status"] == "completed"
    assert runio.read_json(second / "status.json")["status"] == "running"  # killed without a word
    finished_first = runio.read_json(first / "status.json")["finished_at"]
    rerun = subprocess.run([sys.executable, "-m", "ganbench.cli", "run", str(path), "--workers", "1",
                            "--device", "cpu", "--results-root", str(tmp_path / "killed")], env=env,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert runio.read_json(first / "status.json")["finished_at"] == finished_first  # not retrained
    status = runio.read_json(second / "status.json")
    assert status["status"] == "completed" and status["resumed_from"] == 40
    whole = load_suite(path, tmp_path / "whole").run_dirs()
    for run in suite.runs:
        assert losses(suite.run_dirs()[run.run_id]) == losses(whole[run.run_id])


def test_device_parsing_and_worker_defaults(monkeypatch):
    """The CUDA branches without a GPU: device lists and workers per device."""
    from ganbench import executors, sweep
    from ganbench.suite import SuiteError

    monkeypatch.setattr(sweep.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(sweep.torch.cuda, "device_count", lambda: 2)
    assert sweep.parse_devices("auto") == ["cuda:0", "cuda:1"]
    assert sweep.parse_devices("cuda:1,0") == ["cuda:1", "cuda:0"]
    assert executors.default_workers(["cuda:0", "cuda:1"]) == 8
    monkeypatch.setattr(executors.os, "cpu_count", lambda: 16)
    assert executors.threads_per_worker(8) == 2 and executors.default_workers(["cpu"]) == 16
    monkeypatch.setattr(sweep.torch.cuda, "is_available", lambda: False)
    assert sweep.parse_devices("auto") == ["cpu"]
    with pytest.raises(SuiteError, match="CUDA is not available"):
        sweep.parse_devices("cuda")
    with pytest.raises(SuiteError, match="expected cuda:N"):
        sweep.parse_devices("cuda:x")
