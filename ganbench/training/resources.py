"""What a process keeps between the runs it trains and evaluates: every per-process cache.

A persistent worker holds one `Resources` for its whole life, so a dataset is decoded once
per machine (the on-disk cache) and copied to a device once per process, not once per run;
`PROCESS` holds the metric side's extractors, reference sets and noise floors.
`train()` without one makes a fresh, empty one.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Hashable, TypeVar

from ganbench.config import TrainConfig

if TYPE_CHECKING:  # numpy and torch load with the first training images, so the process cache costs no import
    import numpy as np
    import torch


class Resources:
    def __init__(self) -> None:
        self._images: dict[tuple, tuple[torch.Tensor | np.ndarray, dict[str, Any]]] = {}

    def training_images(self, cfg: TrainConfig, device: torch.device,
                        data_root: str | os.PathLike | None) -> tuple[torch.Tensor | np.ndarray, dict[str, Any]]:
        """The run's training images (a device tensor, or a host memory map over the memory budget)
        and the data info recorded in status.json (`process_cache`: whether this process had them)."""
        import numpy as np

        from ganbench.data.sampler import load_images, preprocess

        key = (cfg.dataset, cfg.data_split, preprocess(cfg), cfg.data_limit, cfg.data_memory_mb,
               str(Path(data_root).resolve()) if data_root else None, str(device))
        if key in self._images:
            images, info = self._images[key]
            return images, {**info, "process_cache": "hit"}
        loaded = load_images(cfg, data_root)
        images = loaded.images if isinstance(loaded.images, np.ndarray) else loaded.images.to(device)
        self._images[key] = (images, dict(loaded.info))
        return images, {**loaded.info, "process_cache": "miss"}


T = TypeVar("T")


class ProcessCache:
    """Every other thing a process builds once and reuses, by store: `'extractor'` (torch-fidelity
    feature extractors, weights read once per device), `'reference'` (reference images),
    `'reference_features'` (their features per extractor), `'noise_floor'` (uniform-noise FIDs).
    Each store keeps its `keep` most recent entries (least recently used go first)."""

    def __init__(self) -> None:
        self._stores: dict[str, OrderedDict[Hashable, Any]] = {}

    def get(self, store: str, key: Hashable, build: Callable[[], T], keep: int = 4) -> T:
        entries = self._stores.setdefault(store, OrderedDict())
        if key in entries:
            entries.move_to_end(key)
            return entries[key]
        value = build()
        entries[key] = value
        while len(entries) > keep:
            entries.popitem(last=False)
        return value

    def entries(self, store: str) -> int:
        return len(self._stores.get(store, ()))

    def clear(self, store: str | None = None) -> None:
        if store is None:
            self._stores.clear()
        else:
            self._stores.pop(store, None)


PROCESS = ProcessCache()  # the one per-process cache of the metric side (the trainer's images are in `Resources`)
