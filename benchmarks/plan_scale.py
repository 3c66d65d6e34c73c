"""What `ganbench plan --no-estimate` costs for a large suite: wall time and peak memory of the
command (a child process each), for a 10-hack full factorial (1 024 arms) at `--seeds` seeds
(default 98: 100 352 runs), against the same suite at one seed (1 024 runs) measured in the same run.

    python benchmarks/plan_scale.py [--seeds 98]

Issue 36 asks ≤ 30 s and ≤ 2 GB for 100 000 runs on 2 cores; suites above `study.suite.MAX_RUNS`
runs are refused before anything is expanded.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HACKS = ["strided_conv", "leaky_relu", "batch_norm", "gaussian_init", "adam_beta1_05", "tanh_output",
         "no_fc_hidden", "nonsaturating_loss", "separate_batches", "label_smoothing"]


def suite_text(seeds: int) -> str:
    return (f"name: big{seeds}\ndataset: fashion-mnist\npreset: dcgan\ndesign: {{type: full_factorial}}\n"
            f"hacks: [{', '.join(HACKS)}]\nseeds: {seeds}\nsteps: 1000\n")


def measure(folder: Path, seeds: int) -> tuple[float, float]:
    """(seconds, peak MB) of one `plan --no-estimate` in a fresh process."""
    path = folder / f"big{seeds}.yaml"
    path.write_text(suite_text(seeds))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ganbench.cli", "plan", str(path), "--no-estimate",
                           "--results-root", str(folder / "results")], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"plan failed ({done.returncode}): {done.stderr[-2000:]}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child so far
    return seconds, peak_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=98)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        small_s, small_mb = measure(folder, 1)  # first: the peak below is then the larger one's
        big_s, big_mb = measure(folder, args.seeds)
    runs = 1024 * args.seeds
    print(f"1 024 runs:  {small_s:6.1f} s, peak {small_mb:6.0f} MB")
    print(f"{runs:,} runs: {big_s:6.1f} s, peak {big_mb:6.0f} MB   "
          f"({big_s / small_s:.1f}× the time for {args.seeds}× the runs)")


if __name__ == "__main__":
    main()
