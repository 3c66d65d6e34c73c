import json

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
    assert result.exit_code == 2 and "--workers must be >= 1" in result.output
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
