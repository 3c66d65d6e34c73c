"""The SLURM executor through submitit's local executor: the same code as on a cluster, with the
array tasks as subprocesses here. Preemption requeues and resumes; a killed task's runs resume
on the next `ganbench run`; the numbers equal the local executor's."""

import json
import os
import signal

import pytest
from typer.testing import CliRunner

from ganbench import rundir
from ganbench.cli import app
from ganbench.execution.slurm import SlurmExecutor
from ganbench.execution.sweep import run_states, write_manifest
from ganbench.study.suite import load_suite

pytestmark = pytest.mark.integration  # real worker processes / long runs: `pytest -m integration`

pytest.importorskip("submitit")

SUITE = """
name: sl
dataset: fake
preset: dcgan
hacks: [label_smoothing]
design: add_one_in
seeds: 1
steps: {steps}
base: {{batch_size: 8, log_every: 20, sample_every: 0, checkpoint_every: 20, metrics: none}}
"""


def stats(root, run_id):
    return [{k: v for k, v in r.items() if k != "step_time_s"}
            for r in rundir.read_jsonl(root / "sl" / "runs" / run_id / "stats.jsonl")]


def write_suite(tmp_path, steps):
    path = tmp_path / "sl.yaml"
    path.write_text(SUITE.format(steps=steps))
    return path


def test_two_runs_through_slurm_equal_the_local_executor_and_show_in_status(tmp_path):
    suite = write_suite(tmp_path, 40)
    for executor, root in (("slurm", tmp_path / "a"), ("local", tmp_path / "b")):
        extra = ["--slurm-cluster", "local"] if executor == "slurm" else ["--workers", "1"]
        result = CliRunner().invoke(app, ["run", str(suite), "--executor", executor, "--device", "cpu",
                                          "--results-root", str(root), *extra])
        assert result.exit_code == 0, result.output
    status = CliRunner().invoke(app, ["status", str(suite), "--results-root", str(tmp_path / "a"), "--json"])
    assert json.loads(status.stdout)["counts"] == {"completed": 2}
    for run in rundir.read_json(tmp_path / "a" / "sl" / "suite.json")["runs"]:
        assert stats(tmp_path / "a", run["run_id"]) == stats(tmp_path / "b", run["run_id"])
    assert list((tmp_path / "a" / "sl" / "slurm").iterdir())  # submitit's logs beside the runs


def _executor_and_states(suite_path, root):
    suite = load_suite(suite_path, root)
    write_manifest(suite)
    states = run_states(suite, suite.runs)
    return SlurmExecutor(suite.results_dir / "slurm", cluster="local", poll_s=0.2), states


def _when_checkpointed(states, action):
    """An on_update callback that calls action(state) once, when the first run has a checkpoint."""
    done = []

    def on_update(all_states):
        first = all_states[0]
        if not done and first.step >= 40 and (first.run_dir / "checkpoint.pt").exists():
            done.append(first)
            action(first)

    return on_update, done


def test_preempted_task_is_requeued_and_resumes_from_its_checkpoint(tmp_path):
    suite = write_suite(tmp_path, 400)
    executor, states = _executor_and_states(suite, tmp_path / "a")
    def preempt(state):  # what SLURM does before preempting a job: the signal submitit listens for, to the task
        os.kill(rundir.read_json(state.run_dir / "status.json")["pid"], signal.SIGUSR2)

    on_update, done = _when_checkpointed(states, preempt)
    executor.execute(states, on_update)
    assert done, "the run finished before it could be preempted"
    first = done[0]
    assert [s.status for s in states] == ["completed", "completed"]
    status = rundir.read_json(first.run_dir / "status.json")
    assert status["resumed_from"] >= 20  # the requeued task resumed, it did not start over
    CliRunner().invoke(app, ["run", str(suite), "--only", first.run.arm, "--device", "cpu", "--workers", "1",
                             "--results-root", str(tmp_path / "b")])
    assert stats(tmp_path / "a", first.run.run_id) == stats(tmp_path / "b", first.run.run_id)


def test_killed_task_fails_its_run_and_the_next_run_resumes_it(tmp_path):
    suite = write_suite(tmp_path, 400)
    executor, states = _executor_and_states(suite, tmp_path / "a")

    def kill(state):
        os.kill(rundir.read_json(state.run_dir / "status.json")["pid"], signal.SIGKILL)

    on_update, done = _when_checkpointed(states, kill)
    executor.execute(states, on_update)
    assert done, "the run finished before it could be killed"
    first = done[0]
    assert first.status == "failed" and "SLURM task" in first.error
    assert [s.status for s in states][1] == "completed"  # one failing array task does not stop the others
    result = CliRunner().invoke(app, ["run", str(suite), "--executor", "slurm", "--slurm-cluster", "local",
                                      "--device", "cpu", "--results-root", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    status = rundir.read_json(first.run_dir / "status.json")
    assert status["status"] == "completed" and status["resumed_from"] >= 20
    CliRunner().invoke(app, ["run", str(suite), "--only", first.run.arm, "--device", "cpu", "--workers", "1",
                             "--results-root", str(tmp_path / "b")])
    assert stats(tmp_path / "a", first.run.run_id) == stats(tmp_path / "b", first.run.run_id)


def test_slurm_option_errors_are_named(tmp_path):
    suite = write_suite(tmp_path, 4)
    result = CliRunner().invoke(app, ["run", str(suite), "--executor", "slrum", "--results-root", str(tmp_path)],
                                env={"COLUMNS": "200"})  # the executor registry names the closest and the rest
    assert result.exit_code == 2 and "unknown executor 'slrum' (did you mean 'slurm'?)" in result.output
    assert "local, ray, slurm" in result.output
    result = CliRunner().invoke(app, ["run", str(suite), "--executor", "slurm", "--gpus-per-task", "0.5",
                                      "--results-root", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "whole numbers" in result.output
