"""The disk a suite will use: what each run keeps (its checkpoint, overwritten at every checkpoint
step; its sample grids; its logs) and what the sweep writes in all (every checkpoint write).

A checkpoint's size comes from the networks' layer plan (`architecture.layer_sizes`, no torch): the
bytes of every tensor the run's trainer state holds (`GanTrainer.state_dict`: both networks, G's
average when kept, spectral-norm vectors, the optimisers' learning rates, the data order, three
random-stream states, the statistics accumulator), Adam's two moments per parameter from the first
step on, and torch.save's cost per tensor and per file — fitted on the 122 preset × hack structures
(311 B and 598 B; every one within 0.02 % of a real `torch.save`, tested). The data order adds 8 bytes
per training image (int64), which `data_limit` bounds when set (Fashion-MNIST's 60 000 images: 0.48
MB). Grids are counted as raw RGB (PNG is smaller) and log rows at the sizes `results/quick` holds
(≈ 320 B per stats row, ≈ 750 B per metric row).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from ganbench.architecture import Sized, layer_sizes
from ganbench.cadence import count_due
from ganbench.config import KNOBS, TrainConfig
from ganbench.run_records import STAT_NAMES

STATS_ROW_BYTES, METRIC_ROW_BYTES = 320, 750
ADAM_ENTRY_BYTES = 1500  # pickled per-parameter Adam entry (step tensor, keys, storage records); measured
TENSOR_OVERHEAD_BYTES, FILE_OVERHEAD_BYTES = 312, 600  # torch.save beyond the tensors' bytes (fitted, see above)
RNG_STATE_BYTES = 5056  # a CPU torch.Generator's state: the data order's, the latent noise's, dropout's


def _network_state(layers: Sequence[Sized], spectral_norm: bool) -> tuple[int, int]:
    """(tensors, bytes) of a network's state_dict."""
    tensors = sum(len(layer.params) + len(layer.buffers) + len(layer.int_buffers) for layer in layers)
    nbytes = sum(4 * (sum(layer.params) + sum(layer.buffers)) + 8 * sum(layer.int_buffers) for layer in layers)
    if spectral_norm:  # each normalised weight keeps its power-iteration vectors u and v as buffers
        vectors = [layer.spectral for layer in layers if layer.spectral]
        tensors, nbytes = tensors + 2 * len(vectors), nbytes + 4 * sum(u + v for u, v in vectors)
    return tensors, nbytes


def checkpoint_bytes(cfg: TrainConfig) -> int:
    """Bytes of one checkpoint of this run, from its layer plan (no torch)."""
    g_layers, d_layers = layer_sizes(cfg)
    g_tensors, g_bytes = _network_state(g_layers, False)
    d_tensors, d_bytes = _network_state(d_layers, cfg.spectral_norm)
    copies_of_g = 2 if cfg.g_ema else 1
    # the two learning rates (float64), the data order of one batch, three random streams, the accumulator
    tensors = copies_of_g * g_tensors + d_tensors + 2 + 1 + 3 + 1
    nbytes = copies_of_g * g_bytes + d_bytes + 2 * 8 + 8 * cfg.batch_size + 3 * RNG_STATE_BYTES + 4 * len(STAT_NAMES)
    # Adam's moments exist from the first step on (an untrained optimiser saves none): two tensors the
    # size of each parameter, and a step counter with each.
    moments = sum(2 * 4 * size + ADAM_ENTRY_BYTES for layer in (*g_layers, *d_layers) for size in layer.params)
    return (nbytes + TENSOR_OVERHEAD_BYTES * tensors + FILE_OVERHEAD_BYTES + moments
            + 8 * max(cfg.data_limit - cfg.batch_size, 0))


def run_disk(cfg: TrainConfig, evaluations: int) -> dict[str, int]:
    """{kept, written} bytes of one run."""
    ckpt = checkpoint_bytes(cfg)
    writes, grids = count_due(cfg.checkpoint_every, cfg.steps), count_due(cfg.sample_every, cfg.steps)
    nrow = math.isqrt(cfg.sample_grid)
    grid_bytes = (nrow * (cfg.image_size + 2) + 2) ** 2 * 3
    logs = count_due(cfg.log_every, cfg.steps) * STATS_ROW_BYTES + evaluations * METRIC_ROW_BYTES
    return {"kept": ckpt + grids * grid_bytes + logs, "written": writes * ckpt + grids * grid_bytes + logs}


def suite_disk(cfgs: Sequence[TrainConfig], metric_rows_per_run: Sequence[int]) -> dict[str, Any]:
    """The whole suite's disk: kept at the end, written over the sweep, and the largest checkpoint.
    Runs that differ only in their seed use the same bytes: each such config is sized once."""
    sized: dict[tuple[Any, ...], tuple[dict[str, int], int]] = {}
    per_run = []
    for cfg, rows in zip(cfgs, metric_rows_per_run, strict=True):
        key = (tuple(getattr(cfg, k) for k in KNOBS if k != "seed"), rows)
        if key not in sized:
            sized[key] = run_disk(cfg, rows), checkpoint_bytes(cfg)
        per_run.append(sized[key])
    return {"kept_bytes": sum(r["kept"] for r, _ in per_run), "written_bytes": sum(r["written"] for r, _ in per_run),
            "runs": len(per_run), "largest_checkpoint_bytes": max((ckpt for _, ckpt in sized.values()), default=0)}


def format_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
