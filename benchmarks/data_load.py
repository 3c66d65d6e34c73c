"""Dataset load cost: decoding photos once into ganbench's uint8 cache vs decoding every epoch.

A CelebA-like folder of synthetic 178×218 JPEGs is written to a temporary directory. In
this one run the script measures, for the 64-px centre-crop of seed 002:

  baseline   one epoch of torchvision ImageFolder + Resize + CenterCrop + ToTensor through
             a DataLoader (what a per-epoch pipeline pays every epoch)
  miss       ganbench's first load: decode in threads + write the cache
  hit        ganbench's second load, fully into memory
  mapped     ganbench's second load as a memory map (the path above the memory budget)

and prints seconds, ratios against the baseline, the resident-memory growth of each load,
and the batch-gather throughput in memory vs memory-mapped. Each load runs in a fresh
process so that resident memory is measured from the same starting point.

    python benchmarks/data_load.py [--images 2000] [--batch 128]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
import numpy as np, torch
from ganbench.data.cache import load_split, resident_mb
from ganbench.data.formats import Preprocess
from ganbench.data.sampler import BatchSampler
root, budget, batch = sys.argv[1], (None if sys.argv[2] == "none" else float(sys.argv[2])), int(sys.argv[3])
before = resident_mb()
loaded = load_split("celeba", "train", Preprocess(64, 3, "center_crop"), root, memory_budget_mb=budget)
after = resident_mb()
sampler = BatchSampler(loaded.images, batch, (-1.0, 1.0), torch.device("cpu"), 0)
start = time.perf_counter()
for _ in range(50):
    sampler.next()
gather = 50 / (time.perf_counter() - start)
print(json.dumps({"load_s": loaded.info["load_s"], "cache": loaded.info["cache"], "mode": loaded.info["mode"],
                  "rss_growth_mb": None if before is None else round(after - before, 1),
                  "dataset_mb": loaded.info["dataset_mb"], "batches_per_s": gather}))
"""


def write_photos(root: Path, n: int) -> None:
    import numpy as np
    from PIL import Image

    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:218, 0:178]
    for i in range(n):
        a, b, c = rng.uniform(0.2, 1.0, 3)
        rgb = np.stack([xx * a * 1.4, yy * b, (xx + yy) * c * 0.6], -1) + rng.normal(0, 8, (218, 178, 3))
        Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(folder / f"{i + 1:06d}.jpg", quality=90)


def torchvision_epoch(root: Path, batch: int) -> float:
    import torch
    from torchvision import datasets, transforms

    dataset = datasets.ImageFolder(str(root / "celeba"), transform=transforms.Compose([
        transforms.Resize(64), transforms.CenterCrop(64), transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=2)
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def child(root: Path, cache: Path, budget: str, batch: int) -> dict:
    env = {**os.environ, "GANBENCH_DATASET_CACHE": str(cache)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(root), budget, str(batch)], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "data", Path(tmp) / "cache"
        write_photos(root, args.images)
        baseline = torchvision_epoch(root, args.batch)
        miss = child(root, cache, "none", args.batch)
        hit = child(root, cache, "none", args.batch)
        mapped = child(root, cache, "0", args.batch)
    print(f"{args.images} CelebA-like JPEGs (178×218) → 64×64 centre crops; cpu count {os.cpu_count()}")
    print(f"  baseline: torchvision ImageFolder epoch (2 workers)  {baseline:8.2f} s   1.00×")
    for name, row in (("ganbench first load (decode+cache)", miss), ("ganbench cache hit, in memory", hit),
                      ("ganbench cache hit, memory-mapped", mapped)):
        print(f"  {name:<37} {row['load_s']:8.3f} s  {baseline / max(row['load_s'], 1e-9):7.1f}×   "
              f"[{row['cache']}, {row['mode']}, dataset {row['dataset_mb']} MiB, "
              f"resident +{row['rss_growth_mb']} MiB, {row['batches_per_s']:.0f} batches/s]")
    print(f"  batch gather, memory-mapped vs in memory: {mapped['batches_per_s'] / hit['batches_per_s']:.2f}×")


if __name__ == "__main__":
    main()
