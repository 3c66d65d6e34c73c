"""Two sweeps of one suite, a killed driver, and worker counts: no run is trained twice, no
orphan trains on, and no number depends on how the sweep was scheduled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ganbench import rundir
from ganbench.execution.sweep import Selection, run_suite
from ganbench.study.suite import load_suite

pytestmark = pytest.mark.integration  # real worker processes / long runs: `pytest -m integration`

SUITE = """
    name: conc
    dataset: fake
    preset: dcgan
    design: {{type: arms, reference: a}}
    arms:
      a: {{}}
      b: {{set: {{lr_d: 1.0e-4}}}}
      c: {{set: {{beta1: 0.7}}}}
    seeds: 1
    steps: {steps}
    base: {{batch_size: 32, log_every: 10, sample_every: 0, checkpoint_every: 20}}
    evaluation: {{metrics: none}}
"""


def suite_file(tmp_path: Path, steps: int) -> Path:
    path = tmp_path / "conc.yaml"
    path.write_text(textwrap.dedent(SUITE.format(steps=steps)))
    return path


def stats(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "step_time_s"} for r in rundir.read_jsonl(run_dir / "stats.jsonl")]


def ganbench_run(path: Path, root: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ganbench", "run", str(path), "--device", "cpu",
                             "--results-root", str(root), *extra], env={**os.environ, "COLUMNS": "200"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def alive(pid: int) -> bool:
    """True while `pid` is a live process (a zombie awaiting its reaper counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_two_concurrent_sweeps_train_each_run_once(tmp_path):
    path = suite_file(tmp_path, steps=60)
    reference = load_suite(path, tmp_path / "ref")
    run_suite(reference, workers=1)
    first, second = ganbench_run(path, tmp_path / "both", "--workers", "2"), \
        ganbench_run(path, tmp_path / "both", "--workers", "2")
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    suite = load_suite(path, tmp_path / "both")
    for run in suite.runs:
        got = stats(suite.run_dirs()[run.run_id])
        assert [r["step"] for r in got] == [10, 20, 30, 40, 50, 60]  # each row once, in order
        assert got == stats(reference.run_dirs()[run.run_id])
        assert rundir.read_json(suite.run_dirs()[run.run_id] / "status.json")["status"] == "completed"


def test_killed_driver_leaves_no_orphans_and_the_rerun_resumes(tmp_path):
    path = suite_file(tmp_path, steps=200)
    suite = load_suite(path, tmp_path / "killed")
    sweep = ganbench_run(path, tmp_path / "killed", "--workers", "1", "--only", "a")
    run_dir = suite.run_dirs()[suite.runs[0].run_id]
    deadline, worker = time.time() + 120, None
    try:
        while time.time() < deadline:  # kill the driver only, once its worker has trained past a checkpoint
            status = rundir.RunDir(run_dir).read_status()
            if status.get("status") == "running" and rundir.RunDir(run_dir).last_logged_step() >= 30:
                worker = status["pid"]
                break
            time.sleep(0.05)
        else:
            pytest.fail("the first run never got going")
        assert worker != sweep.pid
        os.kill(sweep.pid, signal.SIGKILL)
        sweep.wait()
        gone_by = time.time() + 15
        while alive(worker) and time.time() < gone_by:
            time.sleep(0.1)
        assert not alive(worker), "the worker kept training after its driver was killed"
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
    step_then = rundir.RunDir(run_dir).last_logged_step()
    time.sleep(1.0)
    assert rundir.RunDir(run_dir).last_logged_step() == step_then  # nobody writes any more
    rerun = ganbench_run(path, tmp_path / "killed", "--workers", "1", "--only", "a")
    out = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, out
    reference = load_suite(path, tmp_path / "ref")
    run_suite(reference, Selection(only_arms=("a",)), workers=1)
    assert stats(run_dir) == stats(reference.run_dirs()[suite.runs[0].run_id])
    assert rundir.read_json(run_dir / "status.json")["resumed_from"] >= 20


def test_numbers_do_not_depend_on_the_worker_count(tmp_path):
    """Sweeps train each run with the suite's threads (default 1), whatever --workers is."""
    path = suite_file(tmp_path, steps=40)
    one, two = load_suite(path, tmp_path / "one"), load_suite(path, tmp_path / "two")
    run_suite(one, workers=1)
    run_suite(two, workers=2)
    for run in one.runs:
        assert stats(one.run_dirs()[run.run_id]) == stats(two.run_dirs()[run.run_id])
        assert rundir.read_json(one.run_dirs()[run.run_id] / "config.json")["execution"]["threads"] == 1
