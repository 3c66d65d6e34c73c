"""Training images for a config, and batches sampled by index on the run's device.

No per-item PIL decoding and no DataLoader: a split is decoded once into a uint8 cache
(`ganbench.data.cache`), loaded whole (Fashion-MNIST is 47 MB) and moved to the device, and
each batch is an index gather plus one scale-and-shift, which is what makes the trainer
faster than the usual Dataset/transforms/DataLoader pipeline (see
benchmarks/train_throughput.py). A split over the memory budget stays memory-mapped and
each batch is gathered from the map on the host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ganbench.config import TrainConfig
from ganbench.errors import ConfigError
from ganbench.data.cache import LoadedSplit, load_split
from ganbench.data.formats import Preprocess


def preprocess(cfg: TrainConfig) -> Preprocess:
    return Preprocess(cfg.image_size, cfg.channels, cfg.resize)


def load_images(cfg: TrainConfig, data_root: str | os.PathLike | None = None) -> LoadedSplit:
    """The training images of `cfg` (its split, size, channels, resize and data_limit)."""
    loaded = load_split(cfg.dataset, cfg.data_split, preprocess(cfg), data_root, cfg.data_memory_mb or None)
    if cfg.data_limit and cfg.data_limit < len(loaded.labels):
        loaded.images, loaded.labels = loaded.images[: cfg.data_limit], loaded.labels[: cfg.data_limit]
        loaded.info["limited_to"] = cfg.data_limit
    return loaded


def load_labelled(name: str, split: str, data_root: str | os.PathLike | None = None,
                  prep: Preprocess = Preprocess(28, 1)) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images, int64 labels) of a split, in memory (classifier training, tests)."""
    loaded = load_split(name, split, prep, data_root, memory_budget_mb=None)
    return loaded.images, torch.from_numpy(loaded.labels)


@dataclass
class SamplerState:
    order: torch.Tensor  # this epoch's permutation (CPU int64)
    cursor: int  # next position in `order`
    generator: torch.Tensor  # CPU generator state


class BatchSampler:
    """Batches without replacement, epoch by epoch, as floats in `pixel_range` on `device`.

    The permutation comes from a CPU generator seeded by the run seed, so the data order
    is the same on every device, and the same whether the images are in memory or
    memory-mapped. The last incomplete batch of an epoch is dropped.
    """

    def __init__(self, images: torch.Tensor | np.ndarray, batch_size: int, pixel_range: tuple[float, float],
                 device: torch.device, seed: int) -> None:
        if images.shape[0] < batch_size:
            raise ConfigError(f"batch_size {batch_size} exceeds the dataset's {images.shape[0]} images")
        # A memory map stays on the host; in-memory images move to the device once.
        self.mapped = images if isinstance(images, np.ndarray) else None
        self.images = None if self.mapped is not None else images.to(device)
        self.device = device
        self.batch_size = batch_size
        low, high = pixel_range
        self.scale, self.offset = (high - low) / 255.0, low
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(images.shape[0], generator=self.generator)
        self.cursor = 0
        self._order_here: torch.Tensor | None = None  # this epoch's order on the device: one copy per epoch

    def next(self) -> torch.Tensor:
        if self.cursor + self.batch_size > self.order.numel():
            self.order = torch.randperm(self.order.numel(), generator=self.generator)
            self.cursor, self._order_here = 0, None
        start, self.cursor = self.cursor, self.cursor + self.batch_size
        if self.mapped is not None:
            idx = self.order[start : self.cursor]
            batch = self.gather_mapped(idx.numpy()).to(self.device, non_blocking=True)
        else:
            if self._order_here is None:
                self._order_here = self.order.to(self.device)
            batch = self.images[self._order_here[start : self.cursor]]
        return batch.float().mul_(self.scale).add_(self.offset)

    def gather_mapped(self, idx: np.ndarray) -> torch.Tensor:
        """Rows `idx` of the map, read in file order (fewer seeks), returned in `idx` order."""
        ordered = np.sort(idx)
        rows = self.mapped[ordered]
        return torch.from_numpy(rows[np.searchsorted(ordered, idx)])

    def state(self) -> SamplerState:
        return SamplerState(self.order.clone(), self.cursor, self.generator.get_state())

    def load_state(self, state: SamplerState) -> None:
        self.order, self.cursor, self._order_here = state.order.clone(), state.cursor, None
        self.generator.set_state(state.generator)
