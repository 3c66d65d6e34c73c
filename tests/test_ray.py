"""The Ray executor on a real local Ray cluster: same runs and losses as the local
executor, results gathered without a shared disk, killed workers retried and resumed."""

import os
import signal
import threading
import time

import pytest
import yaml
from typer.testing import CliRunner

from ganbench import rundir
from ganbench.cli import app
from ganbench.execution.sweep import run_states, run_suite
from ganbench.study.suite import load_suite

try:
    import ray
except ImportError:  # CI installs the extra; elsewhere the tests say why they do not run
    if os.environ.get("CI"):
        raise
    pytest.skip("ray is not installed (pip install 'ganbench[ray]')", allow_module_level=True)

from ganbench.execution.ray import RayExecutor  # noqa: E402

pytestmark = pytest.mark.integration  # real worker processes / long runs: `pytest -m integration`

BASE = {"batch_size": 8, "log_every": 10, "sample_every": 0, "checkpoint_every": 20, "metrics": "none",
        "threads": 1, "device": "cpu", "sample_grid": 4, "g_width": 8, "d_width": 8, "g_fc_hidden": 0,
        "d_fc_hidden": 0}  # small nets: kilobyte checkpoints, millisecond steps


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real Ray instance on this machine (loopback), shared by the tests of this module."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False,
             _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield
    ray.shutdown()


def write_suite(path, steps=40, arms=None, seeds=2, **base):
    suite = {"name": path.stem, "dataset": "fake", "preset": "vanilla", "design": "arms",
             "arms": arms or {"a": {}, "b": {"hacks": ["kernel_4"]}}, "seeds": seeds, "steps": steps,
             "base": {**BASE, **base}}
    path.write_text(yaml.safe_dump(suite))
    return path


def losses(run_dir):
    return [{k: v for k, v in row.items() if k != "step_time_s"} for row in rundir.read_jsonl(run_dir / "stats.jsonl")]


@pytest.mark.parametrize("mode", ["auto", "gather"])
def test_ray_executor_matches_local_executor(cluster, tmp_path, mode):
    path = write_suite(tmp_path / "small.yaml")
    local = run_suite(load_suite(path, tmp_path / "local"))
    on_ray = run_suite(load_suite(path, tmp_path / "ray"), executor=RayExecutor(results=mode, poll_s=0.2))
    assert [s.status for s in on_ray] == ["completed"] * 4
    assert [s.run.run_id for s in on_ray] == [s.run.run_id for s in local]
    for a, b in zip(local, on_ray):
        assert losses(a.run_dir) == losses(b.run_dir) and len(losses(b.run_dir)) == 4
        assert {"config.json", "status.json", "checkpoint.pt"} <= {p.name for p in b.run_dir.iterdir()}
    # `ganbench status` reads the same files for both executors.
    again = run_states(load_suite(path, tmp_path / "ray"), load_suite(path, tmp_path / "ray").runs)
    assert [(s.status, s.step) for s in again] == [("completed", 40)] * 4
    # A second sweep finds everything done and submits nothing.
    before = {s.run.run_id: (s.run_dir / "status.json").stat().st_mtime_ns for s in on_ray}
    run_suite(load_suite(path, tmp_path / "ray"), executor=RayExecutor(results=mode))
    assert before == {s.run.run_id: (s.run_dir / "status.json").stat().st_mtime_ns for s in on_ray}


# 'gather' (run files pulled through the driver) is the harder path and runs by default; on a local
# cluster 'auto' resolves to the shared filesystem the other Ray tests already use.
@pytest.mark.parametrize("mode", [pytest.param("auto", marks=pytest.mark.slow), "gather"])
def test_killed_ray_worker_is_retried_and_resumes_from_its_checkpoint(cluster, tmp_path, mode):
    path = write_suite(tmp_path / "long.yaml", steps=800, arms={"a": {}}, seeds=1, checkpoint_every=50, log_every=50)
    suite = load_suite(path, tmp_path / "ray")
    (run,) = suite.runs
    run_dir = suite.run_dirs()[run.run_id]
    sweep = threading.Thread(target=run_suite, args=(suite,), kwargs={"executor": RayExecutor(results=mode, poll_s=0.2)})
    sweep.start()
    deadline, killed = time.time() + 120, None
    while time.time() < deadline and killed is None:
        time.sleep(0.1)
        status = rundir.read_json(run_dir / "status.json") if (run_dir / "status.json").exists() else {}
        if (run_dir / "checkpoint.pt").exists() and status.get("status") == "running":
            killed = status["pid"]
            os.kill(killed, signal.SIGKILL)  # the Ray worker process training this run
    sweep.join(timeout=300)
    assert killed is not None, "the run finished before a checkpoint could be interrupted"
    final = rundir.read_json(run_dir / "status.json")
    assert final["status"] == "completed" and final["pid"] != killed
    assert final["resumed_from"] >= 50  # retried by Ray, resumed from the checkpoint
    # Nothing lost: the same rows as an uninterrupted run of the same config.
    uninterrupted = run_suite(load_suite(path, tmp_path / "local"))
    assert losses(run_dir) == losses(uninterrupted[0].run_dir) and len(losses(run_dir)) == 16


def test_failing_and_diverging_runs_are_recorded_not_retried(cluster, tmp_path):
    arms = {"ok": {}, "boom": {"set": {"lr_d": 1e30, "lr_g": 1e30}}, "nodata": {"set": {"dataset": "image-folder"}}}
    path = write_suite(tmp_path / "bad.yaml", steps=30, arms=arms)
    states = run_suite(load_suite(path, tmp_path / "ray"), executor=RayExecutor(max_retries=2, poll_s=0.2))
    by_arm = {}
    for state in states:
        by_arm.setdefault(state.run.arm, set()).add(state.status)
    assert by_arm == {"ok": {"completed"}, "boom": {"diverged"}, "nodata": {"failed"}}
    failed = [s for s in states if s.run.arm == "nodata"]
    assert all("image-folder" in s.error and "--data-root" in s.error for s in failed)
    assert all(rundir.read_json(s.run_dir / "status.json").get("resumed_from") is None for s in failed)


def test_placement_asks_ray_for_fractional_gpus():
    resources, device = RayExecutor(gpus_per_run=0.25, cpus_per_run=2).placement()
    assert resources["num_gpus"] == 0.25 and resources["num_cpus"] == 2 and device == "cuda"
    assert resources["retry_exceptions"] is False and resources["max_retries"] == 3
    assert RayExecutor().placement()[1] == "cpu"


def test_cli_without_ray_explains_how_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    path = write_suite(tmp_path / "s.yaml")
    result = CliRunner().invoke(app, ["run", str(path), "--executor", "ray", "--results-root", str(tmp_path / "r")])
    assert result.exit_code == 2 and "pip install 'ganbench[ray]'" in result.output
    assert not (tmp_path / "r" / "s" / "runs").exists()  # nothing trained


@pytest.mark.parametrize("mode", ["auto", "gather"])
def test_ray_trains_a_fused_group_as_one_task(cluster, tmp_path, mode):
    path = write_suite(tmp_path / "fused.yaml", arms={"a": {}, "b": {"set": {"beta1": 0.8}}}, seeds=2)
    local = run_suite(load_suite(path, tmp_path / "local"), workers=1, max_fused=4)
    on_ray = run_suite(load_suite(path, tmp_path / "ray"),
                       executor=RayExecutor(results=mode, poll_s=0.2, max_fused=4))
    assert [s.status for s in on_ray] == ["completed"] * 4
    for a, b in zip(local, on_ray):
        assert rundir.read_json(b.run_dir / "status.json")["fused_group"] == 4
        assert losses(a.run_dir) == losses(b.run_dir)  # the same group, the same arithmetic
