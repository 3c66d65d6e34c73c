"""The sweep runner end to end on fake data: real worker processes, real kills."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from typer.testing import CliRunner

from ganbench import rundir
from ganbench.cli import app
from ganbench.study.suite import load_suite
from ganbench.execution.sweep import Selection, run_suite

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
    stats = [(r["step"], r["loss_d"], r["loss_g"]) for r in rundir.read_jsonl(run_dir / "stats.jsonl")]
    metrics = [(r["step"], r["metric"], r["value"]) for r in rundir.read_jsonl(run_dir / "metrics.jsonl")]
    return stats, metrics


def test_sweep_runs_everything_then_skips_finished(tmp_path):
    suite = load_suite(suite_file(tmp_path), tmp_path / "results")
    states = run_suite(suite, workers=2)
    assert sorted(s.status for s in states) == ["completed", "completed"]
    manifest = rundir.read_json(suite.results_dir / "suite.json")
    assert {r["arm"] for r in manifest["runs"]} == {"all", "-batch_norm"}
    finished = {s.run.run_id: rundir.read_json(s.run_dir / "status.json")["finished_at"] for s in states}
    again = run_suite(suite, workers=2)
    assert {s.run.run_id: rundir.read_json(s.run_dir / "status.json")["finished_at"] for s in again} == finished


def test_single_run_equals_train_command(tmp_path):
    """A run trained by a worker process equals the same config trained in-process."""
    from ganbench.training.loop import train

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
    status = {r.arm: rundir.read_json(suite.run_dirs()[r.run_id] / "status.json") for r in suite.runs}
    assert status["fine"]["status"] == "completed"
    assert status["exploding"]["status"] == "diverged" and "non-finite" in status["exploding"]["error"]
    assert "diverged" in result.output


@pytest.mark.integration
def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
    path = suite_file(tmp_path, steps=120, batch=32, ckpt=40)
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
            rows = rundir.read_jsonl(second / "stats.jsonl")
            if rows and 45 <= rows[-1]["step"] < 120:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the second run never reached step 45")
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait()
    assert rundir.read_json(first / "status.json")["status"] == "completed"
    assert rundir.read_json(second / "status.json")["status"] == "running"  # killed without a word
    finished_first = rundir.read_json(first / "status.json")["finished_at"]
    rerun = subprocess.run([sys.executable, "-m", "ganbench.cli", "run", str(path), "--workers", "1",
                            "--device", "cpu", "--results-root", str(tmp_path / "killed")], env=env,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert rundir.read_json(first / "status.json")["finished_at"] == finished_first  # not retrained
    status = rundir.read_json(second / "status.json")
    assert status["status"] == "completed" and status["resumed_from"] == 40
    whole = load_suite(path, tmp_path / "whole").run_dirs()
    for run in suite.runs:
        assert losses(suite.run_dirs()[run.run_id]) == losses(whole[run.run_id])


def test_device_parsing_and_worker_defaults(monkeypatch):
    """The CUDA branches without a GPU: device lists and workers per device, all parsed by ganbench.devices."""
    import torch

    from ganbench import devices
    from ganbench.config import ConfigError
    from ganbench.execution import jobs

    monkeypatch.setattr(devices, "_no_gpu_driver", lambda: False)  # a machine with a driver: torch is asked
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert devices.expand("auto") == ["cuda:0", "cuda:1"]
    assert devices.expand("cuda:1,0") == ["cuda:1", "cuda:0"]
    with pytest.raises(ConfigError, match="only 2 GPU"):
        devices.expand("cuda:0,2")
    assert jobs.default_workers(["cuda:0", "cuda:1"]) == 8
    monkeypatch.setattr(jobs.os, "cpu_count", lambda: 16)
    assert jobs.default_workers(["cpu"]) == 16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.expand("auto") == ["cpu"]
    with pytest.raises(ConfigError, match="CUDA is not available"):
        devices.expand("cuda")
    with pytest.raises(ConfigError, match="expected cuda:N"):
        devices.expand("cuda:x")
    with pytest.raises(ConfigError, match="auto, cpu, cuda or cuda:N"):
        devices.resolve("gpu")


@pytest.mark.integration
def test_one_persistent_worker_trains_every_run_and_keeps_the_data(tmp_path):
    suite = load_suite(suite_file(tmp_path, steps=4), tmp_path / "results")
    states = run_suite(suite, workers=1)
    statuses = [rundir.read_json(s.run_dir / "status.json") for s in states]
    assert [s["status"] for s in statuses] == ["completed", "completed"]
    assert statuses[0]["pid"] == statuses[1]["pid"] != os.getpid()  # one process, no start per run
    assert [s["data"]["process_cache"] for s in statuses] == ["miss", "hit"]


@pytest.mark.integration
def test_a_dead_worker_fails_only_its_run_and_is_replaced(tmp_path):
    import threading

    extra = """
        design: {type: arms, reference: a}
        arms: {a: {}, b: {set: {lr_d: 1.0e-4}}, c: {set: {lr_d: 3.0e-4}}}
    """
    text = SUITE.replace("    hacks: [batch_norm]\n    design: leave_one_out\n", "")
    path = tmp_path / "dead.yaml"
    path.write_text(textwrap.dedent(text.format(steps=300, batch=8, ckpt=100)) + textwrap.dedent(extra))
    suite = load_suite(path, tmp_path / "results")
    first = suite.run_dirs()[suite.runs[0].run_id]
    killed = {}

    def kill_first_worker() -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            status = rundir.RunDir(first).read_status()
            if status.get("status") == "running" and rundir.RunDir(first).last_logged_step() >= 10:
                killed["pid"] = status["pid"]
                os.kill(status["pid"], signal.SIGKILL)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_first_worker)
    killer.start()
    states = run_suite(suite, workers=1)
    killer.join()
    by_arm = {s.run.arm: s for s in states}
    assert by_arm["a"].status == "failed" and "worker process died (exit code -9)" in by_arm["a"].error
    assert rundir.read_json(first / "status.json")["status"] == "failed"
    assert by_arm["b"].status == by_arm["c"].status == "completed"
    assert rundir.read_json(by_arm["b"].run_dir / "status.json")["pid"] != killed["pid"]
