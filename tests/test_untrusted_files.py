"""No file ganbench reads runs code (issue 36's security cases S1–S3): a payload's marker file is never
created, and the command says what was wrong with the file instead."""

from __future__ import annotations

import io
import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ganbench.data.sampler import load_labelled
from ganbench.metrics.feature_store import FeatureCacheWarning, features_dir
from ganbench.metrics.fidelity import evaluate
from ganbench.metrics.reference import Reference
from ganbench.process_cache import PROCESS


class Payload:
    """Unpickling this creates `marker`: the proof that a file ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    PROCESS.clear()
    yield tmp_path / "cache" / "ganbench"
    PROCESS.clear()


def test_s1_tampered_feature_caches_never_run_code(tmp_path, private_cache, monkeypatch):
    """S1: ganbench's reference-feature cache is plain .npy read without pickle, and torch-fidelity is
    never pointed at a cache (its own files are `torch.load(weights_only=False)`): payloads planted in
    both places do not run; the pickled .npy files are re-extracted, said, and the value is unchanged."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    train_images, _ = load_labelled("fashion-mnist", "train")
    test_images, test_labels = load_labelled("fashion-mnist", "test")
    reference = Reference("fashion-mnist", "test", 300, 28, 1)

    def fid() -> float:
        return evaluate(train_images[:100], ["fid_fmnist"], reference, samples=100,
                        reference_data=(test_images[:300], test_labels[:300]))[0]["value"]

    clean = fid()
    assert not (tmp_path / "torch" / "fidelity_cache").exists()  # torch-fidelity's default cache: not used either
    files = sorted(features_dir().glob("*.npy"))
    assert files, "the reference features were not cached"
    marker = tmp_path / "ran"
    for path in files:  # ganbench's cache: a pickled object array in place of each array
        with open(path, "wb") as fh:
            np.save(fh, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    old = private_cache / "fidelity"  # where torch-fidelity's own cache used to be pointed
    old.mkdir(parents=True)
    for path in files:
        torch.save({"x": Payload(marker)}, old / path.name.replace(".npy", ".pt"))
    PROCESS.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FeatureCacheWarning)
        again = fid()
    assert not marker.exists()
    assert again == clean
    said = [str(w.message) for w in caught if issubclass(w.category, FeatureCacheWarning)]
    assert said and all("unreadable reference features" in s for s in said), said
    for path in files:  # rewritten sound
        assert np.load(path, allow_pickle=False).shape[0] == 300


def _exported_generator(tmp_path: Path):
    from ganbench.hacks import resolve
    from ganbench.models import build_models

    cfg, _ = resolve("dcgan", [], {"device": "cpu", "latent_dist": "gaussian", "seed": 3})
    torch.manual_seed(0)
    net_g = build_models(cfg)[0].eval()
    program = torch.export.export(net_g, (torch.zeros(2, cfg.latent_dim),),
                                  dynamic_shapes=({0: torch.export.Dim("n")},))
    torch.export.save(program, str(tmp_path / "g.pt2"))
    return cfg, net_g, tmp_path / "g.pt2"


def _rewritten(source: Path, target: Path, change) -> Path:
    """A copy of the zip `source` whose entries pass through `change(name, data) → [(name, data)]`."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            for out_name, data in change(name, old.read(name)):
                new.writestr(out_name, data)
    return target


def _pickled(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save(Payload(marker), buffer)
    return buffer.getvalue()


def test_s2_a_pt2_scores_and_a_pickled_one_never_runs(tmp_path):
    """S2: a valid .pt2 scores (it failed on `.eval()` before) with the value of the same generator in
    memory; archives whose weights are marked `use_pickle`, that hold an opaque (pickled) constant or
    whose sample inputs are a pickle are refused or fail, naming the file — the payload never runs."""
    from ganbench.metrics.backend import FidelityGenerator
    from ganbench.metrics.external import evaluate_external
    from ganbench.metrics.registry import MetricError

    cfg, net_g, good = _exported_generator(tmp_path)
    reference = Reference("fashion-mnist", "test", 300, 28, 1)
    rows = evaluate_external(good, "fid_fmnist", reference, cfg, 256, torch.device("cpu"))
    direct = evaluate(FidelityGenerator(net_g, cfg), ["fid_fmnist"], reference, samples=256, seed=3)[0]["value"]
    assert rows[0]["value"] == pytest.approx(direct, rel=1e-6)
    assert rows[0]["scored"]["kind"] == "torch.export program"

    marker = tmp_path / "ran"

    def pickled_weight(name, data):
        if name.endswith("_weights_config.json"):
            config = json.loads(data)
            first = next(iter(config["config"]))
            config["config"][first]["use_pickle"] = True
            return [(name, json.dumps(config))]
        if name.endswith("data/weights/weight_0"):
            return [(name, _pickled(marker))]
        return [(name, data)]

    def opaque_constant(name, data):
        if name.endswith("_constants_config.json"):
            root = name.split("/", 1)[0]
            return [(name, json.dumps({"config": {"c": {"path_name": "opaque_obj_0", "is_param": False,
                                                         "use_pickle": False, "tensor_meta": None}}})),
                    (f"{root}/data/constants/opaque_obj_0", pickle.dumps(Payload(marker)))]
        return [(name, data)]

    def pickled_sample_inputs(name, data):
        return [(name, _pickled(marker) if "data/sample_inputs/" in name else data)]

    for change, said in ((pickled_weight, "stored as a pickle"), (opaque_constant, "not part of a plain"),
                         (pickled_sample_inputs, "not a loadable torch.export program")):
        evil = _rewritten(good, tmp_path / f"{change.__name__}.pt2", change)
        with pytest.raises(MetricError, match=said) as caught:
            evaluate_external(evil, "fid_fmnist", reference, cfg, 256, torch.device("cpu"))
        assert str(evil) in str(caught.value)
        assert not marker.exists(), change.__name__


def test_s3_an_alias_bomb_is_refused_at_once(tmp_path):
    """S3: a "billion laughs" under `description` grew past 2.2 GB (`str(description)`); it is refused
    when the YAML is read, in well under a second and a few MB, naming the line."""
    import resource
    import time

    from ganbench.study.suite import SuiteError, load_suite

    lines = ["name: bomb", "preset: dcgan", "steps: 4", "description:",
             "  - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    with pytest.raises(SuiteError, match=r"bomb.yaml: line \d+: its aliases expand to more than"):
        load_suite(path, tmp_path / "results")
    assert time.perf_counter() - start < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024  # KiB: under 50 MB more
    small = tmp_path / "small.yaml"  # a description that is not text (no bomb) is refused as such
    small.write_text("name: small\npreset: dcgan\nsteps: 4\ndescription: [a, b]\n")
    with pytest.raises(SuiteError, match="description: expected text, got list"):
        load_suite(small, tmp_path / "results")
    recursive = tmp_path / "recursive.yaml"
    recursive.write_text("name: r\npreset: dcgan\nsteps: 4\ndescription: &r [*r]\n")
    with pytest.raises(SuiteError, match="recursive structure"):
        load_suite(recursive, tmp_path / "results")
