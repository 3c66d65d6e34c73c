"""What a training step costs: FLOPs, parameters, and seconds measured with nothing else running.

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` over one whole training
step (every D and G update, forward and backward) of the run's own networks at its batch
size; the counter counts matrix multiplications and convolutions (2 FLOPs per
multiply-add), the operations that dominate a DCGAN step. A step's FLOPs depend only on the
structure knobs, so they are counted once per structure. Wall time under contention is not
compute (the same run took 85 s or 305 s on one GPU depending on how many runs shared it),
so step seconds are timed alone, the way `ganbench plan` times them.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from ganbench.config import TrainConfig, structure_key, training_only
from ganbench.process_cache import PROCESS

FLOP_METHOD = ("torch.utils.flop_counter.FlopCounterMode over one training step (all D and G updates, forward and "
               "backward; matmuls and convolutions, 2 FLOPs per multiply-add)")


def step_compute(cfg: TrainConfig) -> dict[str, Any]:
    """{flops_per_step, params_g, params_d, flop_method} of a run (counted on the CPU), counted once per
    network structure: runs that differ only in numbers (three learning rates) share one count."""
    # Counted in fp32: the counter reads shapes, not dtypes, so bf16's count is the same number (every
    # registered hack, tested), and a bf16 step on a CPU without native bf16 is 8-15x slower to run.
    counted = training_only(cfg, device="cpu", seed=0, precision="fp32")
    return dict(PROCESS.get("flops", structure_key(cfg), lambda: _counted(counted), keep=64))


def _counted(cfg: TrainConfig) -> tuple[tuple[str, Any], ...]:
    from ganbench.training.factory import trainer_on_fake_data

    rng_state = torch.get_rng_state()  # counting must not move the caller's random streams
    try:
        trainer = trainer_on_fake_data([cfg], torch.device("cpu"), alone=True)
        with FlopCounterMode(display=False) as counter:
            trainer.step(1)
        params_g = sum(p.numel() for p in trainer.net_g.parameters())
        params_d = sum(p.numel() for p in trainer.net_d.parameters())
    finally:
        torch.set_rng_state(rng_state)
    return (("flops_per_step", int(counter.get_total_flops())), ("params_g", params_g), ("params_d", params_d),
            ("flop_method", FLOP_METHOD))


def _block_seconds(cfgs: Sequence[TrainConfig], device: str, threads: int, steps: int, warmup: int,
                   repeats: int) -> list[float]:
    """Seconds per step of `repeats` timed blocks of `steps` steps each, after `warmup` untimed steps
    (allocations, cuDNN autotuning, CUDA graph capture), of `cfgs` trained together on fake data."""
    from ganbench.training.factory import trainer_on_fake_data

    cfgs = [training_only(cfg, device=device, threads=threads) for cfg in cfgs]
    torch.set_num_threads(threads)
    trainer = trainer_on_fake_data(cfgs, torch.device(device))
    for step in range(1, warmup + 1):
        trainer.step(step).tolist()
    step, blocks = warmup, []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step += 1
            out = trainer.step(step)
        out.tolist()
        blocks.append((time.perf_counter() - start) / steps)
    return blocks


def time_step(cfgs: Sequence[TrainConfig], device: str, threads: int, steps: int = 3, warmup: int = 2,
              repeats: int = 5) -> float:
    """Seconds per training step of `cfgs` trained together (one run: GanTrainer; several of
    one fusion key: FusedTrainer) on this machine, on fake data, with `threads` CPU threads: the
    median of `repeats` blocks of `steps` steps (one stray block, slow or fast, does not move it;
    the former "fastest of 2 blocks of 3" put arms of one structure 4.4–11.3 s/step apart on a
    loaded machine). What `ganbench plan` and `ganbench run` both time."""
    return statistics.median(_block_seconds(cfgs, device, threads, steps, warmup, repeats))


TIME_STEP_METHOD = "one run alone on fake data: after 2 warm-up steps, the median of 5 blocks of 3 steps"


def time_step_robustly(cfg: TrainConfig, device: str, threads: int, steps: int = 10, warmup: int = 3,
                       repeats: int = 9) -> dict[str, Any]:
    """A step time that a budget can rest on: the median of `repeats` blocks (robust to a stray slow
    block either way), with their relative spread, so that a suite says how repeatable its steps are.
    (Measured on the 2-core development machine, dcgan at 28 px: five such timings agreed within 7 %,
    five of the former min-of-2×3 within 21 %; the noise there is the machine's, so the spread is kept.)"""
    from ganbench import devices

    devices.resolve(device)  # a budget timed on a missing GPU fails here, saying so
    blocks = sorted(_block_seconds([cfg], device, threads, steps, warmup, repeats))
    median = statistics.median(blocks)
    return {"seconds_per_step": median, "spread": round((blocks[-1] - blocks[0]) / median, 4),
            "method": f"median of {repeats} blocks of {steps} steps after {warmup} warm-up steps, one run alone on "
                      f"fake data, {threads} thread(s) on {device}; spread = (slowest - fastest) / median"}
