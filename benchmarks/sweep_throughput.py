"""Runs/hour of the sweep executor's default vs the same runs one after another in one process.

The same suite — short `dcgan` runs on real Fashion-MNIST, evaluation off — is trained
twice in this run: by `ganbench run`'s default local executor (one single-threaded worker
process per core) and sequentially in this process with every core's threads. Both write
real run directories (in a temporary folder); the losses of the two are compared per run
(they agree up to float summation order: 1 vs all threads) to show both did the same work.

    python benchmarks/sweep_throughput.py [--runs 4] [--steps 150]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import textwrap
import time
from pathlib import Path

import torch

from ganbench import rundir
from ganbench.execution.jobs import default_workers
from ganbench.study.suite import load_suite
from ganbench.execution.sweep import run_suite
from ganbench.training.loop import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4, help="runs in the suite (seeds of one arm)")
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(textwrap.dedent(f"""
            name: bench
            dataset: fashion-mnist
            preset: dcgan
            design: arms
            arms: {{dcgan: {{}}}}
            seeds: {args.runs}
            steps: {args.steps}
            base: {{sample_every: 0, checkpoint_every: 0, metrics: none}}
        """))
        suite = load_suite(path, Path(tmp) / "executor")
        workers = default_workers(["cpu"])
        start = time.perf_counter()
        run_suite(suite, workers=workers, devices=["cpu"])
        executor_s = time.perf_counter() - start

        torch.set_num_threads(os.cpu_count() or 1)
        start = time.perf_counter()
        for run in suite.runs:
            train(run.config.replace(device="cpu"), Path(tmp) / "sequential" / run.run_id)
        sequential_s = time.perf_counter() - start

        for run in suite.runs:
            a = rundir.read_jsonl(suite.run_dirs()[run.run_id] / "stats.jsonl")
            b = rundir.read_jsonl(Path(tmp) / "sequential" / run.run_id / "stats.jsonl")
            same = [(r["loss_d"], r["loss_g"]) for r in a] == [(r["loss_d"], r["loss_g"]) for r in b]
            print(f"run {run.run_id} seed {run.seed}: losses {'identical' if same else 'differ in the last bits (thread count changes float sums)'}")
    per_hour = lambda seconds: 3600 * args.runs / seconds  # noqa: E731
    print(f"{args.runs} runs × {args.steps} steps, dcgan preset, {os.cpu_count()} cores")
    print(f"executor default ({workers} workers × 1 thread)   {executor_s:7.1f} s   {per_hour(executor_s):7.1f} runs/hour")
    print(f"sequential, one process ({os.cpu_count()} threads)    {sequential_s:7.1f} s   "
          f"{per_hour(sequential_s):7.1f} runs/hour")
    print(f"ratio executor / sequential: {sequential_s / executor_s:.2f}x")


if __name__ == "__main__":
    main()
