"""The disk a suite will use: what each run keeps (its checkpoint, overwritten at every checkpoint
step; its sample grids; its logs) and what the sweep writes in all (every checkpoint write).

A checkpoint's size is measured, not modelled: the run's own trainer state (`GanTrainer`, the one
checkpoint format) serialised with `torch.save`, once per network structure, with a one-batch data
order — the real order adds 8 bytes per training image (int64), which `data_limit` bounds when set
(Fashion-MNIST's 60 000 images: 0.48 MB). Grids are counted as raw RGB (PNG is smaller) and log rows
at the sizes `results/quick` holds (≈ 320 B per stats row, ≈ 750 B per metric row).
"""

from __future__ import annotations

import io
import math
from typing import Any, Sequence

from ganbench.config import TrainConfig, structure_key
from ganbench.training.resources import PROCESS

STATS_ROW_BYTES, METRIC_ROW_BYTES = 320, 750
ADAM_ENTRY_BYTES = 1500  # pickled per-parameter Adam entry (step tensor, keys, storage records); measured


def checkpoint_bytes(cfg: TrainConfig) -> int:
    """Bytes of one checkpoint of this run (measured once per structure and process)."""
    def measure() -> int:
        import torch

        from ganbench.training.protocol import STAT_NAMES
        from ganbench.training.single import GanTrainer

        images = torch.zeros(cfg.batch_size, cfg.channels, cfg.image_size, cfg.image_size, dtype=torch.uint8)
        rng = torch.get_rng_state()  # building a trainer seeds the global RNG: leave it as it was
        try:
            trainer = GanTrainer(cfg.replace(device="cpu"), images, torch.device("cpu"))
            buffer = io.BytesIO()
            torch.save({"step": 0, "count": 0, "acc": torch.zeros(len(STAT_NAMES)), **trainer.state_dict()}, buffer)
            params = [p for net in (trainer.net_g, trainer.net_d) for p in net.parameters()]
        finally:
            torch.set_rng_state(rng)
        # Adam's moments exist from the first step on (an untrained optimiser saves none): two tensors
        # the size of each parameter, and a step counter with each.
        moments = sum(2 * p.numel() * p.element_size() + ADAM_ENTRY_BYTES for p in params)
        return buffer.getbuffer().nbytes + moments + 8 * max(cfg.data_limit - cfg.batch_size, 0)

    return PROCESS.get("checkpoint_bytes", structure_key(cfg) + (cfg.data_limit,), measure, keep=256)


def run_disk(cfg: TrainConfig, evaluations: int) -> dict[str, int]:
    """{kept, written} bytes of one run."""
    ckpt = checkpoint_bytes(cfg)
    writes = (cfg.steps // cfg.checkpoint_every if cfg.checkpoint_every else 0) + (
        not cfg.checkpoint_every or cfg.steps % cfg.checkpoint_every != 0)
    grids = (cfg.steps // cfg.sample_every if cfg.sample_every else 0) + (
        not cfg.sample_every or cfg.steps % cfg.sample_every != 0)
    nrow = math.isqrt(cfg.sample_grid)
    grid_bytes = (nrow * (cfg.image_size + 2) + 2) ** 2 * 3
    logs = math.ceil(cfg.steps / cfg.log_every) * STATS_ROW_BYTES + evaluations * METRIC_ROW_BYTES
    return {"kept": ckpt + grids * grid_bytes + logs, "written": writes * ckpt + grids * grid_bytes + logs}


def suite_disk(cfgs: Sequence[TrainConfig], metric_rows_per_run: Sequence[int]) -> dict[str, Any]:
    """The whole suite's disk: kept at the end, written over the sweep, and the largest checkpoint."""
    per_run = [run_disk(c, n) for c, n in zip(cfgs, metric_rows_per_run, strict=True)]
    return {"kept_bytes": sum(r["kept"] for r in per_run), "written_bytes": sum(r["written"] for r in per_run),
            "runs": len(per_run), "largest_checkpoint_bytes": max((checkpoint_bytes(c) for c in cfgs), default=0)}


def format_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
