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
