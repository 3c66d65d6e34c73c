"""The trainer of a group of runs: `GanTrainer` for one, `FusedTrainer` for several of one fusion key.

Apart from the loop, so that what only needs a trainer (step timing in `compute.py`, the
benchmarks, the probes of `trainer_on_fake_data`) does not import the loop that records compute.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ganbench.config import TrainConfig, fusion_key
from ganbench.training.protocol import Trainer
from ganbench.training.single import GanTrainer


def make_trainer(cfgs: Sequence[TrainConfig], images: Any, device: torch.device) -> Trainer:
    """The trainer of runs of one fusion key: FusedTrainer for several; for one, GanTrainer on the CPU
    (its eager step is as fast there, and bit-identical to older versions) and FusedTrainer on a GPU
    whenever the run can fuse, so that a group of one also trains as one CUDA graph (an eager step is
    launch-bound there: ~160 steps/s against ~900 as a graph, measured on an H100 with torch 2.11)."""
    alone = len(cfgs) == 1 and (device.type != "cuda" or fusion_key(cfgs[0]) is None)
    if alone:
        return GanTrainer(cfgs[0], images, device)
    from ganbench.training.fused import FusedTrainer  # torch.func and CUDA graphs load only for groups

    return FusedTrainer(cfgs, images, device)


def trainer_on_fake_data(cfgs: Sequence[TrainConfig], device: torch.device, alone: bool = False) -> Trainer:
    """A throwaway trainer of `cfgs` on fake images of their shape, for what probes a step (timing, FLOP
    counting, memory sizing) and never trains a run: `make_trainer`'s choice, or `GanTrainer` of the first
    run when `alone`. max(256, batch size) images, so a probe's few steps stay within one epoch."""
    from ganbench.data.datasets import fake_images

    first = cfgs[0]
    images, _ = fake_images("train", max(256, first.batch_size), first.image_size, first.channels)
    return GanTrainer(first, images, device) if alone else make_trainer(cfgs, images, device)
