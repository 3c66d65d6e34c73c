"""TensorBoard export: the events read back (TensorBoard's own reader) equal the JSONL files."""

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from ganbench import rundir
from ganbench.analysis.tensorboard import export, metric_series
from ganbench.cli import app

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

SUITE = """
name: tb
dataset: fashion-mnist
preset: dcgan
hacks: [label_smoothing, soft_fake_labels]
design: add_one_in
seeds: 1
steps: 4
base: {batch_size: 16, log_every: 1, sample_every: 2, checkpoint_every: 2, data_limit: 256}
evaluation: {every: 2, samples: 200, reference_samples: 200, metrics: fid_fmnist}
"""


def read_events(directory):
    acc = EventAccumulator(str(directory), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.mark.integration
def test_sweep_events_equal_the_jsonl_and_carry_hparams(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `run --tensorboard` writes to ./tensorboard/<suite>, as `ganbench tensorboard`
    suite = tmp_path / "tb.yaml"
    suite.write_text(SUITE)
    root = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(suite), "--device", "cpu", "--workers", "1", "--tensorboard",
                                      "--results-root", str(root)])
    assert result.exit_code == 0, result.output
    assert "TensorBoard: 3 run(s) written" in " ".join(result.output.split())
    manifest = rundir.read_json(root / "tb" / "suite.json")
    logdir = tmp_path / "tensorboard" / "tb"
    assert not (root / "tb" / "tensorboard").exists()  # nothing in the results but the run files
    for run in manifest["runs"]:
        run_dir = root / "tb" / "runs" / run["run_id"]
        acc = read_events(logdir / run["arm"] / f"seed0-{run['run_id']}")
        stats = rundir.read_jsonl(run_dir / "stats.jsonl")
        for key in ("loss_d", "loss_g", "d_real", "grad_norm_g", "lr_d"):
            events = acc.Scalars(f"train/{key}")
            assert [e.step for e in events] == [r["step"] for r in stats] == [1, 2, 3, 4]
            assert [e.value for e in events] == [np.float32(r[key]) for r in stats]  # TensorBoard stores float32
        rows = rundir.read_jsonl(run_dir / "metrics.jsonl")
        fid = [r["value"] for r in rows if r["metric"] == "fid_fmnist" and r["step"] == 4]
        assert len(fid) == 3  # eval_draws: the event is their mean, their SD beside it
        events = acc.Scalars("metrics/fid_fmnist")
        assert [e.step for e in events] == [2, 4]
        assert events[-1].value == pytest.approx(sum(fid) / 3, rel=1e-6)
        assert acc.Scalars("metrics_draw_sd/fid_fmnist")[-1].value == pytest.approx(np.std(fid, ddof=1), rel=1e-5)
        assert [e.step for e in acc.Images("samples")] == [2, 4]
        # hparams: the arm, the seed and one boolean per hack of the suite, paired with the final metrics.
        content = acc.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        hparams = {k: v for k, v in start.session_start_info.hparams.items()}
        assert hparams["arm"].string_value == run["arm"]
        assert hparams["hack/label_smoothing"].bool_value == ("label_smoothing" in run["hacks"])
        assert hparams["hack/soft_fake_labels"].bool_value == ("soft_fake_labels" in run["hacks"])
        assert acc.Scalars("final/fid_fmnist")[0].value == pytest.approx(sum(fid) / 3, rel=1e-6)
    # Unchanged runs are skipped; a changed one is rewritten, not appended to.
    assert export(root / "tb")["written"] == 0
    first = root / "tb" / "runs" / manifest["runs"][0]["run_id"]
    rundir.append_jsonl(first / "stats.jsonl", {"step": 5, "loss_d": 0.5})
    assert export(root / "tb")["written"] == 1
    acc = read_events(logdir / manifest["runs"][0]["arm"] / f"seed0-{first.name}")
    assert [e.step for e in acc.Scalars("train/loss_d")] == [1, 2, 3, 4, 5]


def test_train_tensorboard_and_a_missing_target_is_named(tmp_path, monkeypatch):
    from ganbench.cli import results as cli_results
    from ganbench.analysis import tensorboard

    calls = []
    real_export = tensorboard.export
    monkeypatch.setattr(tensorboard, "export", lambda *a, **k: calls.append(a) or real_export(*a, **k))
    monkeypatch.setattr(cli_results, "TENSORBOARD_EVERY_S", 0.0)  # export at every progress call while training
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--dataset", "fake", "--steps", "2", "--device", "cpu", "--set",
                                      "metrics=none", "--set", "batch_size=8", "--set", "log_every=1",
                                      "--tensorboard", "--out", str(out)])
    assert result.exit_code == 0, result.output
    acc = read_events(out / "tensorboard" / "run")
    assert [e.step for e in acc.Scalars("train/loss_d")] == [1, 2]
    assert len(calls) >= 3  # during training (steps 1 and 2) and once at the end
    result = CliRunner().invoke(app, ["tensorboard", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "neither a run directory" in result.output


def test_metric_series_averages_draws_and_skips_unavailable_values():
    rows = [{"metric": "fid", "step": 2, "draw": 0, "value": 1.0},
            {"metric": "fid", "step": 4, "draw": 0, "value": 2.0}, {"metric": "fid", "step": 4, "draw": 1, "value": 4.0},
            {"metric": "kid", "step": 4, "draw": 0, "value": None}]
    series = metric_series(rows)
    assert series["fid"][2] == (1.0, None) and series["fid"][4] == (3.0, math.sqrt(2.0)) and "kid" not in series
