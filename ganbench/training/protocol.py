"""What the training loop needs from a trainer: K ≥ 1 runs advanced in lock step.

A trainer owns networks, optimisers and every random stream of its runs; the loop
(`ganbench.training.loop`) owns cadence: logging, evaluation, samples, checkpoints and
the run directories, with one recorder per run. `GanTrainer` (training/single.py) is the
K = 1 case; a fused trainer that stacks K runs into one network implements the same
protocol, so the loop, the run files and the checkpoints are the same for both.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import torch

from ganbench.config import TrainConfig
from ganbench.run_records import STAT_NAMES  # one row of per-step statistics (built and read by name)


def stat_rows(**stats: torch.Tensor) -> torch.Tensor:
    """K × len(STAT_NAMES) from the named statistics (each a scalar for one run, or K values): one
    tensor, so the loop reads a whole interval with one host synchronisation."""
    if set(stats) != set(STAT_NAMES):
        raise TypeError(f"a trainer's step gives exactly {STAT_NAMES}; got {sorted(stats)}")
    rows = torch.stack([stats[name].reshape(-1) for name in STAT_NAMES], 1)
    return rows.float().detach()


class Diverged(RuntimeError):
    """A loss or statistic became NaN or infinite."""


class Trainer(Protocol):
    configs: Sequence[TrainConfig]  # one per run, in the order of step()'s rows
    device: torch.device

    def step(self, step: int) -> torch.Tensor:
        """Train iteration `step` (1-based) of every active run; K × len(STAT_NAMES), on the device,
        with no host synchronisation (the loop reads it once per log interval)."""

    def learning_rates(self, k: int) -> tuple[float, float]:
        """(lr_d, lr_g) that run k used in its last step."""

    def samples(self, k: int, noise: torch.Tensor) -> torch.Tensor:
        """Run k's G(noise) in eval mode, mapped to [0, 1]."""

    def generator(self, k: int) -> torch.nn.Module:
        """Run k's generator as a module (for evaluation)."""

    def state_dict(self, k: int) -> dict[str, Any]:
        """Run k's checkpoint: the same format whichever trainer wrote it."""

    def load_state_dict(self, k: int, state: dict[str, Any]) -> None:
        ...

    def stop(self, k: int) -> None:
        """Run k stops updating (finished or diverged); the others go on."""
