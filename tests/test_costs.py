"""What a command will cost: plan's evaluation estimate, evaluation progress, the Inception-on-CPU warning."""

import json
import textwrap
import threading
import time

import pytest
import torch
from typer.testing import CliRunner

from ganbench import rundir
from ganbench.cli import app
from ganbench.execution import costs
from ganbench.process_cache import PROCESS
from ganbench.metrics import evaluator

from conftest import tiny

SECONDS_PER_IMAGE = 0.002

SUITE = """
    name: est
    dataset: fake
    preset: dcgan
    design: {type: arms, reference: a}
    arms: {a: {}, b: {hacks: [label_smoothing]}}
    seeds: 2
    steps: 4
    base: {batch_size: 8, log_every: 2, checkpoint_every: 0, sample_every: 0}
    evaluation: {every: 2, samples: 200, reference_samples: 100, metrics: METRICS}
"""


def slow_metric(sources, names, reference, *, samples, **kwargs):
    """A stand-in evaluation (of each source) that costs SECONDS_PER_IMAGE per image and measures nothing."""
    time.sleep(samples * SECONDS_PER_IMAGE * len(sources))
    return [[] for _ in sources]


def test_plan_estimate_includes_evaluations(tmp_path, monkeypatch):
    from ganbench.execution.sweep import Selection, plan_rows
    from ganbench.study.suite import load_suite

    monkeypatch.setattr(evaluator, "evaluate_many", slow_metric)
    PROCESS.clear("evaluation_timing")
    rows = {}
    for metrics in ("fid_fmnist", "none"):
        path = tmp_path / f"{metrics}.yaml"
        path.write_text(textwrap.dedent(SUITE).replace("METRICS", metrics))
        suite = load_suite(path, tmp_path / "results")
        rows[metrics] = plan_rows(suite, Selection(), True, "cpu")
        total = costs.plan_total(suite, rows[metrics], ["cpu"], workers=1)
        assert total["total_s"] == pytest.approx(total["train_s"] + total["eval_s"] + total["startup_s"]
                                                 + total["one_time_s"])
    # 4 steps, evaluations at 2 and 4, 3 draws at the last: 4 evaluator passes of 200 images each.
    assert costs.evaluations_per_run(suite.runs[0].config.replace(metrics="fid_fmnist")) == 4
    expected = 4 * 200 * SECONDS_PER_IMAGE
    for row in rows["fid_fmnist"]:
        assert row["eval_s"] == pytest.approx(expected, rel=0.25)
    assert all(row["eval_s"] == 0 for row in rows["none"])


def test_status_reports_the_evaluation_phase(tmp_path, monkeypatch):
    release, generated = threading.Event(), threading.Event()

    def blocking_metric(sources, names, reference, *, samples, **kwargs):
        sources[0](torch.zeros(50, sources[0].z_size))  # 50 images generated: progress the run can report
        generated.set()
        assert release.wait(60), "the test never released the metric"
        return [[]]

    monkeypatch.setattr(evaluator, "evaluate_many", blocking_metric)
    cfg = tiny(steps=4, metrics="fid_fmnist", eval_every=0, eval_samples=200, eval_draws=1)
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(status=__import__("ganbench.training.loop", fromlist=[
        "train"]).train(cfg, tmp_path / "run")))
    thread.start()
    try:
        assert generated.wait(60)
        status = json.loads((tmp_path / "run" / "status.json").read_text())
        phase = status["phase"]
        assert status["status"] == "running" and phase["name"] == "evaluating" and phase["step"] == 4
        assert phase["samples_done"] == 50 and phase["samples_total"] == 200 and phase["eta_s"] >= 0
        from ganbench.cli.tables import describe_phase

        assert "evaluating (fid_fmnist) at step 4: 50/200 images, ETA" in describe_phase(phase)
    finally:
        release.set()
        thread.join(60)
    final = rundir.read_json(tmp_path / "run" / "status.json")
    assert final["status"] == "completed" and "phase" not in final


@pytest.mark.integration
def test_inception_on_cpu_is_announced_before_training(tmp_path, monkeypatch, imported_inception):
    from conftest import write_cifar_fixture

    monkeypatch.setenv("GANBENCH_INCEPTION_WEIGHTS", imported_inception)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = write_cifar_fixture(tmp_path / "data", per_batch=8)
    PROCESS.clear("evaluation_timing")
    result = CliRunner().invoke(app, [
        "train", "--dataset", "cifar10", "--data-root", str(root), "--steps", "2", "--device", "cpu",
        "--set", "arch=radford", "--set", "image_size=32", "--set", "channels=3", "--set", "batch_size=8",
        "--set", "eval_samples=16", "--set", "eval_draws=1", "--out", str(tmp_path / "run")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "warning: Inception metrics (fid, kid) on the CPU run at about" in output
    assert "images/s here: 1 evaluation(s) of 16 images ≈" in output and "--set metrics=none" in output
    assert output.index("warning: Inception") < output.index("completed")
    # The metrics asked for are the metrics computed: the warning changes nothing.
    rows = rundir.read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert {r["metric"] for r in rows} >= {"fid", "kid"}


def test_no_warning_for_cheap_metrics():
    assert costs.inception_warning(tiny(metrics="fid_fmnist"), "cpu") is None
    assert costs.inception_warning(tiny(metrics="fid"), "cuda") is None


def test_status_puts_the_plan_beside_the_measured_time(tmp_path):
    suite = tmp_path / "est.yaml"
    suite.write_text(textwrap.dedent(SUITE).replace("METRICS", "none").replace("seeds: 2", "seeds: 1"))
    runner = CliRunner()
    before = runner.invoke(app, ["status", str(suite), "--results-root", str(tmp_path / "r")], env={"COLUMNS": "200"})
    assert before.exit_code == 0 and "no estimate to compare with" in before.output
    result = runner.invoke(app, ["run", str(suite), "--workers", "1", "--device", "cpu",
                                 "--results-root", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    plan = rundir.read_json(tmp_path / "r" / "est" / "plan.json")
    assert set(plan["arms"]) == {"a", "b"} and all(arm["train_s"] > 0 for arm in plan["arms"].values())
    after = runner.invoke(app, ["status", str(suite), "--results-root", str(tmp_path / "r")], env={"COLUMNS": "200"})
    assert after.exit_code == 0 and "planned vs measured seconds per run" in after.output
    as_json = runner.invoke(app, ["status", str(suite), "--results-root", str(tmp_path / "r"), "--json"])
    compared = json.loads(as_json.stdout)["planned_vs_measured"]["a"]  # what the table shows, read by name
    assert compared["finished"] == 1 and compared["planned_s"] > 0 and compared["actual_s"] > 0


def test_the_disk_plan_prints_is_what_a_run_leaves(tmp_path):
    """`plan`'s disk figure against a real run: its checkpoint to within 2 %, the whole run directory
    under the estimate (grids are counted as raw RGB, PNG is smaller) and above half of it."""
    from ganbench.execution.costs import evaluations_per_run
    from ganbench.execution.disk import checkpoint_bytes, run_disk
    from ganbench.training.loop import train

    cfg = tiny(steps=6, data_limit=256, checkpoint_every=3, sample_every=3, metrics="fid_fmnist", eval_every=3,
               eval_samples=64, eval_reference_samples=64, eval_draws=1)
    train(cfg, tmp_path / "run")
    on_disk = (tmp_path / "run" / "checkpoint.pt").stat().st_size
    assert checkpoint_bytes(cfg) == pytest.approx(on_disk, rel=0.02)
    estimate = run_disk(cfg, evaluations_per_run(cfg))
    everything = sum(p.stat().st_size for p in (tmp_path / "run").rglob("*") if p.is_file())
    assert 0.5 * estimate["kept"] < everything <= estimate["kept"] * 1.05
    assert estimate["written"] > estimate["kept"]  # two checkpoint writes (steps 3 and 6)


def test_checkpoint_bytes_from_the_layer_plan_equal_a_real_checkpoint_for_every_structure():
    """`plan`'s checkpoint size is computed without torch (`architecture.layer_sizes`); against the real
    `torch.save` of each preset × hack structure's fresh trainer state (plus Adam's moments, which exist
    from the first step: the real-run test above checks those) it is within 0.1 %."""
    import io

    from ganbench.architecture import layer_sizes
    from ganbench.errors import ConfigError
    from ganbench.execution import disk
    from ganbench.hacks import HACKS, PRESETS, resolve
    from ganbench.training.protocol import STAT_NAMES  # the loop's accumulator (one float32 per statistic)
    from ganbench.training.single import GanTrainer

    checked = 0
    for preset in PRESETS:
        for hack in (None, *HACKS):
            try:
                cfg = resolve(preset, hacks=[hack] if hack else [], overrides={"device": "cpu"})[0]
            except ConfigError:
                continue  # a hack that does not combine with this preset
            images = torch.zeros(cfg.batch_size, cfg.channels, cfg.image_size, cfg.image_size, dtype=torch.uint8)
            trainer = GanTrainer(cfg, images, torch.device("cpu"))
            buffer = io.BytesIO()
            torch.save({"step": 0, "count": 0, "acc": torch.zeros(len(STAT_NAMES)), **trainer.state_dict()}, buffer)
            params = [size for layer in sum(layer_sizes(cfg), []) for size in layer.params]
            assert sorted(params) == sorted(p.numel() for net in (trainer.net_g, trainer.net_d) for p in net.parameters())
            moments = sum(2 * 4 * size + disk.ADAM_ENTRY_BYTES for size in params)
            real = buffer.getbuffer().nbytes + moments
            assert disk.checkpoint_bytes(cfg) == pytest.approx(real, rel=1e-3), (preset, hack)
            checked += 1
    assert checked > 100


def test_worker_startup_is_timed_once_in_the_background_and_a_failed_import_says_so(monkeypatch):
    """`run` and `plan` start the start-up measurement before their step timing; reading it later gives that
    one measurement (one process, its own exit time), and a worker stack that cannot import is an error."""
    import subprocess

    PROCESS.clear("worker_startup")
    started, popen = [], subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a[0]) or popen(*a, **k))
    monkeypatch.setattr(costs.sys, "executable", "/bin/true")  # an "import" that ends at once
    try:
        costs.start_timing_worker_startup()
        costs.start_timing_worker_startup()
        time.sleep(0.5)  # the measurement ended long before it is read: the wait is not counted
        seconds = costs.worker_startup_seconds()
        assert len(started) == 1 and started[0][0] == "/bin/true" and 0 < seconds < 0.4
        assert costs.worker_startup_seconds() == seconds
        PROCESS.clear("worker_startup")
        monkeypatch.setattr(costs.sys, "executable", "/bin/false")
        with pytest.raises(subprocess.CalledProcessError):
            costs.worker_startup_seconds()
    finally:
        PROCESS.clear("worker_startup")  # later tests measure the real stack
