"""Seconds per evaluation with cached reference statistics vs recomputing them every time.

One generator (the `dcgan` preset's G, freshly initialised: the cost does not depend on
training), one reference set, the same metrics; "cold" points the cache at an empty
directory before every evaluation, "warm" reuses one primed cache. Measured in the same run.

    python benchmarks/eval_cost.py [--metrics fid_fmnist,kid_fmnist,prc_fmnist] [--samples 5000]
                                   [--reference 10000] [--repeats 3]
    python benchmarks/eval_cost.py --metrics fid --samples 100 --reference 100   # Inception: slow on CPU
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from ganbench.hacks import resolve
from ganbench.metrics.extractors import resolve_inception_weights
from ganbench.metrics.backend import FidelityGenerator
from ganbench.metrics.fidelity import evaluate
from ganbench.metrics.reference import Reference
from ganbench.metrics.registry import METRICS, parse_metrics
from ganbench.models import build_models


def timed_evaluation(gen, names, reference, reference_data, samples: int, cache: str, weights: str | None) -> float:
    os.environ["XDG_CACHE_HOME"] = cache  # where the reference statistics are cached
    start = time.perf_counter()
    evaluate(gen, names, reference, samples=samples, reference_data=reference_data, inception_weights=weights)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", default="fid_fmnist,kid_fmnist,prc_fmnist")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--reference", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    names = parse_metrics(args.metrics)
    cfg, _ = resolve("dcgan", overrides={"device": "cpu", "eval_reference_samples": args.reference})
    torch.manual_seed(0)
    net_g, _ = build_models(cfg)
    gen = FidelityGenerator(net_g, cfg)
    reference = Reference.for_config(cfg)
    reference_data = reference.load()
    # Resolved before the cache directory is swapped: the imported weights live in the user's cache.
    weights = resolve_inception_weights().path if any(METRICS[n].extractor == "inception" for n in names) else None
    print(f"metrics={','.join(names)} generated={args.samples} reference={len(reference_data[0])} "
          f"threads={torch.get_num_threads()} repeats={args.repeats}")
    with tempfile.TemporaryDirectory() as warm_cache, tempfile.TemporaryDirectory() as cold_root:
        timed_evaluation(gen, names, reference, reference_data, args.samples, warm_cache, weights)  # prime
        cold, warm = [], []
        for i in range(args.repeats):  # interleaved, so drifts in machine load hit both alike
            cold.append(timed_evaluation(gen, names, reference, reference_data, args.samples,
                                         os.path.join(cold_root, str(i)), weights))
            warm.append(timed_evaluation(gen, names, reference, reference_data, args.samples, warm_cache, weights))
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"recomputing reference statistics  {c:8.2f} s per evaluation  (runs: {', '.join(f'{x:.2f}' for x in cold)})")
    print(f"cached reference statistics       {w:8.2f} s per evaluation  (runs: {', '.join(f'{x:.2f}' for x in warm)})")
    print(f"speed-up from the cache: {c / w:.2f}x")


if __name__ == "__main__":
    main()
