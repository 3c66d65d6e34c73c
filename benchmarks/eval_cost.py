"""What one evaluation pass costs: cold and warm, each part's share, against the pass as it was, in the same run.

One generator (the `dcgan` preset's G, freshly initialised: the cost does not depend on training),
`--samples` generated images against `--reference` real ones, the metrics of a CPU study.

Each variant runs in a fresh process (rounds alternate between them, so drifts in machine load hit
both alike; medians are printed):

- now, cold: the process's first pass with an empty feature cache directory — weights read, the
  extractor built, the reference features extracted, KID's reference sums and the radii computed;
- now, warm: later passes of the same seed (what every evaluation after a worker's first costs),
  at torch's thread count and at 1 thread (a worker of a 2-worker sweep on 2 cores);
- before: warm, as ganbench evaluated before these changes: the fmnist network as it trains (torch's
  max-pool after each ReLU), freed memory handed back to the kernel (`GANBENCH_KEEP_FREED_MEMORY=0`),
  KID by torch-fidelity's numpy loop, precision/recall from two whole distance matrices;
- shares: each part of a warm pass timed alone on the pass's own inputs (generation, feature extraction,
  FID, KID, precision/recall, modes), as a share of their sum.

    python benchmarks/eval_cost.py [--metrics fid_fmnist,kid_fmnist,prc_fmnist,modes_fmnist]
                                   [--samples 5000] [--reference 10000] [--rounds 3] [--passes 3]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ganbench.hacks import resolve
from ganbench.metrics import backend
from ganbench.metrics.backend import FidelityGenerator
from ganbench.metrics.classifier import FashionCNN
from ganbench.metrics.fidelity import EVAL_BATCH, evaluate
from ganbench.metrics.kid import KidSettings, kid, reference_sums
from ganbench.metrics.modes import mode_coverage_from_logits
from ganbench.metrics.prc import precision_recall, reference_radii
from ganbench.metrics.reference import Reference
from ganbench.metrics.registry import parse_metrics
from ganbench.models import build_models
from ganbench.process_cache import PROCESS


def _two_matrix_precision_recall(generated, reference, radii_reference, neighborhood, batch_size):
    """ganbench's precision/recall before this change, verbatim: the distances made once per orientation,
    blocks joined by `torch.cat`, radii by `kthvalue` (the reference radii kept, as then)."""
    def cdist_part(a, b):
        return torch.cat([torch.cdist(a, part) for part in b.split(batch_size)], dim=1)

    radii_generated = torch.cat([cdist_part(b, generated).kthvalue(neighborhood + 1).values
                                 for b in generated.split(batch_size)])

    def covered(points, centres, radii):
        return torch.cat([(cdist_part(b, centres) <= radii).any(dim=1).float()
                          for b in points.split(batch_size)]).mean().item()

    recall, precision = covered(reference, generated, radii_generated), covered(generated, reference, radii_reference)
    return {"precision": precision, "recall": recall, "f_score": 2 * precision * recall / max(1e-5, precision + recall)}


def _fidelity_kid(generated, reference, settings, real_sums=None):
    from torch_fidelity.metric_kid import kid_features_to_metric

    return kid_features_to_metric(generated, reference, kid_subsets=settings.subsets, kid_subset_size=settings.size,
                                  rng_seed=settings.seed, verbose=False)


@contextlib.contextmanager
def previous_path() -> Iterator[None]:
    """The pass as it was: the fmnist network as it trains, torch-fidelity's KID, two-matrix precision/recall
    (freed memory handed back is the child process's environment)."""
    saved = backend.kid, backend.precision_recall, FashionCNN.for_inference
    backend.kid, backend.precision_recall = _fidelity_kid, _two_matrix_precision_recall
    FashionCNN.for_inference = lambda net: net
    PROCESS.clear("extractor")
    try:
        yield
    finally:
        backend.kid, backend.precision_recall, FashionCNN.for_inference = saved
        PROCESS.clear("extractor")


def clock(work: Callable[[], Any], repeats: int = 1) -> tuple[float, Any]:
    """The median seconds of `repeats` calls of `work`, and its last value."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = work()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), value


def part_times(gen: FidelityGenerator, names, reference_data, samples: int, repeats: int) -> dict[str, float]:
    """Seconds of each part of a warm pass, timed alone on the pass's own inputs (median of `repeats`)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    from ganbench.metrics.extractors import FmnistFeatureExtractor

    clock_part = functools.partial(clock, repeats=repeats)

    rng = np.random.RandomState(0)
    latents = [torch.from_numpy(rng.rand(min(EVAL_BATCH, samples - s), gen.z_size) * 2 - 1).float()
               for s in range(0, samples, EVAL_BATCH)]
    times: dict[str, float] = {}
    times["generation"], images = clock_part(lambda: torch.cat([gen(z)[:, :1] for z in latents]).expand(-1, 3, -1, -1))
    extractor = FmnistFeatureExtractor("ganbench-fmnist", ["features", "logits"])
    real = reference_data[0].expand(-1, 3, -1, -1)

    def features_of(batch_images):
        with torch.no_grad():
            parts = [extractor(batch_images[s:s + EVAL_BATCH]) for s in range(0, len(batch_images), EVAL_BATCH)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    times["features"], (generated, logits) = clock_part(lambda: features_of(images))
    reference, _ = features_of(real)
    stats_real = fid_features_to_statistics(reference)
    times["fid"], _ = clock_part(lambda: fid_statistics_to_metric(fid_features_to_statistics(generated), stats_real, False))
    settings = KidSettings(100, 1000, 0)
    real_sums = reference_sums(reference, len(generated), settings)
    times["kid"], _ = clock_part(lambda: kid(generated, reference, settings, real_sums))
    radii = reference_radii(reference, 3, 10_000)
    times["prc"], _ = clock_part(lambda: precision_recall(generated, reference, radii, 3, 10_000))
    times["modes"], _ = clock_part(lambda: mode_coverage_from_logits(logits, reference_data[1]))
    times["kid (torch-fidelity)"], _ = clock_part(lambda: _fidelity_kid(generated, reference, settings))
    times["prc (two matrices)"], _ = clock_part(lambda: _two_matrix_precision_recall(generated, reference, radii, 3, 10_000))
    return times


def measure(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    """One variant's timings, in this (fresh) process."""
    names = parse_metrics(args.metrics)
    cfg, _ = resolve("dcgan", overrides={"device": "cpu", "eval_reference_samples": args.reference})
    torch.manual_seed(0)
    gen = FidelityGenerator(build_models(cfg)[0], cfg)
    reference = Reference.for_config(cfg)
    reference_data = reference.load()
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "reference": len(reference_data[0])}

    def one_pass() -> float:
        return clock(lambda: evaluate(gen, names, reference, samples=args.samples, reference_data=reference_data))[0]

    with tempfile.TemporaryDirectory() as cache, (previous_path() if variant == "before" else contextlib.nullcontext()):
        os.environ["XDG_CACHE_HOME"] = cache  # an empty feature cache: the first pass is cold
        out["cold"] = one_pass()
        out["warm"] = statistics.median(one_pass() for _ in range(args.passes))
        if variant == "now":
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            out["warm_1_thread"] = statistics.median(one_pass() for _ in range(args.passes))
            torch.set_num_threads(threads)
            out["parts"] = part_times(gen, names, reference_data, args.samples, args.passes)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", default="fid_fmnist,kid_fmnist,prc_fmnist,modes_fmnist")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--reference", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per variant, alternating")
    parser.add_argument("--passes", type=int, default=3, help="warm passes per process (median)")
    parser.add_argument("--variant", choices=("now", "before"), help=argparse.SUPPRESS)  # one child process
    args = parser.parse_args()
    if args.variant:
        print("RESULT=" + json.dumps(measure(args.variant, args)))
        return
    results: dict[str, list[dict[str, Any]]] = {"now": [], "before": []}
    for _ in range(args.rounds):
        for variant in results:
            env = {**os.environ, **({"GANBENCH_KEEP_FREED_MEMORY": "0"} if variant == "before" else {})}
            done = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--variant", variant], env=env,
                                  capture_output=True, text=True, check=True)
            results[variant].append(json.loads(done.stdout.split("RESULT=")[-1]))
    now, before = results["now"], results["before"]
    print(f"metrics={args.metrics} generated={args.samples} reference={now[0]['reference']} "
          f"threads={now[0]['threads']} rounds={args.rounds} warm passes per round={args.passes}")
    medians = {"now, cold": [r["cold"] for r in now], "now, warm": [r["warm"] for r in now],
               "now, warm, 1 thread": [r["warm_1_thread"] for r in now], "before, warm": [r["warm"] for r in before],
               "before, cold": [r["cold"] for r in before]}
    for name, runs in medians.items():
        print(f"{name:<20} {statistics.median(runs):6.2f} s per pass   (rounds: {', '.join(f'{x:.2f}' for x in runs)})")
    print(f"warm now vs before: {statistics.median(medians['before, warm']) / statistics.median(medians['now, warm']):.2f}x faster")
    parts = {name: statistics.median(r["parts"][name] for r in now) for name in now[0]["parts"]}
    ours = ("generation", "features", "fid", "kid", "prc", "modes")
    total = sum(parts[name] for name in ours)
    print(f"parts of a warm pass (each timed alone; sum {total:.2f} s):")
    for name in ours:
        print(f"  {name:<11} {parts[name]:6.3f} s  {100 * parts[name] / total:5.1f} %")
    for name in ("kid (torch-fidelity)", "prc (two matrices)"):
        print(f"  before: {name:<21} {parts[name]:6.3f} s")


if __name__ == "__main__":
    main()
