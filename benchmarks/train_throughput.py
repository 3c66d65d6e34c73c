"""Images/s of ganbench's trainer vs a faithful pytorch/examples-style DCGAN loop.

Both train the same G and D (the `dcgan` preset's 28 px nets, built by ganbench.models)
on real Fashion-MNIST, with the same batch size, optimiser and device, in this process,
one after the other. The baseline is pytorch/examples/dcgan/main.py's loop: a torchvision
`FashionMNIST` Dataset with `ToTensor` + `Normalize` transforms behind a shuffling
`DataLoader` (its default `--workers 2`, and 0 workers for comparison), real and fake
D passes backpropagated separately, and the fake batch reused for the G step.

    python benchmarks/train_throughput.py [--steps 150] [--device cpu]

Prints images/s of each and the ratio ganbench / baseline (the faster baseline counts),
for ganbench in fp32 (the like-for-like figure) and with its bf16 autocast option.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from ganbench.data.sampler import load_images
from ganbench.data.datasets import DATASETS
from ganbench.hacks import resolve
from ganbench.models import build_models
from ganbench.devices import resolve as resolve_device
from ganbench.training.single import GanTrainer


def torchvision_root(tmp: Path) -> Path:
    """Lay the IDX files out as torchvision's FashionMNIST expects (raw/, uncompressed)."""
    fashion = DATASETS["fashion-mnist"]
    source, raw = fashion.locate(None), tmp / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for path in (p for split in ("train", "test") for p in fashion.sources(source, split)):
        stem = path.name.removesuffix(".gz")
        with (gzip.open(path) if path.suffix == ".gz" else open(path, "rb")) as src, open(raw / stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return tmp


def time_ganbench(cfg, steps: int, warmup: int) -> float:
    device = resolve_device(cfg.device)
    trainer = GanTrainer(cfg, load_images(cfg).images, device)
    for step in range(1, warmup + 1):
        trainer.step(step)
    start = time.perf_counter()
    for step in range(warmup + 1, warmup + steps + 1):
        trainer.step(step)
    trainer.step(warmup + steps + 1).tolist()  # drain queued GPU work before stopping the clock
    return (steps + 1) * cfg.batch_size / (time.perf_counter() - start)


def time_examples_loop(cfg, root: Path, steps: int, warmup: int, workers: int) -> float:
    """pytorch/examples/dcgan's training loop, with logits + BCEWithLogits instead of Sigmoid + BCE."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    dataset = datasets.FashionMNIST(str(root), train=True, download=False, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]))
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, num_workers=workers, drop_last=True,
                        persistent_workers=workers > 0)
    net_g, net_d = (net.to(device) for net in build_models(cfg))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, 0.999))
    opt_g = torch.optim.Adam(net_g.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, 0.999))
    criterion = torch.nn.BCEWithLogitsLoss()
    done, start = 0, 0.0
    while done < warmup + steps:
        for real, _ in loader:
            if done == warmup:
                start = time.perf_counter()
            real = real.to(device)
            b = real.size(0)
            # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
            net_d.zero_grad()
            err_real = criterion(net_d(real), torch.full((b,), 1.0, device=device))
            err_real.backward()
            noise = torch.randn(b, cfg.latent_dim, device=device)
            fake = net_g(noise)
            err_fake = criterion(net_d(fake.detach()), torch.full((b,), 0.0, device=device))
            err_fake.backward()
            opt_d.step()
            # (2) Update G network: maximize log(D(G(z)))
            net_g.zero_grad()
            err_g = criterion(net_d(fake), torch.full((b,), 1.0, device=device))
            err_g.backward()
            opt_g.step()
            done += 1
            if done == warmup + steps:
                break
    err_g.item()  # sync
    return steps * cfg.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    cfg, _ = resolve("dcgan", overrides={"device": args.device, "batch_size": args.batch_size})
    print(f"device={args.device} threads={torch.get_num_threads()} batch={cfg.batch_size} steps={args.steps} "
          f"rounds={args.rounds}; net = dcgan preset (28 px); baseline in fp32, as pytorch/examples")
    rates: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = torchvision_root(Path(tmp))
        # Interleave the contenders so drifts in clock speed or load hit all of them alike.
        for _ in range(args.rounds):
            for workers in (2, 0):
                rates.setdefault(f"examples loop, {workers} workers", []).append(
                    time_examples_loop(cfg, root, args.steps, args.warmup, workers))
            for precision in ("fp32", "bf16"):
                rates.setdefault(f"ganbench trainer, {precision}", []).append(
                    time_ganbench(cfg.replace(precision=precision), args.steps, args.warmup))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    best = max(rate for name, rate in medians.items() if name.startswith("examples"))
    for name, rate in medians.items():
        spread = f"[{min(rates[name]):.0f}–{max(rates[name]):.0f}]"
        print(f"{name:<30s} {rate:8.1f} images/s {spread:>13s}   {rate / best:.2f}x fastest baseline")
    print(f"ratio ganbench (fp32, like for like) / fastest baseline: {medians['ganbench trainer, fp32'] / best:.2f}x")


if __name__ == "__main__":
    main()
