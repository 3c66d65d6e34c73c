"""Everything a lent GPU should measure, in one command (≤ 10 minutes on an H100/H200).

Writes `<out>/gpu_window.json` (every figure, with the machine and the settings) and
`<out>/gpu_window.md` (the tables for a note or the README). Each part is timed apart; one that
fails is recorded as "unavailable: <reason>" and the others still run.

1. engine: the fused trainer (stacked layers, flat Adam, one CUDA graph per step) at K runs, the
   first vmap engine at the same K, and the dense ceiling (one network on a K·128 batch) measured
   in the same run, in run-steps/s (synthetic images: the data path is not what is timed);
2. sweep: `run_suite` end to end (workers, run directories, checkpoints) on 32 dcgan runs and on a
   mixed suite of numeric arms (benchmarks/gpu_sweep.py's suites), evaluation off;
3. slice: one seed × every arm of suites/hacks.yaml × `--slice-steps` steps with its evaluations,
   projected to the whole suite (its run-steps and evaluations);
4. evaluator: evaluation passes/s at hacks.yaml's settings, and the numbers of ganbench's path next
   to `torch_fidelity.calculate_metrics` on the same generator.

    python benchmarks/gpu_window.py --out gpu-figures               # on the GPU
    python benchmarks/gpu_window.py --out /tmp/gw --dry-run         # CPU, toy sizes (CI runs this)

The GPU machine has no internet: carry torch-fidelity's wheel and Fashion-MNIST's .gz files
(parts 2–4 read them from --data-root, default the usual search path).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from ganbench.hacks import resolve

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark scripts


def _synthetic(k: int, device: torch.device, engine: str, steps: int, batch: int = 128, **changes: Any) -> float:
    """Run-steps/s of one FusedTrainer of K dcgan runs (K = 1 with batch K·128: the dense ceiling)."""
    from ganbench.training.fused import FusedTrainer

    cfgs = [resolve("dcgan", [], {"batch_size": batch, "device": str(device), "metrics": "none", "seed": s, **changes})[0]
            for s in range(k)]
    images = torch.rand(max(4 * batch, 1024), 1, 28, 28, device=device)
    trainer = FusedTrainer(cfgs, images, device, engine=engine)
    for step in range(1, 4):  # warm-up and (on CUDA) the graph capture
        trainer.step(step)
    trainer.step(4).tolist()  # synchronises
    start = time.perf_counter()
    for step in range(5, 5 + steps):
        trainer.step(step)
    trainer.step(5 + steps).tolist()
    return k * (steps + 1) / (time.perf_counter() - start)


def part_engine(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    rows = []
    for k in args.ks:
        for precision in args.precisions:
            ceiling = _synthetic(1, device, "stacked", args.engine_steps, batch=128 * k, precision=precision)
            row = {"K": k, "precision": precision, "dense_ceiling": ceiling}
            for engine in ("stacked", "vmap"):
                try:
                    row[engine] = _synthetic(k, device, engine, args.engine_steps, precision=precision)
                except Exception as err:  # noqa: BLE001 - recorded, the other engines still run
                    row[engine] = f"unavailable: {type(err).__name__}: {err}"
            if isinstance(row["stacked"], float):
                row["stacked_vs_ceiling"] = row["stacked"] / ceiling
            rows.append(row)
            print(f"engine K={k} {precision}: {row}", flush=True)
    return rows


def part_sweep(args: argparse.Namespace, device: torch.device, tmp: Path) -> list[dict[str, Any]]:
    from gpu_sweep import sweep_rate, write_suite  # benchmarks/ is on sys.path (see the top)

    rows = []
    for name in args.sweep_suites:
        path = write_suite(tmp, name, args.runs, args.sweep_steps)
        rate, n = sweep_rate(path, tmp / f"sweep-{name}", [str(device)], args.workers, args.max_fused, args.data_root)
        rows.append({"suite": name, "runs": n, "steps": args.sweep_steps, "run_steps_per_s": rate})
        print(f"sweep {name}: {rows[-1]}", flush=True)
    return rows


def slice_suite(source: Path, out: Path, steps: int, toy: bool) -> tuple[Path, dict[str, Any]]:
    """hacks.yaml cut to one seed and `steps` steps (a dry run: three arms), with what projects the
    slice's time to the whole suite."""
    from ganbench.study.suite import load_suite

    whole = load_suite(source, out / "whole")  # pure: reads the YAML, writes nothing
    data = yaml.safe_load(source.read_text())
    data = {**data, "seeds": 1, "steps": steps, "name": f"{data['name']}-slice"}
    data.pop("budget", None)
    evaluation = dict(data.get("evaluation") or {})
    if toy:  # dry run: three arms (one with dropout, fused now), few samples, one evaluation
        for key in ("designs", "hacks"):
            data.pop(key, None)
        data.update(preset="dcgan", design={"type": "arms", "reference": "dcgan"},
                    arms={"dcgan": {}, "smooth": {"hacks": ["label_smoothing"]}, "dropout": {"hacks": ["d_dropout"]}})
        evaluation.update({"samples": 64, "every": steps, "reference_samples": 256})
        data["base"] = {**data.get("base", {}), "eval_draws": 1, "sample_every": 0}
    data["evaluation"] = evaluation
    path = out / "hacks-slice.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, {"whole_runs": len(whole.runs), "whole_run_steps": sum(r.config.steps for r in whole.runs)}


def part_slice(args: argparse.Namespace, device: torch.device, tmp: Path) -> dict[str, Any]:
    from ganbench.execution.sweep import run_suite
    from ganbench.study.suite import load_suite

    path, whole = slice_suite(Path(args.suite), tmp, args.slice_steps, args.dry_run)
    suite = load_suite(path, tmp / "slice")
    start = time.perf_counter()
    states = run_suite(suite, workers=args.workers, devices=[str(device)], data_root=args.data_root,
                       max_fused=args.max_fused)
    wall = time.perf_counter() - start
    completed = sum(s.status == "completed" for s in states)
    run_steps = sum(s.run.config.steps for s in states)
    factor = whole["whole_run_steps"] / run_steps
    return {"runs": len(states), "completed": completed, "steps": args.slice_steps, "wall_s": wall,
            "run_steps_per_s": run_steps / wall, "projected_whole_suite_h": wall * factor / 3600,
            "projection": f"× {factor:g}: the suite's {whole['whole_runs']} runs and {whole['whole_run_steps']} "
                          f"run-steps over the slice's {run_steps} (evaluations scale with the steps at the "
                          "suite's cadence)" + (" — a dry run: not a figure" if args.dry_run else "")}


def part_evaluator(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    import torch_fidelity

    from ganbench.metrics.backend import FidelityGenerator
    from ganbench.metrics.fidelity import _fidelity_kwargs, checked_weights, evaluate
    from ganbench.metrics.reference import Reference
    from ganbench.models import build_models

    samples = 256 if args.dry_run else 5000
    cfg, _ = resolve("dcgan", [], {"device": str(device), "eval_reference_samples": 512 if args.dry_run else 10_000})
    torch.manual_seed(0)
    net_g = build_models(cfg)[0].to(device)
    reference = Reference.for_config(cfg, args.data_root)
    data = reference.load()
    names = ["fid_fmnist", "kid_fmnist", "prc_fmnist", "modes_fmnist"]
    evaluate(FidelityGenerator(net_g, cfg), names, reference, samples=samples, device=device, reference_data=data)
    passes, start = 3, time.perf_counter()
    for _ in range(passes):
        rows = evaluate(FidelityGenerator(net_g, cfg), names, reference, samples=samples, device=device,
                        reference_data=data)
    seconds = (time.perf_counter() - start) / passes
    ours = {r["metric"]: r["value"] for r in rows}
    fidelity_name, weights = checked_weights("fmnist", False, None)
    kwargs = _fidelity_kwargs(FidelityGenerator(net_g, cfg), samples, data[0], rows[0]["reference_cache_key"],
                              fidelity_name, weights, device, 0, min(1000, samples), {"fid", "kid", "prc"})
    theirs = torch_fidelity.calculate_metrics(**kwargs)
    pairs = {"fid_fmnist": "frechet_inception_distance", "kid_fmnist": "kernel_inception_distance_mean",
             "precision_fmnist": "precision", "recall_fmnist": "recall"}
    differences = {m: abs(ours[m] - theirs[k]) / max(abs(theirs[k]), 1e-12) for m, k in pairs.items()}
    return {"samples": samples, "seconds_per_pass": seconds, "passes_per_s": 1 / seconds,
            "relative_difference_from_torch_fidelity": differences}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# GPU window — {result['machine']['device']}", "", f"{result['machine']}", ""]
    engine = result["parts"].get("engine")
    if isinstance(engine, list):
        lines += ["| K | precision | stacked run-steps/s | vmap run-steps/s | dense ceiling | stacked ÷ ceiling |",
                  "|---|---|---|---|---|---|"]
        for r in engine:
            def fmt(v: Any) -> str:
                return f"{v:.0f}" if isinstance(v, float) else str(v)
            lines.append(f"| {r['K']} | {r['precision']} | {fmt(r['stacked'])} | {fmt(r['vmap'])} | "
                         f"{fmt(r['dense_ceiling'])} | {r.get('stacked_vs_ceiling', float('nan')):.2f} |")
        lines.append("")
    for name in ("sweep", "slice", "evaluator"):
        lines += [f"## {name}", "", "```", json.dumps(result["parts"].get(name), indent=1, default=str), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="folder for gpu_window.json and gpu_window.md")
    parser.add_argument("--dry-run", action="store_true", help="CPU, toy sizes: checks the script end to end")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --dry-run")
    parser.add_argument("--suite", default="suites/hacks.yaml")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--parts", default="engine,sweep,slice,evaluator")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cpu" if args.dry_run else "cuda"))
    toy = args.dry_run
    args.ks, args.precisions = ([2], ["fp32"]) if toy else ([16, 32, 64, 128], ["fp32", "bf16"])
    args.sweep_suites = ("dcgan",) if toy else ("dcgan", "mixed")
    args.engine_steps, args.runs, args.sweep_steps = (2, 2, 4) if toy else (100, 32, 300)
    args.slice_steps, args.workers, args.max_fused = (4, 1, 4) if toy else (1000, 2, 64)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor()})",
               "torch": torch.__version__, "threads": torch.get_num_threads(), "dry_run": toy}
    result: dict[str, Any] = {"machine": machine, "parts": {}, "seconds": {}}
    parts: dict[str, Callable[[], Any]] = {
        "engine": lambda: part_engine(args, device), "sweep": lambda: part_sweep(args, device, tmp),
        "slice": lambda: part_slice(args, device, tmp), "evaluator": lambda: part_evaluator(args, device)}
    failed = 0
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name in args.parts.split(","):
            start = time.perf_counter()
            try:
                result["parts"][name] = parts[name]()
            except Exception as err:  # noqa: BLE001 - one part failing must not lose the others' figures
                failed += 1
                result["parts"][name] = f"unavailable: {type(err).__name__}: {err}"
                traceback.print_exc()
            result["seconds"][name] = round(time.perf_counter() - start, 1)
            (args.out / "gpu_window.json").write_text(json.dumps(result, indent=1, default=str))  # after every part
    (args.out / "gpu_window.md").write_text(markdown(result))
    print(f"wrote {args.out / 'gpu_window.json'} and {args.out / 'gpu_window.md'}"
          + (f"; {failed} part(s) unavailable" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
