"""What one evaluation pass costs: cold and warm, each part's share, and the previous KID and
precision/recall in the same run.

One generator (the `dcgan` preset's G, freshly initialised: the cost does not depend on training),
`--samples` generated images against `--reference` real ones, the metrics of a CPU study.

- cold: the process cache (`PROCESS`: extractor, reference features, radii, KID's reference sums)
  cleared and an empty cache directory, as a worker's first evaluation;
- warm: everything kept, as every later evaluation of the same seed;
- before: warm, with KID by torch-fidelity's numpy loop and precision/recall as ganbench made it
  before (two distance matrices, `kthvalue` radii); generation and extraction are today's (the
  one-channel extraction is not undone);
- shares: each part timed alone, warm, on the pass's own inputs (generation, feature extraction, FID,
  KID, precision/recall, modes), as a share of their sum.

Rounds are interleaved, so drifts in machine load hit every variant alike; medians are printed.

    python benchmarks/eval_cost.py [--metrics fid_fmnist,kid_fmnist,prc_fmnist,modes_fmnist]
                                   [--samples 5000] [--reference 10000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ganbench.hacks import resolve
from ganbench.metrics import backend
from ganbench.metrics.backend import FidelityGenerator
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
    """The pass as it was: torch-fidelity's KID, two-matrix precision/recall."""
    saved = backend.kid, backend.precision_recall
    backend.kid, backend.precision_recall = _fidelity_kid, _two_matrix_precision_recall
    try:
        yield
    finally:
        backend.kid, backend.precision_recall = saved


def clock(work: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = work()
    return time.perf_counter() - start, value


def part_times(gen: FidelityGenerator, names, reference_data, samples: int) -> dict[str, float]:
    """Seconds of each part of a warm pass, timed alone on the pass's own inputs."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    from ganbench.metrics.extractors import FmnistFeatureExtractor

    rng = np.random.RandomState(0)
    latents = [torch.from_numpy(rng.rand(min(EVAL_BATCH, samples - s), gen.z_size) * 2 - 1).float()
               for s in range(0, samples, EVAL_BATCH)]
    times: dict[str, float] = {}
    times["generation"], images = clock(lambda: torch.cat([gen(z)[:, :1] for z in latents]).expand(-1, 3, -1, -1))
    extractor = FmnistFeatureExtractor("ganbench-fmnist", ["features", "logits"])
    real = reference_data[0].expand(-1, 3, -1, -1)

    def features_of(batch_images):
        with torch.no_grad():
            parts = [extractor(batch_images[s:s + EVAL_BATCH]) for s in range(0, len(batch_images), EVAL_BATCH)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    times["features"], (generated, logits) = clock(lambda: features_of(images))
    reference, _ = features_of(real)
    stats_real = fid_features_to_statistics(reference)
    times["fid"], _ = clock(lambda: fid_statistics_to_metric(fid_features_to_statistics(generated), stats_real, False))
    settings = KidSettings(100, 1000, 0)
    real_sums = reference_sums(reference, len(generated), settings)
    times["kid"], _ = clock(lambda: kid(generated, reference, settings, real_sums))
    radii = reference_radii(reference, 3, 10_000)
    times["prc"], _ = clock(lambda: precision_recall(generated, reference, radii, 3, 10_000))
    times["modes"], _ = clock(lambda: mode_coverage_from_logits(logits, reference_data[1]))
    times["kid (torch-fidelity)"], _ = clock(lambda: _fidelity_kid(generated, reference, settings))
    times["prc (two matrices)"], _ = clock(lambda: _two_matrix_precision_recall(generated, reference, radii, 3, 10_000))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", default="fid_fmnist,kid_fmnist,prc_fmnist,modes_fmnist")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--reference", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    names = parse_metrics(args.metrics)
    cfg, _ = resolve("dcgan", overrides={"device": "cpu", "eval_reference_samples": args.reference})
    torch.manual_seed(0)
    gen = FidelityGenerator(build_models(cfg)[0], cfg)
    reference = Reference.for_config(cfg)
    reference_data = reference.load()
    print(f"metrics={','.join(names)} generated={args.samples} reference={len(reference_data[0])} "
          f"threads={torch.get_num_threads()} repeats={args.repeats}")

    def one_pass(cache: str) -> float:
        os.environ["XDG_CACHE_HOME"] = cache  # where torch-fidelity caches the reference statistics
        return clock(lambda: evaluate(gen, names, reference, samples=args.samples, reference_data=reference_data))[0]

    timings: dict[str, list[float]] = {"cold": [], "warm": [], "before": []}
    with tempfile.TemporaryDirectory() as warm_cache, tempfile.TemporaryDirectory() as cold_root:
        one_pass(warm_cache)  # prime
        for i in range(args.repeats):
            PROCESS.clear()  # nothing kept in the process: extractor, reference features, radii, KID sums
            timings["cold"].append(one_pass(os.path.join(cold_root, str(i))))
            one_pass(warm_cache)  # re-prime the process for the warm variants
            timings["warm"].append(one_pass(warm_cache))
            with previous_path():
                timings["before"].append(one_pass(warm_cache))
    for name, runs in timings.items():
        print(f"{name:<7} {statistics.median(runs):6.2f} s per pass   (runs: {', '.join(f'{x:.2f}' for x in runs)})")
    print(f"warm vs before: {statistics.median(timings['before']) / statistics.median(timings['warm']):.2f}x faster")
    parts = [part_times(gen, names, reference_data, args.samples) for _ in range(args.repeats)]
    medians = {name: statistics.median(p[name] for p in parts) for name in parts[0]}
    ours = ("generation", "features", "fid", "kid", "prc", "modes")
    total = sum(medians[name] for name in ours)
    print(f"parts of a warm pass (each timed alone; sum {total:.2f} s):")
    for name in ours:
        print(f"  {name:<11} {medians[name]:6.3f} s  {100 * medians[name] / total:5.1f} %")
    for name in ("kid (torch-fidelity)", "prc (two matrices)"):
        print(f"  before: {name:<21} {medians[name]:6.3f} s")


if __name__ == "__main__":
    main()
