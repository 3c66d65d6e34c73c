"""Shared fixtures: tiny configs on the `fake` dataset so unit tests take milliseconds."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from ganbench.config import TrainConfig


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
