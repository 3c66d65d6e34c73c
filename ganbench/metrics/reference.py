"""Reference sets: the real images generated ones are compared with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ganbench.config import TrainConfig
from ganbench.data.cache import load_split
from ganbench.data.datasets import get_dataset
from ganbench.data.formats import Preprocess
from ganbench.metrics.registry import MetricError
from ganbench.process_cache import PROCESS


@dataclass(frozen=True)
class Reference:
    """Real images that generated ones are compared with, at the generator's size and channels."""

    dataset: str
    split: str
    samples: int  # 0 = the whole split
    side: int
    channels: int
    data_root: str | None = None
    resize: str = "center_crop"

    @classmethod
    def for_config(cls, cfg: TrainConfig, data_root: str | Path | None = None) -> "Reference":
        return cls(cfg.dataset, cfg.eval_split, cfg.eval_reference_samples, cfg.image_size, cfg.channels,
                   str(data_root) if data_root else None, cfg.resize)

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels); a seeded subset when `samples` is below the split's size."""
        get_dataset(self.dataset)  # unknown names fail here, with a suggestion
        loaded = load_split(self.dataset, self.split, Preprocess(self.side, self.channels, self.resize),
                            self.data_root, memory_budget_mb=None)
        images, labels = loaded.images, torch.from_numpy(loaded.labels)
        if self.samples > len(images):
            raise MetricError(f"{self.samples} reference samples asked for, but {self.dataset} split "
                              f"'{self.split}' holds only {len(images)}; lower eval_reference_samples")
        if 0 < self.samples < len(images):
            keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[: self.samples].sort()[0]
            images, labels = images[keep], labels[keep]
        return images, labels


def load_reference(reference: Reference) -> tuple[torch.Tensor, torch.Tensor]:
    """`reference.load()`, kept for the life of the process: a persistent worker loads each
    reference set once for all the runs it evaluates."""
    return PROCESS.get("reference", reference, reference.load)
