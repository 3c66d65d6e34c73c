"""A sweep on any machine: bf16 refused where the CPU emulates it, the step costs timed per network
structure and saved as they are made, the planned total and an ETA before the first run starts,
and a run's step seen between its log rows."""

from __future__ import annotations

import textwrap
from types import SimpleNamespace

import pytest
from conftest import tiny
from typer.testing import CliRunner

from ganbench import devices, rundir
from ganbench.cli import app
from ganbench.cli.progress import Eta, PlainProgress
from ganbench.errors import ConfigError
from ganbench.execution import costs, sweep
from ganbench.study.suite import load_suite

SUITE = """
    name: prog
    dataset: fake
    preset: dcgan
    hacks: [batch_norm, label_smoothing]
    design: leave_one_out
    seeds: 1
    steps: 6
    base: {batch_size: 8, log_every: 3, sample_every: 0, checkpoint_every: 3, threads: 1, precision: PRECISION}
    evaluation: {every: 0, samples: 32, reference_samples: 0, metrics: none}
"""


def suite_file(tmp_path, precision="fp32"):
    path = tmp_path / "prog.yaml"
    path.write_text(textwrap.dedent(SUITE).replace("PRECISION", precision))
    return path


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


# 1. bf16 where the CPU has no bf16 of its own.

def test_native_bf16_is_asked_of_torchs_own_cpu_queries(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert not devices.cpu_has_native_bf16()
    assert "AVX512-BF16" in devices.slow_precision_problem({"bf16"}, ["cpu"])
    assert devices.slow_precision_problem({"fp32"}, ["cpu"]) is None  # fp32 is never slow for this reason
    assert devices.slow_precision_problem({"bf16"}, ["cuda:0"]) is None  # a GPU has its own bf16
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert devices.cpu_has_native_bf16() and devices.slow_precision_problem({"bf16"}, ["cpu"]) is None


def test_bf16_on_a_cpu_without_it_is_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    path, results = suite_file(tmp_path, "bf16"), tmp_path / "results"
    refused = invoke("run", path, "--device", "cpu", "--results-root", results)
    assert refused.exit_code == 2
    assert "bf16" in refused.output and "--allow-slow-precision" in refused.output and "precision=fp32" in refused.output
    assert not results.exists()  # nothing timed, nothing written
    train = invoke("train", "--set", "dataset=fake", "--set", "precision=bf16", "--steps", "2", "--device", "cpu",
                   "--out", tmp_path / "one")
    assert train.exit_code == 2 and "--allow-slow-precision" in train.output and not (tmp_path / "one").exists()
    plan = invoke("plan", path, "--device", "cpu", "--no-estimate", "--results-root", results)
    assert plan.exit_code == 0 and "warning:" in plan.output and "AVX512-BF16" in plan.output  # plan only warns
    suite = load_suite(path, results)
    with pytest.raises(ConfigError, match="allow-slow-precision"):  # the Python API refuses it too
        sweep.run_suite(suite, workers=1)
    sweep.refuse_slow_precision(suite.runs, ["cpu"], allow=True)  # the way out: no error
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    sweep.refuse_slow_precision(suite.runs, ["cpu"])  # a CPU with AMX trains bf16 as asked


# 2. The step costs: per structure, saved as they are made, reused.

def test_each_structure_is_timed_once_and_saved_as_soon_as_it_is_timed(tmp_path, monkeypatch):
    suite = load_suite(suite_file(tmp_path), tmp_path / "results")
    # all and -label_smoothing differ only in numbers: one structure; -batch_norm is another.
    timed, seen = [], []

    def fake_time(runs, device):
        timed.append(runs[0].arm)
        if len(timed) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the timing phase
        return 0.25

    monkeypatch.setattr(costs, "estimate_step_seconds", fake_time)
    with pytest.raises(KeyboardInterrupt):
        costs.record_step_costs(suite, suite.runs, "cpu", lambda done, total, arm: seen.append((done, total)))
    assert seen == [(0, 2), (1, 2)]
    kept = suite.dir.read_compute()
    assert set(kept["arms"]) == {"all", "-label_smoothing"} and len(kept["structures"]) == 1  # the first survived
    timed.clear()
    monkeypatch.setattr(costs, "estimate_step_seconds", lambda runs, device: timed.append(runs[0].arm) or 0.5)
    costs.record_step_costs(suite, suite.runs, "cpu")
    assert timed == ["-batch_norm"]  # the resumed start times only what was not timed
    assert {arm: e["step_seconds"] for arm, e in suite.dir.read_compute()["arms"].items()} == \
        {"all": 0.25, "-label_smoothing": 0.25, "-batch_norm": 0.5}


@pytest.mark.integration
def test_run_prints_the_timing_and_its_planned_total_before_the_first_run(tmp_path):
    result = invoke("run", suite_file(tmp_path), "--device", "cpu", "--workers", "1",
                    "--results-root", tmp_path / "results")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    timing = next(i for i, line in enumerate(lines) if line.startswith("timing one step of each of 2 network"))
    planned = next(i for i, line in enumerate(lines) if line.startswith("planned: ≈ "))
    first_run = next(i for i, line in enumerate(lines) if line.startswith("started "))
    assert timing < planned < first_run, result.output
    assert "on 1 worker(s) on cpu" in lines[planned] and "done ≈ " in lines[planned]
    compute = rundir.read_json(tmp_path / "results" / "prog" / "compute.json")
    assert len(compute["structures"]) == 2 and "median of 5 blocks" in compute["method"]


# 3. The ETA: the plan's at first, then the pace at which the plan is worked off.

def state(run_id, steps, step=0, status="running"):
    return SimpleNamespace(run=SimpleNamespace(run_id=run_id, config=SimpleNamespace(steps=steps), arm="a", seed=0),
                           step=step, status=status, error=None)


def test_the_eta_follows_the_plan_then_the_measured_pace_of_the_costly_and_cheap_runs():
    now = [0.0]
    cheap, costly = state("cheap", 100), state("costly", 100)
    eta = Eta([cheap, costly], clock=lambda: now[0])
    assert eta.seconds_left([cheap, costly]) == (None, False)  # no plan, nothing done: nothing to say yet
    plan = SimpleNamespace(cost={"total_s": 500.0, "parallel": 2.0}, run_seconds={"cheap": 100.0, "costly": 900.0}, workers=2)
    eta.planned(plan)
    now[0] = 10.0
    assert eta.seconds_left([cheap, costly]) == (500.0, True)  # before 5 % of the work: the plan (1 000 s on 2 workers)
    # 50 s later the cheap run is done and the costly one is a tenth in: 190 planned seconds done in 50 s,
    # running at 0.53× the plan's pace per worker, so the 810 planned seconds left take 810 × 60 / 190.
    now[0] = 60.0
    cheap.step, cheap.status, costly.step = 100, "completed", 10
    left, by_plan = eta.seconds_left([cheap, costly])
    assert not by_plan and left == pytest.approx(810 * 60 / 190)
    # A plain run-steps rate would say (200 - 110) / (110 / 60) = 49 s: the costly run's steps are 9× dearer.
    assert left > 4 * 49


def test_every_summary_line_carries_an_eta(tmp_path):
    from rich.console import Console

    now = [0.0]
    out = tmp_path / "log.txt"
    with open(out, "w") as fh:
        console = Console(file=fh, width=200)
        runs = [state("r1", 10, status="pending"), state("r2", 10, status="pending")]
        progress = PlainProgress(console, runs, every_s=60, clock=lambda: now[0])
        progress.planned(SimpleNamespace(cost={"total_s": 120.0, "train_s": 100.0, "eval_s": 10.0, "startup_s": 5.0,
                                               "one_time_s": 5.0, "evaluations": 2, "parallel": 2.0},
                                         run_seconds={"r1": 100.0, "r2": 100.0}, workers=2, device="cpu"))
        now[0] = 61.0
        runs[0].status, runs[0].step = "running", 5
        progress.update(runs)
    text = out.read_text()
    assert text.startswith("planned: ≈ 2m00s on 2 worker(s) on cpu (training 1m40s + 2 evaluations 0m10s")
    assert "progress: 0/2 runs done" in text and "ETA " in text.splitlines()[-1]


# 3b. A run's step between log rows.

def test_a_run_says_the_step_it_reached_between_its_log_rows(tmp_path, monkeypatch):
    from ganbench.training import loop

    monkeypatch.setattr(loop, "HEARTBEAT_S", 0.0)
    loop.train(tiny(steps=6, log_every=4), tmp_path / "run")
    status = rundir.read_json(tmp_path / "run" / "status.json")
    assert status["step"] == 6 and status["at_step"] == 5  # rows at 4 and 6; heartbeats at 1, 2, 3 and 5
    # While running, the reached step is the later of the last row and the heartbeat.
    run = rundir.RunDir(tmp_path / "run")
    assert run.reached_step({"status": "running", "at_step": 9}) == 9
    assert run.reached_step({"status": "completed", "at_step": 9}) == 6  # a finished run: its rows


# 6. A torchvision built for another torch.

def test_a_torchvision_that_does_not_fit_torch_is_said_in_two_lines(monkeypatch, capsys):
    import ganbench.cli as cli
    from ganbench.installation import matching_torchvision, pair_problem

    assert matching_torchvision("2.14.1+cu130") == "0.29" and matching_torchvision("2.9.1") == "0.24"
    assert pair_problem(RuntimeError("something else broke")) is None

    def broken_import():
        raise RuntimeError("operator torchvision::nms does not exist\n" + "  a traceback line\n" * 40)

    monkeypatch.setattr(cli, "app", broken_import)
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 2 and "does not fit torch" in said[0] and "torchvision==0." in " ".join(said)
    monkeypatch.setattr(cli, "app", lambda: (_ for _ in ()).throw(RuntimeError("an unrelated bug")))
    with pytest.raises(RuntimeError, match="an unrelated bug"):  # any other error is not hidden
        cli.main()
