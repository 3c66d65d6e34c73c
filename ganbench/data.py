"""Datasets as one uint8 tensor in memory, and batches sampled by index on the run's device.

No per-item PIL decoding and no DataLoader: the whole training set is decoded once
(Fashion-MNIST is 47 MB), moved to the device, and each batch is an index gather plus
one scale-and-shift, which is what makes the trainer faster than the usual
Dataset/transforms/DataLoader pipeline (see benchmarks/train_throughput.py).
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ganbench.config import ConfigError, TrainConfig, did_you_mean

FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class DataNotFoundError(FileNotFoundError):
    """The dataset's files are nowhere we looked; the message lists where and how to get them."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzipped or not, into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = raw[4 + 4 * ndim :]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(body) != expected:
        raise ValueError(f"{path}: header says {shape} ({expected} bytes) but the file holds {len(body)} bytes")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def fashion_mnist_search_path(data_root: str | os.PathLike | None = None) -> list[Path]:
    """Directories searched for the IDX files, in order."""
    roots: list[Path] = []
    if data_root:
        roots.append(Path(data_root))
    if os.environ.get("GANBENCH_DATA"):
        roots.append(Path(os.environ["GANBENCH_DATA"]))
    roots.append(cache_dir())
    roots.append(DEBIAN_DIR)
    # Each root may hold the files directly, in fashion-mnist/, or in torchvision's layout.
    return [d for root in roots for d in (root, root / "fashion-mnist", root / "FashionMNIST" / "raw")]


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ganbench"


def _find_idx(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def locate_fashion_mnist(data_root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The first directory holding all four Fashion-MNIST files; downloads as a last resort."""
    searched = fashion_mnist_search_path(data_root)
    stems = [stem for pair in FASHION_MNIST_FILES.values() for stem in pair]
    for directory in searched:
        if all(_find_idx(directory, stem) for stem in stems):
            return directory
    download_error = "not attempted"
    if download:
        try:
            from torchvision.datasets import FashionMNIST

            FashionMNIST(str(cache_dir()), train=True, download=True)
            FashionMNIST(str(cache_dir()), train=False, download=True)
            return cache_dir() / "FashionMNIST" / "raw"
        except Exception as err:  # offline, proxy, disk: all mean "not here"
            download_error = f"{type(err).__name__}: {err}"
    places = "\n".join(f"  - {d}" for d in searched)
    raise DataNotFoundError(
        "Fashion-MNIST not found. Looked for "
        + ", ".join(s + "[.gz]" for s in stems)
        + f" in:\n{places}\n  - torchvision download into {cache_dir()}: {download_error}\n"
        "Get it with `apt-get install dataset-fashion-mnist` (Debian; files land in "
        f"{DEBIAN_DIR}), or download the four files from "
        "https://github.com/zalandoresearch/fashion-mnist and pass --data-root DIR "
        "(or set GANBENCH_DATA)."
    )


def load_fashion_mnist(split: str, data_root: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 N×1×28×28, labels int64 N) of split 'train', 'test' or 'train+test'."""
    parts = split.split("+")
    for part in parts:
        if part not in FASHION_MNIST_FILES:
            raise ConfigError(f"unknown split '{part}'{did_you_mean(part, FASHION_MNIST_FILES)}")
    directory = locate_fashion_mnist(data_root)
    images, labels = [], []
    for part in parts:
        image_stem, label_stem = FASHION_MNIST_FILES[part]
        images.append(read_idx(_find_idx(directory, image_stem)))
        labels.append(read_idx(_find_idx(directory, label_stem)))
    x = torch.from_numpy(np.concatenate(images)).unsqueeze(1)
    y = torch.from_numpy(np.concatenate(labels).astype(np.int64))
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"Fashion-MNIST in {directory}: {x.shape[0]} images but {y.shape[0]} labels")
    return x, y


def load_fake(split: str, data_root: str | os.PathLike | None = None, n: int = 1024,
              side: int = 28, channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random blobs (deterministic per split) for tests: no files, no download."""
    gen = torch.Generator().manual_seed(0 if split == "train" else 1)
    low = torch.rand(n, channels, 7, 7, generator=gen)
    images = F.interpolate(low, size=(side, side), mode="bilinear", align_corners=False)
    return (images * 255).round().to(torch.uint8), torch.randint(0, 10, (n,), generator=gen)


Loader = Callable[..., tuple[torch.Tensor, torch.Tensor]]
DATASETS: dict[str, Loader] = {"fashion-mnist": load_fashion_mnist, "fake": load_fake}


def load_images(cfg: TrainConfig, data_root: str | os.PathLike | None = None) -> torch.Tensor:
    """The training images of `cfg` as uint8 N×C×S×S, at the config's size and channels."""
    if cfg.dataset not in DATASETS:
        raise ConfigError(f"unknown dataset '{cfg.dataset}'{did_you_mean(cfg.dataset, DATASETS)}; "
                          f"choose from {sorted(DATASETS)}")
    images, _ = DATASETS[cfg.dataset](cfg.data_split, data_root)
    return fit_images(images, cfg.image_size, cfg.channels)


def fit_images(images: torch.Tensor, side: int, channels: int) -> torch.Tensor:
    """Resize (antialiased bilinear) and convert channels once, at load time."""
    if images.shape[1] != channels:
        if channels == 3:
            images = images.expand(-1, 3, -1, -1).contiguous()
        else:  # ITU-R 601 luma, as PIL's convert("L")
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images.float() * weights).sum(1, keepdim=True).round().to(torch.uint8)
    if images.shape[-1] != side or images.shape[-2] != side:
        resized = F.interpolate(images.float(), size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        images = resized.round().clamp_(0, 255).to(torch.uint8)
    return images


@dataclass
class SamplerState:
    order: torch.Tensor  # this epoch's permutation (CPU int64)
    cursor: int  # next position in `order`
    generator: torch.Tensor  # CPU generator state


class BatchSampler:
    """Batches without replacement, epoch by epoch, as floats in `pixel_range` on `device`.

    The permutation comes from a CPU generator seeded by the run seed, so the data order
    is the same on every device. The last incomplete batch of an epoch is dropped.
    """

    def __init__(self, images: torch.Tensor, batch_size: int, pixel_range: tuple[float, float],
                 device: torch.device, seed: int) -> None:
        if images.shape[0] < batch_size:
            raise ConfigError(f"batch_size {batch_size} exceeds the dataset's {images.shape[0]} images")
        self.images = images.to(device)
        self.batch_size = batch_size
        low, high = pixel_range
        self.scale, self.offset = (high - low) / 255.0, low
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(images.shape[0], generator=self.generator)
        self.cursor = 0

    def next(self) -> torch.Tensor:
        if self.cursor + self.batch_size > self.order.numel():
            self.order = torch.randperm(self.order.numel(), generator=self.generator)
            self.cursor = 0
        idx = self.order[self.cursor : self.cursor + self.batch_size].to(self.images.device, non_blocking=True)
        self.cursor += self.batch_size
        return self.images[idx].float().mul_(self.scale).add_(self.offset)

    def state(self) -> SamplerState:
        return SamplerState(self.order.clone(), self.cursor, self.generator.get_state())

    def load_state(self, state: SamplerState) -> None:
        self.order, self.cursor = state.order.clone(), state.cursor
        self.generator.set_state(state.generator)
