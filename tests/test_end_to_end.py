"""The real path: Debian's Fashion-MNIST files → ganbench train → torch-fidelity metrics.

No mock and no fixture: this fails (it does not skip) when the dataset or the imported
Inception weights are missing, so a CI machine without them cannot pass silently.
"""

import json

import pytest
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.data.sampler import load_labelled


def test_real_fashion_mnist_is_complete():
    images, labels = load_labelled("fashion-mnist", "train")
    assert images.shape == (60000, 1, 28, 28)
    assert sorted(labels.unique().tolist()) == list(range(10))
    test_images, _ = load_labelled("fashion-mnist", "test")
    assert test_images.shape == (10000, 1, 28, 28)


def test_a_few_steps_on_real_fashion_mnist_train_and_score_through_torch_fidelity(tmp_path):
    """The first tier's end-to-end: real Debian files, the dcgan preset, torch-fidelity's FID on the
    fmnist extractor at the last step (small N: seconds, not a minute)."""
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--preset", "dcgan", "--steps", "20", "--device", "cpu",
                                      "--set", "log_every=10", "--set", "sample_every=20", "--set", "eval_samples=500",
                                      "--set", "eval_reference_samples=1000", "--set", "eval_draws=1",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "completed" and status["metrics"]["fid_fmnist"] > 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    fid = [r for r in rows if r["metric"] == "fid_fmnist"]
    assert [r["step"] for r in fid] == [20] and fid[0]["reference_dataset"] == "fashion-mnist"
    assert fid[0]["torch_fidelity_version"] == "0.4.0" and fid[0]["reference_samples"] == 1000


@pytest.mark.integration
def test_dcgan_trains_on_real_fashion_mnist(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--preset", "dcgan", "--steps", "60", "--device", "cpu",
                                      "--set", "log_every=20", "--set", "sample_every=60", "--set", "eval_every=30",
                                      "--set", "eval_samples=2000", "--out", str(out)])
    assert result.exit_code == 0, result.output
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "completed"
    rows = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [20, 40, 60]
    # D learns to tell real from generated within a few dozen steps on real data.
    assert rows[-1]["d_real"] > rows[-1]["d_fake_before"]
    assert (out / "samples" / "step_000060.png").stat().st_size > 1000
    # The fmnist metrics, through torch-fidelity, at steps 30 and 60, with provenance.
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    fid: dict[int, list[float]] = {}
    for r in metrics:
        if r["metric"] == "fid_fmnist":
            fid.setdefault(r["step"], []).append(r["value"])
    assert sorted(fid) == [30, 60] and all(v > 0 for values in fid.values() for v in values)
    assert len(fid[30]) == 1 and len(fid[60]) == 3  # eval_draws latent draws at the final evaluation
    assert status["metrics"]["fid_fmnist"] == pytest.approx(sum(fid[60]) / 3)
    assert all(r["uniform_noise_fid"] > 0 for r in metrics if r["metric"] == "fid_fmnist")
    assert {r["reference_samples"] for r in metrics} == {10000} and {r["samples_generated"] for r in metrics} == {2000}
    # Inception FID of the final generator on a small N, with the offline-imported weights.
    result = CliRunner().invoke(app, ["eval", str(out), "--metrics", "fid,kid", "--samples", "32",
                                      "--reference-samples", "32", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    inception = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-3:]
    assert [r["metric"] for r in inception] == ["fid", "kid", "kid_std"]
    assert inception[0]["value"] > 0 and inception[0]["feature_extractor"] == "inception-v3-compat"


@pytest.mark.slow
def test_acceptance_run_is_reproducible(tmp_path):
    """The issue's acceptance command, twice: identical losses (about 5 CPU minutes)."""
    runs = []
    for name in ("a", "b"):
        result = CliRunner().invoke(app, ["train", "--preset", "dcgan", "--steps", "1500", "--device", "cpu",
                                          "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        runs.append([(r["loss_d"], r["loss_g"]) for r in map(json.loads, (tmp_path / name / "stats.jsonl")
                                                             .read_text().splitlines())])
    assert runs[0] == runs[1]
