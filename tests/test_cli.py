import json

import pytest

from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.hacks import HACKS

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

    grid = Image.open(sorted((tmp_path / "run" / "samples").iterdir())[-1])
    assert grid.mode == "RGB" and grid.size[0] == 8 * (32 + 2) + 2  # 8×8 images of 32 px, make_grid's 2 px padding
    # A knob the user gives wins over the dataset's default; the others still come from it.
    result = runner.invoke(app, ["train", "--dataset", "cifar10", "--data-root", str(root), "--steps", "1", "--device",
                                 "cpu", "--set", "metrics=none", "--set", "image_size=64", "--out", str(tmp_path / "r64")])
    assert result.exit_code == 0, result.output
    cfg = json.loads((tmp_path / "r64" / "config.json").read_text())["config"]
    assert (cfg["arch"], cfg["image_size"], cfg["channels"]) == ("radford", 64, 3)
