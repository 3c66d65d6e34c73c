"""Seconds per dcgan training step in fp32 and in bf16 autocast on this CPU, and their ratio.

The two are timed in interleaved rounds in this process (fp32, bf16, fp32, bf16, …: a machine whose
load changes meanwhile slows both alike), one run alone at 1 thread (a sweep's setting), on fake
data with the `dcgan` preset at 28 px, batch 128 — what `ganbench run` would train. The CPU is
named, with what torch says it can do: bf16 is fast only with AMX or AVX512-BF16.

    python benchmarks/precision_cost.py [--rounds 3] [--steps 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ganbench.data.datasets import fake_images
from ganbench.devices import cpu_description
from ganbench.hacks import resolve
from ganbench.training.single import GanTrainer


def step_seconds(precision: str, steps: int) -> float:
    """Median seconds of `steps` timed steps after 2 warm-up steps, one fresh trainer."""
    cfg = resolve("dcgan", [], {"device": "cpu", "precision": precision, "metrics": "none"})[0]
    images, _ = fake_images("train", 256, cfg.image_size, cfg.channels)
    trainer = GanTrainer(cfg, images, torch.device("cpu"))
    for step in (1, 2):
        trainer.step(step).tolist()
    times = []
    for step in range(3, 3 + steps):
        start = time.perf_counter()
        trainer.step(step).tolist()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_description()}; torch {torch.__version__}, {args.threads} thread(s)")
    ratios = []
    for round_ in range(1, args.rounds + 1):
        fp32, bf16 = step_seconds("fp32", args.steps), step_seconds("bf16", args.steps)
        ratios.append(bf16 / fp32)
        print(f"round {round_}: fp32 {fp32:.3f} s/step, bf16 {bf16:.3f} s/step, bf16/fp32 = {bf16 / fp32:.2f}×")
    print(f"bf16 / fp32 step time: median {statistics.median(ratios):.2f}× over {args.rounds} rounds "
          f"(range {min(ratios):.2f}–{max(ratios):.2f}×)")


if __name__ == "__main__":
    main()
