"""What a process keeps between the runs it trains and evaluates: every per-process cache.

A persistent worker holds one `Resources` for its whole life, so a dataset is decoded once
per machine (the on-disk cache) and copied to a device once per process, not once per run;
the metric side's extractors, reference sets and noise floors are in `process_cache.PROCESS`.
`train()` without one makes a fresh, empty one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.config import TrainConfig

if TYPE_CHECKING:  # numpy and torch load with the first training images
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


