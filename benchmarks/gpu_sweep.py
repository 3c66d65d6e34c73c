"""Run-steps/s of `ganbench run`: one run per worker process vs fused groups, and the ceiling.

Two suites on real Fashion-MNIST, evaluation off, are trained end to end through
`run_suite` (worker processes, run directories, checkpoints) in this one run:

- `dcgan`: one arm of the dcgan preset, `--runs` seeds;
- `mixed`: arms that differ in label and optimiser hacks (smoothing, noisy labels, β1, lr,
  the G loss) × seeds: numeric knobs only, so every run can join one fused group.

Each suite is trained (a) with one run per worker process (`--max-fused 1`) at each worker
count of `--baseline-workers`, and (b) with the fused engine (`--max-fused`, default: sized
from free memory on a GPU). The ceiling is one network of the same shape trained on a
K·batch batch (what perfect fusion of K runs could cost), in one CUDA graph on a GPU. The
table prints run-steps/s, runs/hour and each ratio against the best process-per-run setting
measured here.

    python benchmarks/gpu_sweep.py [--runs 32] [--steps 400] [--device auto]
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from pathlib import Path

import torch

from ganbench import devices
from ganbench.execution.sweep import auto_max_fused, run_suite
from ganbench.hacks import resolve
from ganbench.study.suite import load_suite

MIXED_ARMS = {
    "plain": "{}", "smooth": "{hacks: [label_smoothing]}", "noisy": "{hacks: [noisy_labels]}",
    "b09": "{set: {beta1: 0.9}}", "lr1e4": "{set: {lr_d: 1.0e-4, lr_g: 1.0e-4}}",
    "minimax": "{set: {g_loss: minimax}}", "smooth_noisy": "{hacks: [label_smoothing, noisy_labels]}",
    "ttur": "{hacks: [ttur]}",
}


def write_suite(folder: Path, name: str, runs: int, steps: int) -> Path:
    if name == "dcgan":
        arms, seeds = "  a: {}\n", runs
    else:
        arms, seeds = "".join(f"  {a}: {spec}\n" for a, spec in MIXED_ARMS.items()), max(1, runs // len(MIXED_ARMS))
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        dataset: fashion-mnist
        preset: dcgan
        design: {{type: arms, reference: {next(iter(MIXED_ARMS)) if name != 'dcgan' else 'a'}}}
        seeds: {seeds}
        steps: {steps}
        base: {{log_every: 100, sample_every: 0, checkpoint_every: {steps}}}
        evaluation: {{metrics: none}}
        arms:
        """) + arms)
    return path


def sweep_rate(path: Path, root: Path, device_list: list[str], workers: int, max_fused: int,
               data_root: str | None) -> tuple[float, int]:
    """(run-steps/s of a whole `run_suite`, runs trained)."""
    suite = load_suite(path, root)
    start = time.perf_counter()
    states = run_suite(suite, workers=workers, devices=device_list, data_root=data_root, max_fused=max_fused)
    wall = time.perf_counter() - start
    bad = [s for s in states if s.status != "completed"]
    if bad:
        raise RuntimeError(f"{len(bad)} runs did not complete: {bad[0].status}: {bad[0].error}")
    return sum(s.run.config.steps for s in states) / wall, len(states)


def ceiling_rate(k: int, device: torch.device, steps: int, data_root: str | None) -> float:
    """K × steps/s of ONE dcgan network trained on a K·batch batch (graph-captured on a GPU)."""
    from ganbench.training.fused import FusedTrainer
    from ganbench.training.resources import Resources

    cfg, _ = resolve("dcgan", [], {"batch_size": 128 * k, "device": str(device), "metrics": "none"})
    images, _ = Resources().training_images(cfg, device, data_root)
    trainer = FusedTrainer([cfg], images, device)
    for step in range(1, 4):
        trainer.step(step)
    trainer.step(4).tolist()
    start = time.perf_counter()
    for step in range(5, 5 + steps):
        trainer.step(step)
    trainer.step(5 + steps).tolist()
    return k * (steps + 1) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=None, help="runs per suite (default 32 on a GPU, 4 on CPU)")
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default 400 on a GPU, 20 on CPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--baseline-workers", default=None,
                        help="comma-separated worker counts of the process-per-run path (default 4,16 on a GPU, 2 on CPU)")
    parser.add_argument("--fused-workers", type=int, default=None, help="workers of the fused engine (default: run's)")
    parser.add_argument("--max-fused", type=int, default=None, help="runs per fused group (default: sized from memory)")
    parser.add_argument("--suites", default="dcgan,mixed")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    device_list = devices.expand(args.device)
    gpu = device_list[0] != "cpu"
    runs, steps = args.runs or (32 if gpu else 4), args.steps or (400 if gpu else 20)
    baselines = [int(w) for w in (args.baseline_workers or ("4,16" if gpu else "2")).split(",")]
    print(f"device {device_list[0]}" + (f" ({torch.cuda.get_device_name(0)})" if gpu else "") +
          f", {runs} runs × {steps} steps per suite, evaluation off")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.suites.split(","):
            path = write_suite(Path(tmp), name, runs, steps)
            results = []
            for workers in baselines:
                rate, n = sweep_rate(path, Path(tmp) / f"{name}-procs{workers}", device_list, workers, 1, args.data_root)
                results.append((f"process per run, {workers} workers", rate, n))
            suite = load_suite(path, Path(tmp) / "probe")
            fused_workers = args.fused_workers or (2 * len(device_list) if gpu else 1)  # training only: 2 suffice
            k = args.max_fused or auto_max_fused(list(suite.runs), device_list, fused_workers)
            rate, n = sweep_rate(path, Path(tmp) / f"{name}-fused", device_list, fused_workers, k, args.data_root)
            results.append((f"fused groups of ≤ {k}, {fused_workers} workers", rate, n))
            best = max(r for label, r, _ in results if label.startswith("process"))
            rows += [(name, label, rate, n, rate / best) for label, rate, n in results]
        ceiling_k = args.max_fused or 20
        ceiling = ceiling_rate(ceiling_k, torch.device(device_list[0]), max(20, steps // 4), args.data_root)
    print(f"\n{'suite':8} {'engine':38} {'run-steps/s':>12} {'runs/hour':>10} {'× best per-run':>15}")
    for name, label, rate, n, ratio in rows:
        runs_hour = rate / steps * 3600
        print(f"{name:8} {label:38} {rate:12.0f} {runs_hour:10.0f} {ratio:15.2f}")
    print(f"{'ceiling':8} {f'one network on a {ceiling_k}·128 batch':38} {ceiling:12.0f}")


if __name__ == "__main__":
    main()
