"""Evaluation batched over the runs of a group: one pass of the extractor over every run's images,
then each run's metrics as alone. Every number equals (a) the run evaluated alone and (b)
torch_fidelity.calculate_metrics on the same generator: FID within 1e-4 relative, KID within
1e-6 (absolute: KID here is ~1e-2), precision/recall within 2e-4, mode coverage exactly."""

from __future__ import annotations

import pytest
import torch
import torch_fidelity

from ganbench.data.sampler import load_labelled
from ganbench.hacks import resolve
from ganbench.metrics.backend import FidelityGenerator
from ganbench.metrics.fidelity import _fidelity_kwargs, checked_weights, evaluate, evaluate_many
from ganbench.metrics.reference import Reference
from ganbench.models import build_models

SAMPLES = 600
FIDELITY = {"fid": "frechet_inception_distance", "kid": "kernel_inception_distance_mean",
            "precision": "precision", "recall": "recall"}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def group():
    """Three runs' generators (different seeds, one with a Gaussian latent) and a real reference."""
    images, labels = load_labelled("fashion-mnist", "test")
    sources = []
    for seed, latent in ((0, "uniform"), (1, "uniform"), (2, "gaussian")):
        cfg, _ = resolve("dcgan", [], {"device": "cpu", "seed": seed, "latent_dist": latent})
        torch.manual_seed(seed)
        sources.append(FidelityGenerator(build_models(cfg)[0], cfg))
    return sources, (images[:800], labels[:800]), Reference("fashion-mnist", "test", 800, 28, 1)


def values(rows):
    return {r["metric"]: r["value"] for r in rows}


def close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name, value in a.items():
        if name.startswith("fid"):
            assert value == pytest.approx(b[name], rel=1e-4), name
        elif name.startswith("kid"):
            assert value == pytest.approx(b[name], abs=1e-6), name
        elif name.startswith("modes"):
            assert value == b[name], name
        else:
            assert value == pytest.approx(b[name], abs=2e-4), name


@pytest.mark.integration
@pytest.mark.parametrize("names", [["fid_fmnist", "kid_fmnist", "prc_fmnist", "modes_fmnist", "isc_fmnist"]])
def test_a_group_evaluated_together_equals_each_run_alone_and_torch_fidelity(group, names):
    sources, data, reference = group
    seeds = [11, 12, 13]
    together = evaluate_many(sources, names, reference, samples=SAMPLES, seeds=seeds, reference_data=data)
    for source, seed, rows in zip(sources, seeds, together):
        alone = evaluate(source, names, reference, samples=SAMPLES, seed=seed, reference_data=data)
        close(values(rows), values(alone))
        assert [r["metric"] for r in rows] == [r["metric"] for r in alone]
        assert {k: v for k, v in rows[0].items() if k != "value"} == {k: v for k, v in alone[0].items() if k != "value"}
        # torch-fidelity itself, on the same generator and seed
        fidelity_name, weights = checked_weights("fmnist", False, None)
        kwargs = _fidelity_kwargs(source, SAMPLES, data[0], rows[0]["reference_cache_key"], fidelity_name, weights,
                                  torch.device("cpu"), seed, 600, {"fid", "kid", "prc"})
        direct = torch_fidelity.calculate_metrics(**kwargs)
        ours = values(rows)
        close({f"{k}_fmnist": ours[f"{k}_fmnist"] for k in FIDELITY},
              {f"{k}_fmnist": direct[v] for k, v in FIDELITY.items()})


def test_the_latents_do_not_depend_on_the_batch(group):
    """torch-fidelity draws a generator's latents batch by batch from one RandomState; ganbench draws
    and extracts in batches of 500 (`fidelity.EVAL_BATCH`): at torch-fidelity's default of 64 the
    numbers are the same (up to float rounding in the batched kernels)."""
    sources, data, reference = group
    rows = evaluate_many(sources[:2], ["fid_fmnist", "prc_fmnist"], reference, samples=SAMPLES, seeds=[5, 6],
                         reference_data=data)
    fidelity_name, weights = checked_weights("fmnist", False, None)
    for source, seed, run_rows in zip(sources, (5, 6), rows):
        kwargs = _fidelity_kwargs(source, SAMPLES, data[0], run_rows[0]["reference_cache_key"], fidelity_name,
                                  weights, torch.device("cpu"), seed, 600, {"fid", "prc"})
        direct = torch_fidelity.calculate_metrics(**{**kwargs, "batch_size": 64})
        ours = values(run_rows)
        assert ours["fid_fmnist"] == pytest.approx(direct["frechet_inception_distance"], rel=1e-4)
        assert ours["precision_fmnist"] == pytest.approx(direct["precision"], abs=2e-4)


@pytest.mark.slow
def test_inception_metrics_of_a_group_equal_each_run_alone(group, imported_inception):
    """The same on Inception (4–15 images/s on this CPU: a small set)."""
    sources, (images, labels), _ = group
    reference = Reference("fashion-mnist", "test", 40, 28, 1)
    data = (images[:40], labels[:40])
    together = evaluate_many(sources[:2], ["fid", "kid", "prc"], reference, samples=40, seeds=[1, 2],
                             inception_weights=imported_inception, reference_data=data)
    for source, seed, rows in zip(sources, (1, 2), together):
        alone = evaluate(source, ["fid", "kid", "prc"], reference, samples=40, seed=seed,
                         inception_weights=imported_inception, reference_data=data)
        close(values(rows), values(alone))


def test_a_fused_group_is_evaluated_in_one_call_per_step(tmp_path, monkeypatch):
    """The training loop evaluates a group's runs together (one extractor pass per draw); each run's
    metrics.jsonl holds its own rows, as when it trains alone."""
    from ganbench import rundir
    from ganbench.metrics import evaluator as evaluator_module
    from ganbench.training.loop import RunSpec, train_group

    calls = []
    real = evaluator_module.evaluate_many
    monkeypatch.setattr(evaluator_module, "evaluate_many",
                        lambda sources, *a, **k: calls.append(len(sources)) or real(sources, *a, **k))
    base = {"batch_size": 16, "steps": 8, "log_every": 4, "sample_every": 0, "checkpoint_every": 0, "device": "cpu",
            "threads": 1, "eval_every": 4, "eval_samples": 128, "eval_reference_samples": 256, "eval_draws": 2,
            "metrics": "fid_fmnist,modes_fmnist"}
    cfgs = [resolve("dcgan", [], {**base, "seed": s})[0] for s in range(3)]
    outcomes = train_group([RunSpec(c, tmp_path / f"r{i}") for i, c in enumerate(cfgs)])
    assert [o["status"] for o in outcomes] == ["completed"] * 3
    assert calls == [3, 3, 3]  # step 4 (one draw), step 8 (two draws): every run in each call
    for i in range(3):
        rows = rundir.read_jsonl(tmp_path / f"r{i}" / "metrics.jsonl")
        assert [(r["step"], r["draw"]) for r in rows if r["metric"] == "fid_fmnist"] == [(4, 0), (8, 0), (8, 1)]
        assert all("uniform_noise_fid" in r for r in rows if r["metric"] == "fid_fmnist")
    fid = {i: [r["value"] for r in rundir.read_jsonl(tmp_path / f"r{i}" / "metrics.jsonl")
               if r["metric"] == "fid_fmnist"] for i in range(3)}
    assert len({tuple(v) for v in fid.values()}) == 3  # each run its own numbers
