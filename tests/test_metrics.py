import math

import numpy as np
import pytest
import torch
import torch_fidelity
from typer.testing import CliRunner

from ganbench import rundir
from ganbench.metrics import extractors
from ganbench.cli import app
from ganbench.config import ConfigError
from ganbench.data.sampler import load_labelled
from ganbench.metrics.backend import FidelityGenerator, ImageTensorDataset
from ganbench.metrics.fidelity import evaluate
from ganbench.metrics.reference import Reference
from ganbench.metrics.registry import MetricError
from ganbench.process_cache import PROCESS
from ganbench.metrics.registry import higher_is_better, parse_metrics
from ganbench.models import build_models
from ganbench.training.loop import train

from conftest import tiny


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Reference statistics go to a fresh cache, so tests see cold and warm caches on purpose."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_parse_metrics():
    assert parse_metrics("auto") == ("fid_fmnist", "kid_fmnist", "isc_fmnist", "prc_fmnist", "modes_fmnist")
    assert parse_metrics("auto", dataset="cifar10") == ("fid", "kid")
    assert parse_metrics("none") == ()
    with pytest.raises(ConfigError, match="did you mean 'fid_fmnist'"):
        parse_metrics("fid_fmnst")
    assert higher_is_better("fid_fmnist") is False and higher_is_better("isc") is True
    assert higher_is_better("recall_fmnist") is True and higher_is_better("kid_std") is None


class ConstantG(torch.nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = torch.nn.Parameter(torch.tensor(value))

    def forward(self, z):
        return self.value.expand(z.shape[0], 1, 28, 28)


def test_generator_wrapper_rounds_and_uses_the_runs_latent():
    cfg = tiny(output_activation="tanh")
    # 0.001 in [-1, 1] is 127.63 in [0, 255]: rounding gives 128, truncation would give 127.
    out = FidelityGenerator(ConstantG(0.001), cfg)(torch.zeros(2, cfg.latent_dim))
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 28, 28) and int(out[0, 0, 0, 0]) == 128
    assert FidelityGenerator(ConstantG(0.0), cfg).z_type == "ganbench_uniform_m1_1"
    assert FidelityGenerator(ConstantG(0.0), cfg.replace(latent_dist="gaussian")).z_type == "normal"
    noise = torch_fidelity.registry.NOISE_SOURCE_REGISTRY["ganbench_uniform_m1_1"](np.random.RandomState(0), (1000, 8))
    assert noise.min() >= -1 and noise.max() <= 1 and noise.min() < -0.99 and noise.mean().abs() < 0.05


@pytest.fixture(scope="module")
def fmnist_sets():
    train_images, _ = load_labelled("fashion-mnist", "train")
    test_images, test_labels = load_labelled("fashion-mnist", "test")
    return train_images, test_images, test_labels


def test_fid_matches_torch_fidelity_directly_fmnist(fmnist_sets):
    train_images, test_images, test_labels = fmnist_sets
    generated, reference = train_images[:600], test_images[:800]
    ours = evaluate(generated, ["fid_fmnist"], Reference("fashion-mnist", "test", 800, 28, 1), samples=600,
                    reference_data=(reference, test_labels[:800]))
    direct = torch_fidelity.calculate_metrics(input1=ImageTensorDataset(generated), input2=ImageTensorDataset(reference),
                                              feature_extractor="ganbench-fmnist", fid=True, cuda=False, cache=False,
                                              verbose=False, save_cpu_ram=True)
    assert ours[0]["value"] == pytest.approx(direct["frechet_inception_distance"], abs=1e-3)
    assert ours[0]["weights_sha256"] == extractors.sha256_file(extractors.WEIGHTS_PATH)


@pytest.mark.integration
def test_fid_matches_torch_fidelity_directly_inception(fmnist_sets, imported_inception):
    train_images, test_images, test_labels = fmnist_sets
    generated, reference = train_images[:24], test_images[:24]
    ours = evaluate(generated, ["fid"], Reference("fashion-mnist", "test", 24, 28, 1), samples=24,
                    inception_weights=imported_inception, reference_data=(reference, test_labels[:24]))
    direct = torch_fidelity.calculate_metrics(input1=ImageTensorDataset(generated), input2=ImageTensorDataset(reference),
                                              feature_extractor="inception-v3-compat", fid=True, cuda=False,
                                              cache=False, verbose=False, save_cpu_ram=True,
                                              feature_extractor_weights_path=imported_inception)
    assert ours[0]["value"] == pytest.approx(direct["frechet_inception_distance"], abs=1e-3)
    assert ours[0]["resize_mode"].startswith("TF1-compatible bilinear")


def test_imported_inception_equals_the_torchscript(imported_inception):
    scripted = extractors.load_torchscript(extractors.fid_helper_torchscript_path()).eval()
    ours = extractors.inception_skeleton()
    ours.load_state_dict(torch.load(imported_inception, weights_only=True))
    ours.eval()
    images = torch.randint(0, 256, (3, 3, 299, 299), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = scripted((images.float() - 128) / 128)
        got = ours(images)[0]
    assert got.shape == (3, 2048)
    assert (got - expected).abs().max().item() < 1e-4


def test_is_with_feature_only_weights_is_refused(fmnist_sets, imported_inception):
    train_images, test_images, test_labels = fmnist_sets
    with pytest.raises(MetricError, match="feature-only"):
        evaluate(train_images[:8], ["isc"], Reference("fashion-mnist", "test", 8, 28, 1), samples=8,
                 inception_weights=imported_inception, reference_data=(test_images[:8], test_labels[:8]))


def test_too_many_reference_samples():
    with pytest.raises(MetricError, match="holds only 10000"):
        Reference("fashion-mnist", "test", 20000, 28, 1).load()


@pytest.mark.integration
def test_real_vs_real_far_below_noise_vs_real(fmnist_sets):
    """The issue's sanity check: FID(train sample, test) < 2 % of FID(uniform noise, test), N = 5000."""
    train_images, test_images, test_labels = fmnist_sets
    reference = Reference("fashion-mnist", "test", 0, 28, 1)
    gen = torch.Generator().manual_seed(1)
    real = train_images[torch.randperm(60000, generator=gen)[:5000]]
    noise = torch.randint(0, 256, (5000, 1, 28, 28), dtype=torch.uint8, generator=gen)
    fid_real = evaluate(real, ["fid_fmnist"], reference, samples=5000, reference_data=(test_images, test_labels))
    fid_noise = evaluate(noise, ["fid_fmnist"], reference, samples=5000, reference_data=(test_images, test_labels))
    assert fid_real[0]["value"] < 0.02 * fid_noise[0]["value"], (fid_real[0]["value"], fid_noise[0]["value"])


def test_reference_cache_key_tracks_every_input(tmp_path, fmnist_sets):
    train_images, test_images, test_labels = fmnist_sets
    cache = tmp_path / "cache" / "ganbench" / "features"

    def run(n_ref):
        PROCESS.clear()  # from the disk cache, not the process's
        ref = (test_images[:n_ref], test_labels[:n_ref])
        return evaluate(train_images[:100], ["fid_fmnist"], Reference("fashion-mnist", "test", n_ref, 28, 1),
                        samples=100, reference_data=ref)[0]

    first = run(300)
    files = sorted(p.name for p in cache.iterdir())
    assert files and all(first["reference_cache_key"] in name for name in files)
    again = run(300)
    assert again["reference_cache_key"] == first["reference_cache_key"] and again["value"] == first["value"]
    assert sorted(p.name for p in cache.iterdir()) == files  # warm cache: nothing recomputed
    other = run(400)
    assert other["reference_cache_key"] != first["reference_cache_key"]


def test_mode_coverage_of_real_images(fmnist_sets):
    _, test_images, test_labels = fmnist_sets
    rows = evaluate(test_images[:2000], ["modes_fmnist"], Reference("fashion-mnist", "test", 0, 28, 1), samples=2000,
                    reference_data=(test_images, test_labels))
    values = {r["metric"]: r["value"] for r in rows}
    assert values["modes_covered_fmnist"] == 10 and values["modes_kl_fmnist"] < 0.01
    one_class = test_images[test_labels == 1][:500]  # trousers only: a collapsed "generator"
    rows = evaluate(one_class, ["modes_fmnist"], Reference("fashion-mnist", "test", 0, 28, 1), samples=500,
                    reference_data=(test_images, test_labels))
    values = {r["metric"]: r["value"] for r in rows}
    assert values["modes_covered_fmnist"] == 1 and values["modes_kl_fmnist"] > 2.0


def test_training_writes_metrics_with_provenance(tmp_path):
    cfg = tiny(steps=4, metrics="fid_fmnist,kid_fmnist,isc_fmnist,prc_fmnist,modes_fmnist", eval_every=2,
               eval_samples=64, eval_reference_samples=0, checkpoint_every=2)
    status = train(cfg, tmp_path / "run")
    rows = rundir.read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert sorted({r["step"] for r in rows}) == [2, 4]
    assert {r["metric"] for r in rows} >= {"fid_fmnist", "kid_fmnist", "isc_fmnist", "precision_fmnist",
                                           "recall_fmnist", "modes_covered_fmnist", "modes_kl_fmnist"}
    for row in rows:
        for field in ("value", "step", "extractor", "weights_sha256", "samples_generated", "reference_samples",
                      "reference_split", "resize_mode", "torch_fidelity_version", "higher_is_better"):
            assert field in row, field
        assert row["samples_generated"] == 64 and row["reference_samples"] == 1024
    assert status["metrics"]["step"] == 4 and "fid_fmnist" in status["metrics"]


def test_resume_reproduces_metrics(tmp_path):
    cfg = tiny(steps=6, metrics="fid_fmnist", eval_every=2, eval_samples=32, eval_reference_samples=0,
               checkpoint_every=2)
    train(cfg, tmp_path / "whole")

    def crash(step, total, row):
        if step == 4:
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        train(cfg, tmp_path / "broken", progress=crash)
    train(cfg, tmp_path / "broken")
    strip = lambda rows: [(r["step"], r["metric"], r["value"]) for r in rows]  # noqa: E731
    assert strip(rundir.read_jsonl(tmp_path / "broken" / "metrics.jsonl")) == strip(
        rundir.read_jsonl(tmp_path / "whole" / "metrics.jsonl"))


def test_bad_metric_fails_before_training(tmp_path):
    with pytest.raises(ConfigError, match="did you mean"):
        train(tiny(metrics="fidd_fmnist"), tmp_path / "run")
    assert not (tmp_path / "run" / "stats.jsonl").exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    train(tiny(steps=2, metrics="none", eval_reference_samples=0), run_dir)
    return run_dir


def test_cli_eval(finished_run):
    result = CliRunner().invoke(app, ["eval", str(finished_run), "--metrics", "fid_fmnist,modes_fmnist",
                                      "--samples", "64", "--device", "cpu"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = rundir.read_jsonl(finished_run / "metrics.jsonl")
    assert {r["metric"] for r in rows} == {"fid_fmnist", "modes_covered_fmnist", "modes_kl_fmnist"}
    assert all(r["source"] == "ganbench eval" and r["step"] == 2 for r in rows)


@pytest.mark.parametrize("args, fragment", [
    (["--metrics", "fid_fmnsit"], "did you mean 'fid_fmnist'"),
    (["--metrics", "isc"], "feature-only"),
])
def test_cli_eval_errors(finished_run, imported_inception, monkeypatch, args, fragment):
    monkeypatch.setenv("GANBENCH_INCEPTION_WEIGHTS", imported_inception)
    result = CliRunner().invoke(app, ["eval", str(finished_run), "--samples", "16", "--device", "cpu", *args],
                                env={"COLUMNS": "250"})
    assert result.exit_code != 0
    assert fragment in result.output


def test_cli_eval_too_many_reference_samples(tmp_path):
    run_dir = tmp_path / "run"
    train(tiny(steps=2, metrics="none", eval_reference_samples=5000), run_dir)
    result = CliRunner().invoke(app, ["eval", str(run_dir), "--metrics", "fid_fmnist", "--device", "cpu"],
                                env={"COLUMNS": "250"})
    assert result.exit_code != 0 and "holds only 1024" in result.output


def test_cuda_evaluation_targets_the_runs_gpu(monkeypatch, fmnist_sets):
    """No GPU needed: torch-fidelity must get cuda=True inside a `torch.cuda.device` context for
    the run's own GPU, since it moves G and the extractor with a bare .cuda()."""
    import ganbench.metrics.fidelity as metrics_module

    entered, calls = [], []

    class DeviceContext:
        def __init__(self, device):
            entered.append(torch.device(device))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_fidelity_metrics(kwargs, extra_layers=(), features_1=None):
        calls.append(kwargs)
        return {"frechet_inception_distance": 1.0}, {}, None

    monkeypatch.setattr(metrics_module.torch.cuda, "device", DeviceContext)
    monkeypatch.setattr(metrics_module, "fidelity_metrics", fake_fidelity_metrics)
    _, test_images, test_labels = fmnist_sets
    rows = evaluate(test_images[:10], ["fid_fmnist"], Reference("fashion-mnist", "test", 10, 28, 1), samples=10,
                    device=torch.device("cuda:1"), reference_data=(test_images[:10], test_labels[:10]))
    assert entered == [torch.device("cuda:1")] and calls[0]["cuda"] is True and rows[0]["value"] == 1.0


def test_offline_without_inception_weights_explains(monkeypatch, tmp_path, fmnist_sets):
    import urllib.error

    from torch_fidelity import feature_extractor_inceptionv3 as tf_inception

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no hub cache; XDG cache is empty too
    monkeypatch.delenv("GANBENCH_INCEPTION_WEIGHTS", raising=False)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", offline)
    _, test_images, test_labels = fmnist_sets
    with pytest.raises(MetricError, match="ganbench weights import"):
        evaluate(test_images[:4], ["fid"], Reference("fashion-mnist", "test", 4, 28, 1), samples=4,
                 reference_data=(test_images[:4], test_labels[:4]))


@pytest.mark.slow  # 23 s of Inception on CPU; Inception's numbers are checked against torch-fidelity above
def test_colour_64px_run_evaluates_fid_and_kid_with_inception(tmp_path, monkeypatch, imported_inception):
    from conftest import write_celeba_fixture

    from ganbench.training.loop import train

    monkeypatch.setenv("GANBENCH_INCEPTION_WEIGHTS", imported_inception)
    root = write_celeba_fixture(tmp_path / "data", n=24, partition=True)  # 17 train, 4 valid, 3 test
    cfg = tiny(dataset="celeba", arch="radford", image_size=64, channels=3, g_fc_hidden=0, d_fc_hidden=0, steps=2,
               metrics="fid,kid", eval_samples=10, eval_split="train")
    status = train(cfg, tmp_path / "run", data_root=root)
    rows = rundir.read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert status["status"] == "completed" and {r["metric"] for r in rows} >= {"fid", "kid"}
    assert all(math.isfinite(r["value"]) for r in rows if r["metric"] in ("fid", "kid"))
    assert {r["reference_dataset"] for r in rows} == {"celeba"}


def _kid_float64(generated: torch.Tensor, real: torch.Tensor, seed: int, size: int, subsets: int) -> tuple[float, float]:
    """torch-fidelity's KID procedure (same RandomState subsets, its mmd2) with every number in float64:
    (mean, std) over the subsets."""
    rng = np.random.RandomState(seed)
    x_all, y_all = generated.double().numpy(), real.double().numpy()
    mmds = []
    for _ in range(subsets):
        x = x_all[rng.choice(len(x_all), size, replace=False)]
        y = y_all[rng.choice(len(y_all), size, replace=False)]
        k_xx, k_yy, k_xy = ((a @ b.T / x.shape[1] + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        mmds.append((k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (size * (size - 1))
                    - 2 * k_xy.sum() / size**2)
    return float(np.mean(mmds)), float(np.std(mmds))


@pytest.mark.integration
@pytest.mark.parametrize("dim, shift", [(128, 0.0), (128, 0.5), (2048, 0.05)])
def test_kid_from_gram_blocks_equals_float64_and_torch_fidelity(dim, shift):
    """KID from Gram blocks against the same procedure in float64 (mean and std ≤ 1e-6 relative) and
    torch-fidelity's float32 numpy loop (mean ≤ 1e-7 absolute; its std carries its float32 sums' error,
    3e-4 relative at 2 048 dimensions), far from KID = 0 and at it (shift 0: both sets from one law), with
    the reference sums computed in the call and kept from an earlier one."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    from ganbench.metrics.kid import KidSettings, _generated_centre, kid, reference_sums

    g = torch.Generator().manual_seed(dim)
    generated = torch.randn(1500, dim, generator=g).relu()
    real = (torch.randn(3000, dim, generator=g) + shift).relu()
    settings = KidSettings(subsets=20, size=500, seed=7)
    cold = kid(generated, real, settings)
    cached = kid(generated, real, settings, reference_sums(real, len(generated), settings))
    theirs = kid_features_to_metric(generated, real, rng_seed=7, kid_subset_size=500, kid_subsets=20, verbose=False)
    exact, exact_std = _kid_float64(generated, real, 7, 500, 20)
    mean, std = cold["kernel_inception_distance_mean"], cold["kernel_inception_distance_std"]
    assert cold == cached
    assert abs(mean - theirs["kernel_inception_distance_mean"]) <= 1e-7
    assert abs(mean - exact) <= 1e-6 * abs(exact) and abs(std - exact_std) <= 1e-6 * exact_std
    assert (abs(exact) < 1e-3) == (shift == 0.0)  # the near case is near 0, the others are not
    # Both centres for the generated pairs are covered: their own mean only where the sets lie apart.
    centre = real.double().mean(0)
    assert torch.equal(_generated_centre(generated, real, centre), centre) == (shift != 0.5)


@pytest.mark.slow  # 75 s on 2 cores: three float64 and float32 KIDs at full size; the synthetic case above runs by default
def test_kid_on_real_fmnist_features_near_and_far_from_zero():
    """The acceptance case: 5 000 generated vs 10 000 reference fmnist-classifier features, a real set
    (train images: KID ≈ 0) and an untrained G's images (KID ≈ 2.5), 100 subsets of 1 000."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    from ganbench.metrics.classifier import load_classifier
    from ganbench.metrics.extractors import WEIGHTS_PATH
    from ganbench.metrics.kid import KidSettings, kid

    net = load_classifier(WEIGHTS_PATH)

    def features(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([net(batch.float() / 255)[0] for batch in images.split(1000)])

    real = features(Reference("fashion-mnist", "test", 10_000, 28, 1).load()[0])
    near = features(Reference("fashion-mnist", "train", 5_000, 28, 1).load()[0])
    torch.manual_seed(0)
    cfg = tiny()
    net_g = build_models(cfg)[0].eval()
    with torch.no_grad():
        far = features(((net_g(torch.randn(5000, cfg.latent_dim)) + 1) * 127.5).round().clamp(0, 255))
    settings = KidSettings(subsets=100, size=1000, seed=0)
    for generated in (near, far):
        ours = kid(generated, real, settings)["kernel_inception_distance_mean"]
        theirs = kid_features_to_metric(generated, real, rng_seed=0, kid_subset_size=1000, kid_subsets=100,
                                        verbose=False)["kernel_inception_distance_mean"]
        exact = _kid_float64(generated, real, 0, 1000, 100)[0]
        # Of torch-fidelity: 5e-9 at KID 3.7 (this G; the generated pairs centred on their own mean), 1.2e-8
        # at KID ≈ 0. Of float64 at KID 3.7: 1.4e-8 (torch-fidelity's loop 2e-8); at KID ≈ −5.5e-5: 1.2e-6
        # relative (6e-11; torch-fidelity's loop 2e-4). That is the float32 Gram blocks' accumulation over the
        # 128 features: a float64 Gram gives 2e-7 but makes KID 1.65× slower (see the note in kid.py).
        assert abs(ours - theirs) <= 1e-7 and abs(ours - exact) <= 2e-6 * abs(exact)
    assert abs(_kid_float64(near, real, 0, 1000, 100)[0]) < 1e-3 < _kid_float64(far, real, 0, 1000, 100)[0]


def test_evaluations_reuse_the_extractor_and_the_reference_features(monkeypatch):
    """A worker evaluating run after run builds the extractor and reads the reference once."""
    from torch_fidelity import utils as fidelity_utils

    PROCESS.clear("extractor")
    PROCESS.clear("reference_features")
    PROCESS.clear("reference_radii")
    built, real = [], fidelity_utils.create_feature_extractor
    monkeypatch.setattr(fidelity_utils, "create_feature_extractor", lambda *a, **k: built.append(1) or real(*a, **k))
    cfg = tiny(eval_samples=64, metrics="fid_fmnist,kid_fmnist,prc_fmnist,modes_fmnist")
    reference = Reference("fake", "test", 0, 28, 1)
    net_g = build_models(cfg)[0]
    first = evaluate(FidelityGenerator(net_g, cfg), parse_metrics(cfg.metrics), reference, samples=64)
    second = evaluate(FidelityGenerator(net_g, cfg), parse_metrics(cfg.metrics), reference, samples=64)
    assert len(built) == 1 and PROCESS.entries("reference_features") == 1 and PROCESS.entries("reference_radii") == 1
    assert [r["value"] for r in first] == [r["value"] for r in second]


def test_final_evaluation_draws_noise_floor_and_fid_infinity(tmp_path, monkeypatch):
    from ganbench.analysis.results import mean_over_draws
    from ganbench.metrics import noise_floor
    from ganbench.metrics.reference import load_reference

    PROCESS.clear("noise_floor")  # measured in this test's cache, not an earlier test's
    cfg = tiny(steps=4, metrics="fid_fmnist", eval_every=2, eval_samples=64, eval_draws=3, fid_infinity=True)
    status = train(cfg, tmp_path / "run")
    rows = rundir.read_jsonl(tmp_path / "run" / "metrics.jsonl")
    fid = [r for r in rows if r["metric"] == "fid_fmnist"]
    assert [(r["step"], r["draw"], r["draws"]) for r in fid] == [(2, 0, 1), (4, 0, 3), (4, 1, 3), (4, 2, 3)]
    finals = [r["value"] for r in fid if r["step"] == 4]
    assert len(set(finals)) == 3  # independent latents, so three different values
    assert len({r["rng_seed"] for r in fid if r["step"] == 4}) == 3 and fid[0]["rng_seed"] == cfg.seed
    assert status["metrics"]["fid_fmnist"] == pytest.approx(np.mean(finals))
    assert [r["step"] for r in rows if r["metric"] == "fid_infinity_fmnist"] == [4, 4, 4]
    noise = {r["uniform_noise_fid"] for r in fid}
    assert len(noise) == 1 and noise.pop() > 0
    assert len(list((tmp_path / "cache").rglob("noise_floor/*.json"))) == 1
    # Measured once: another process reads the cached file instead of evaluating noise again.
    PROCESS.clear("noise_floor")
    monkeypatch.setattr(noise_floor, "evaluate", lambda *a, **k: pytest.fail("noise evaluated twice"))
    reference = Reference.for_config(cfg)
    assert noise_floor.uniform_noise_fid("fmnist", reference, load_reference(reference), 64,
                                         torch.device("cpu"), None) == fid[0]["uniform_noise_fid"]
    import pandas as pd

    table = mean_over_draws(pd.DataFrame([{**r, "arm": "a", "run_id": "r"} for r in fid]))
    final = table[table["step"] == 4].iloc[0]
    assert len(table) == 2 and final["draws"] == 3 and final["value"] == pytest.approx(np.mean(finals))
    assert final["draw_sd"] == pytest.approx(np.std(finals, ddof=1))
    compute = status["compute"]
    assert compute["flops_per_step"] > 1e6 and compute["params_g"] > 1000 and compute["params_d"] > 1000


@pytest.mark.parametrize("shift, true_fid", [(0.0, 0.0), (0.5, 16 * 0.25)])
def test_fid_infinity_removes_the_finite_sample_bias(shift, true_fid):
    from ganbench.metrics.fid_infinity import extrapolated_fid
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    gen = torch.Generator().manual_seed(0)
    reference = torch.randn(20000, 16, generator=gen, dtype=torch.float64)
    generated = torch.randn(2000, 16, generator=gen, dtype=torch.float64) + shift
    at_n = fid_statistics_to_metric(fid_features_to_statistics(generated), fid_features_to_statistics(reference),
                                    False)["frechet_inception_distance"]
    extrapolated = extrapolated_fid(generated, reference, seed=0)
    assert abs(extrapolated - true_fid) < abs(at_n - true_fid)  # closer to the truth than FID at N
    assert abs(extrapolated - true_fid) < 0.1


def test_precision_recall_from_one_distance_matrix_equals_torch_fidelity():
    """ganbench keeps the reference set's k-NN radii between evaluations and makes the reference-to-generated
    distances once: bit for bit torch-fidelity's full mode (which does the same), and its part mode (which
    makes the matrix twice, once per orientation) within 2e-4."""
    from torch_fidelity.metric_prc import prc_features_to_metric

    from ganbench.metrics.prc import precision_recall, reference_radii

    g = torch.Generator().manual_seed(3)
    # 1 100 × 1 200: more than one distance tile each way (512 rows × 1 024 columns)
    generated, real = torch.randn(1100, 32, generator=g).relu(), (torch.randn(1200, 32, generator=g) + 0.2).relu()
    for batch in (10_000, 256):  # one distance block, and several (torch-fidelity's batching)
        ours = precision_recall(generated, real, reference_radii(real, 3, batch), 3, batch)
        full = prc_features_to_metric(generated, real, prc_neighborhood=3, prc_batch_size=batch, save_cpu_ram=False,
                                      verbose=False)
        part = prc_features_to_metric(generated, real, prc_neighborhood=3, prc_batch_size=batch, save_cpu_ram=True,
                                      verbose=False)
        assert ours == full and 0 < ours["precision"] < 1 and 0 < ours["recall"] < 1
        assert all(abs(ours[key] - part[key]) <= 2e-4 for key in part)
