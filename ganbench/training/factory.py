"""The trainer of a group of runs: `GanTrainer` for one, `FusedTrainer` for several of one fusion key.

Apart from the loop, so that what only needs a trainer (step timing in `compute.py`, the
benchmarks) does not import the loop that records compute.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ganbench.config import TrainConfig
from ganbench.training.protocol import Trainer
from ganbench.training.single import GanTrainer


def make_trainer(cfgs: Sequence[TrainConfig], images: Any, device: torch.device) -> Trainer:
    """The trainer of runs of one fusion key: GanTrainer for one, FusedTrainer for several."""
    if len(cfgs) == 1:
        return GanTrainer(cfgs[0], images, device)
    from ganbench.training.fused import FusedTrainer  # torch.func and CUDA graphs load only for groups

    return FusedTrainer(cfgs, images, device)
