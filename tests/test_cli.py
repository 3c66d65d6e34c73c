import json
import os
from pathlib import Path

import pytest

from typer.testing import CliRunner

from ganbench.cli import app
from ganbench import rundir
from ganbench.hacks import HACKS

from conftest import cli_process

runner = CliRunner()


def test_hacks_lists_the_registry():
    result = runner.invoke(app, ["hacks"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    for name in HACKS:
        assert name in result.output
    assert "preset dcgan" in result.output


def test_knobs_lists_every_knob():
    result = runner.invoke(app, ["knobs"], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "label_flip_p" in result.output


def test_misspelt_knob_exits_nonzero_with_suggestion(tmp_path):
    result = runner.invoke(app, ["train", "--set", "batch_sise=3", "--out", str(tmp_path / "run")],
                           env={"COLUMNS": "250"})
    assert result.exit_code == 2
    assert "batch_size" in result.output
    assert not (tmp_path / "run").exists()


def test_unknown_hack_and_bad_value_exit_nonzero():
    bad_hack = runner.invoke(app, ["train", "--hack", "label_smooting"], env={"COLUMNS": "250"})
    assert bad_hack.exit_code == 2 and "label_smoothing" in bad_hack.output
    bad_value = runner.invoke(app, ["train", "--set", "latent_dist=cauchy"], env={"COLUMNS": "250"})
    assert bad_value.exit_code == 2 and "uniform" in bad_value.output


@pytest.mark.integration
def test_train_on_fake_data(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--preset", "ganhacks", "--dataset", "fake", "--steps", "3", "--device",
                                 "cpu", "--set", "batch_size=8", "--set", "log_every=1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "status.json").read_text())["status"] == "completed"
    assert len((out / "stats.jsonl").read_text().splitlines()) == 3


def test_import_and_help_load_no_torch():
    import subprocess
    import sys

    code = ("import sys, ganbench, ganbench.cli, ganbench.analysis.report, ganbench.analysis.compare, "
            "ganbench.execution.sweep\nassert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)")
    subprocess.run([sys.executable, "-c", code], check=True)
    for args in (["-m", "ganbench", "--help"], ["-m", "ganbench.cli", "data", "list"]):
        done = subprocess.run([sys.executable, *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert "fashion-mnist" in done.stdout


def test_train_help_names_every_dataset():
    from ganbench.data.datasets import DATASETS

    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "300"})
    assert all(name in result.output for name in DATASETS), result.output


def test_unknown_dataset_is_refused_before_anything_is_written(tmp_path):
    result = CliRunner().invoke(app, ["train", "--dataset", "fashion-mnst", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "did you mean 'fashion-mnist'" in result.output
    assert "steps" not in result.output and not (tmp_path / "run").exists()


def test_bad_workers_and_unwritable_results_root_fail_cleanly(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ndataset: fake\npreset: dcgan\ndesign: {type: arms}\narms: {a: {}}\nsteps: 2\n"
                     "evaluation: {metrics: none}\n")
    result = CliRunner().invoke(app, ["run", str(suite), "--workers", "-1", "--device", "cpu"])
    assert result.exit_code == 2 and "--workers" in result.output and "greater than or equal to 1" in result.output
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the results root should be")
    result = CliRunner().invoke(app, ["run", str(suite), "--device", "cpu", "--results-root", str(blocker)])
    assert result.exit_code == 2 and "cannot create" in result.output and "Traceback" not in result.output


def test_train_refuses_another_config_in_out(tmp_path):
    args = ["train", "--dataset", "fake", "--steps", "2", "--device", "cpu", "--out", str(tmp_path),
            "--set", "metrics=none", "--set", "batch_size=8", "--set", "log_every=1"]
    assert CliRunner().invoke(app, args).exit_code == 0
    result = CliRunner().invoke(app, [*args, "--set", "lr_d=0.001"], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "lr_d: 0.0002 here, 0.001 asked" in result.output
    assert CliRunner().invoke(app, [*args, "--set", "lr_d=0.001", "--fresh"]).exit_code == 0


def test_hacks_fit_80_columns_with_every_name_unbroken():
    result = runner.invoke(app, ["hacks"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    words = {word for line in lines for word in line.split()}
    assert set(HACKS) <= words  # each name whole on one line


def test_hacks_name_shows_summary_and_source_and_suggests_on_typo():
    result = runner.invoke(app, ["hacks", "spectral_norm"], env={"COLUMNS": "80"})
    assert result.exit_code == 0 and "Miyato" in result.output and "spectral_norm=True" in result.output
    assert "modern" in result.output  # the presets it belongs to
    result = runner.invoke(app, ["hacks", "spectral_nrom"])
    assert result.exit_code == 2 and "did you mean 'spectral_norm'" in result.output


def test_json_output_for_scripts(tmp_path):
    hacks = json.loads(runner.invoke(app, ["hacks", "--json"]).stdout)
    assert {h["name"] for h in hacks["hacks"]} == set(HACKS) and "modern" in hacks["presets"]
    assert json.loads(runner.invoke(app, ["hacks", "g_ema", "--json"]).stdout)["sets"] == {"g_ema": 0.999}
    knobs = json.loads(runner.invoke(app, ["knobs", "--json"]).stdout)
    assert {"knob": "spectral_norm", "default": False, "allowed": "bool", "category": "structure"}.items() <= \
        next(k for k in knobs if k["knob"] == "spectral_norm").items()
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ndataset: fake\npreset: dcgan\nhacks: [batch_norm, leaky_relu]\n"
                     "design: full_factorial\nseeds: 1\nsteps: 2\n")
    root = ["--results-root", str(tmp_path / "results")]
    result = runner.invoke(app, ["plan", str(suite), "--no-estimate", "--json", *root])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert len(plan["runs"]) == 4 and plan["cost"] is None and {"arm", "run_id", "status"} <= set(plan["runs"][0])
    status = json.loads(runner.invoke(app, ["status", str(suite), "--json", *root]).stdout)
    assert status["counts"] == {"pending": 4} and len(status["runs"]) == 4


def test_plan_shows_long_arm_names_in_full_and_only_accepts_their_numbers(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ndataset: fake\nhacks: [strided_conv, leaky_relu, batch_norm, gaussian_init]\n"
                     "design: full_factorial\nseeds: 1\nsteps: 2\n")
    root = ["--results-root", str(tmp_path / "results")]
    longest = "strided_conv+leaky_relu+batch_norm+gaussian_init"
    result = runner.invoke(app, ["plan", str(suite), "--no-estimate", *root], env={"COLUMNS": "80"})
    assert result.exit_code == 0 and "…" not in result.output
    assert max(len(line) for line in result.output.splitlines() if "#16 =" not in line) <= 80
    assert f"#16 = {longest}" in result.output  # printed whole below the table
    plan = json.loads(runner.invoke(app, ["plan", str(suite), "--no-estimate", "--json", *root]).stdout)
    assert all(r["run_id"] in result.output for r in plan["runs"])  # run ids are never cut
    result = runner.invoke(app, ["plan", str(suite), "--no-estimate", "--only", "#16", "--json", *root])
    assert [r["arm"] for r in json.loads(result.stdout)["runs"]] == [longest]


@pytest.mark.integration
def test_dataset_cifar10_alone_trains_the_32px_colour_net(tmp_path):
    from conftest import write_cifar_fixture

    root = write_cifar_fixture(tmp_path / "data", per_batch=30)  # 150 images: one default batch of 128
    result = runner.invoke(app, ["train", "--dataset", "cifar10", "--data-root", str(root), "--steps", "2", "--device",
                                 "cpu", "--set", "metrics=none", "--out", str(tmp_path / "run")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "cifar10: the Radford 32-px colour net (arch=radford image_size=32 channels=3)" in result.output
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert (cfg["arch"], cfg["image_size"], cfg["channels"]) == ("radford", 32, 3)
    from PIL import Image

    with Image.open(sorted((tmp_path / "run" / "samples").iterdir())[-1]) as grid:  # closed: no ResourceWarning later
        assert grid.mode == "RGB" and grid.size[0] == 8 * (32 + 2) + 2  # 8×8 images of 32 px, make_grid's 2 px padding
    # A knob the user gives wins over the dataset's default; the others still come from it.
    result = runner.invoke(app, ["train", "--dataset", "cifar10", "--data-root", str(root), "--steps", "1", "--device",
                                 "cpu", "--set", "metrics=none", "--set", "image_size=64", "--out", str(tmp_path / "r64")])
    assert result.exit_code == 0, result.output
    cfg = json.loads((tmp_path / "r64" / "config.json").read_text())["config"]
    assert (cfg["arch"], cfg["image_size"], cfg["channels"]) == ("radford", 64, 3)


@pytest.mark.integration
def test_run_and_plan_take_set_and_record_it(tmp_path):
    (tmp_path / "s.yaml").write_text("name: s\ndataset: fake\npreset: dcgan\narms: {a: {}}\nreference: a\nseeds: 1\n"
                                     "steps: 4\nbase: {batch_size: 8, log_every: 2, sample_every: 0, "
                                     "checkpoint_every: 0}\nevaluation: {metrics: none}\n")
    plan = cli_process("plan", "s.yaml", "--no-estimate", "--set", "steps=2", cwd=tmp_path)
    assert plan.returncode == 0 and "--set over every arm: steps=2" in plan.stdout and "0/2" in plan.stdout
    bad = cli_process("run", "s.yaml", "--set", "stpes=2", cwd=tmp_path)
    assert bad.returncode == 2 and "did you mean 'steps'" in bad.stderr
    run = cli_process("run", "s.yaml", "--device", "cpu", "--workers", "1", "--set", "steps=2", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    # stdout is a pipe here, as a log file: plain lines, one when the run starts and one when it ends
    assert "started a seed 0 (" in run.stdout and "completed a seed 0 (" in run.stdout and "at step 2/2" in run.stdout
    manifest = rundir.read_json(tmp_path / "results" / "s" / "suite.json")
    assert manifest["overrides"] == {"steps": 2}
    (status,) = [rundir.read_json(p) for p in (tmp_path / "results" / "s" / "runs").glob("*/status.json")]
    assert status["status"] == "completed" and status["step"] == 2


def test_version(tmp_path):
    import ganbench

    result = cli_process("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith(f"ganbench {ganbench.__version__}")
    assert ganbench.__version__ != "0+unknown"


def test_the_log_file_progress_summarises_runs_rate_and_eta():
    from types import SimpleNamespace

    from rich.console import Console

    from ganbench.cli.progress import PlainProgress

    def state(rid, status, step):
        return SimpleNamespace(run=SimpleNamespace(run_id=rid, arm="a", seed=int(rid[-1]),
                                                   config=SimpleNamespace(steps=100)), status=status, step=step,
                               error=None)

    todo = [state("r0", "pending", 0), state("r1", "pending", 0)]
    now = [0.0]
    progress = PlainProgress(Console(file=open(os.devnull, "w")), todo, every_s=0, clock=lambda: now[0])
    now[0] = 10.0
    line = progress.summary([state("r0", "completed", 100), state("r1", "running", 50)])
    # no plan (a cluster executor): the run-steps rate, 150 in 10 s, leaves 50 for 3.3 s
    assert line.startswith("progress: 1/2 runs done, 0 failed, 1 running; 150/200 run-steps, 15.0 run-steps/s, "
                           "ETA 0m03s (≈ "), line


def test_compare_prints_for_people_and_for_scripts(monkeypatch):
    from typer.testing import CliRunner

    from ganbench.cli import app
    from ganbench.cli.tables import sig

    repo = Path(__file__).resolve().parents[1]
    if not (repo / "results" / "quick" / "suite.json").exists():
        pytest.skip("needs the committed quick study")
    monkeypatch.chdir(repo)
    runner = CliRunner()
    arms = runner.invoke(app, ["compare", "--suite", "suites/quick.yaml", "--", "-label_smoothing", "all"],
                         env={"COLUMNS": "200"})
    as_json = runner.invoke(app, ["compare", "--suite", "suites/quick.yaml", "--json", "--", "-label_smoothing", "all"])
    rows = {row["arm"]: row for row in json.loads(as_json.output)}
    assert set(rows) == {"all", "-label_smoothing"}
    reference = rows["all"]  # the table shows the JSON's numbers, rounded for people
    assert arms.exit_code == 0 and "(reference)" in arms.output
    assert f"{sig(reference['mean'])} ± {sig(reference['std'], 3)}" in arms.output
    runs = runner.invoke(app, ["compare", "results/quick/runs/d5a0d9247cf7", "results/quick/runs/92591174d270"],
                         env={"COLUMNS": "200"})
    assert runs.exit_code == 0
    assert not any(len(token) > 8 and token.replace(".", "").isdigit() for token in runs.output.split())


@pytest.mark.integration
def test_run_fresh_starts_over_and_keeps_the_earlier_files(tmp_path):
    (tmp_path / "f.yaml").write_text("name: f\ndataset: fake\npreset: dcgan\narms: {a: {}, b: {set: {beta1: 0.8}}}\n"
                                     "reference: a\nseeds: 1\nsteps: 2\nbase: {batch_size: 8, log_every: 1, "
                                     "sample_every: 0, checkpoint_every: 0}\nevaluation: {metrics: none}\n")
    first = cli_process("run", "f.yaml", "--device", "cpu", "--workers", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = cli_process("run", "f.yaml", "--device", "cpu", "--workers", "1", cwd=tmp_path)
    assert "2 already finished, 0 to train" in again.stdout
    runs = tmp_path / "results" / "f" / "runs"
    before = {p.name: (p / "stats.jsonl").read_text() for p in runs.iterdir()}
    fresh = cli_process("run", "f.yaml", "--device", "cpu", "--workers", "1", "--fresh", "--only", "b", cwd=tmp_path)
    assert fresh.returncode == 0 and "1 to train" in fresh.stdout, fresh.stdout + fresh.stderr
    (kept,) = [p for p in runs.iterdir() if (p / "replaced").exists()]
    (aside,) = list((kept / "replaced").iterdir())
    assert (aside / "stats.jsonl").read_text() == before[kept.name]  # nothing lost
    assert rundir.read_json(kept / "status.json")["status"] == "completed"
    assert (kept / "stats.jsonl").read_text().splitlines()[0].split('"step_time_s"')[0] == \
        before[kept.name].splitlines()[0].split('"step_time_s"')[0]  # the same numbers again


@pytest.mark.integration
def test_plan_of_a_big_suite_prints_each_alias_chain_once_and_counts_its_runs(tmp_path):
    from ganbench.execution.sweep import distinct_chains

    assert distinct_chains(["AB = CG = DH", "CG = AB = DH", "AC = BG", "I = ABCG = … (2047 words in all)"]) == \
        ["AB = CG = DH", "AC = BG", "I = ABCG = … (2047 words in all)"]
    repo = Path(__file__).resolve().parents[1]
    plan = cli_process("plan", str(repo / "suites" / "hacks.yaml"), "--no-estimate", "--results-root", "r", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "1472 runs (1472 pending); --runs lists each of them" in plan.stdout and len(plan.stdout.splitlines()) < 150
    assert plan.stdout.count("AB = CG = DH = EJ = FK = LR") == 1 and "\n    CG = " not in plan.stdout
    listed = cli_process("plan", str(repo / "suites" / "hacks.yaml"), "--no-estimate", "--runs", "--results-root", "r",
                      cwd=tmp_path)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) > 1472
    status = cli_process("status", str(repo / "suites" / "hacks.yaml"), "--results-root", "r", cwd=tmp_path)
    assert status.returncode == 0 and "one row per arm; --runs lists" in status.stdout
    assert "loo:all" in status.stdout and "16 pending" in status.stdout and len(status.stdout.splitlines()) < 250
