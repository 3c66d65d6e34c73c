"""Everything a lent GPU should measure, in one command that fits one 600-s device call: its parts are
capped at 480 s in all, each in its own process, each saved as it ends.

1. the selftest's parts (`ganbench.selftest`): env (30 s), smoke (90 s: correctness first — graph =
   eager, frozen runs, resume, no host sync), structures (90 s: every hacks.yaml structure captured and
   replayed), engine (120 s: run-steps/s at K = 16…128 × fp32/bf16 against the dense ceiling, with
   `cudnn.benchmark` on as the sweep's workers run), eval (90 s: a group's evaluation at hacks.yaml's own
   settings on a worker's one thread, in pieces, and the device metric path against torch-fidelity);
2. sweep (60 s): `ganbench run` end to end on 32 dcgan runs × 300 steps (workers, run directories,
   checkpoints; evaluation off: part 1 measures it);
3. projection (no device time): hacks.yaml's real jobs (`make_jobs` at the default workers and group
   size) × the step times measured at those K, plus its evaluations × the measured per-run pass.

Writes `<out>/gpu_window.json` and `<out>/gpu_window.md` after every part (the selftest's own files in
`<out>/selftest/`).

    python benchmarks/gpu_window.py --out gpu-figures             # on the GPU
    python benchmarks/gpu_window.py --out /tmp/gw --dry-run       # a CPU, toy sizes (the tests run this)

The GPU machine has no internet: `benchmarks/gpu_kit.sh DIR` prepares what it needs.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ganbench.files import write_json
from ganbench.selftest.runner import markdown as selftest_markdown
from ganbench.selftest.runner import run_selftest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark scripts

CAPS = {"env": 30, "smoke": 90, "structures": 90, "engine": 120, "eval": 90, "sweep": 60}  # seconds: 480 in all
DRY_CAPS = {"sweep": 150}  # a CPU's toy sweep (the selftest's toy parts keep their own timeouts)


def part_sweep(device: str, dry_run: bool, cap: float, data_root: str | None) -> dict[str, Any]:
    """`ganbench run` of `runs` dcgan runs in a subprocess, its wall time and run-steps/s."""
    from gpu_sweep import write_suite  # a sibling script (benchmarks/ is on sys.path: see the imports)

    from ganbench import rundir

    runs, steps = (2, 10) if dry_run else (32, 300)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_suite(Path(tmp), "dcgan", runs, steps)  # benchmarks/gpu_sweep.py's dcgan suite, evaluation off
        command = [sys.executable, "-m", "ganbench", "run", str(path), "--device", device, "--no-selftest",
                   "--results-root", str(Path(tmp) / "results")] + (["--data-root", data_root] if data_root else [])
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=cap)
            code, tail = done.returncode, (done.stdout + done.stderr)[-1500:]
        except subprocess.TimeoutExpired as stop:
            code, tail = None, f"stopped at its cap of {cap:g} s; {str(stop.stdout or '')[-1000:]}"
        wall = time.perf_counter() - start
        statuses = [rundir.read_json(p)["status"] for p in (Path(tmp) / "results" / "dcgan" / "runs").glob("*/status.json")]
    completed = statuses.count("completed")
    return {"runs": runs, "steps": steps, "completed": completed, "exit_code": code, "wall_s": round(wall, 1),
            "run_steps_per_s_end_to_end": round(completed * steps / wall, 1),
            "includes": "interpreter and worker start-up, data decoding, step timing, training, checkpoints",
            "output_tail": tail}


def _rate_at(k: int, rates: dict[int, float]) -> float:
    """Run-steps/s at group size k: measured, else interpolated in log K between the measured sizes."""
    if k in rates:
        return rates[k]
    sizes = sorted(rates)
    low = max([s for s in sizes if s < k], default=sizes[0])
    high = min([s for s in sizes if s > k], default=sizes[-1])
    if low == high:
        return rates[low]
    w = (math.log(k) - math.log(low)) / (math.log(high) - math.log(low))
    return rates[low] + w * (rates[high] - rates[low])


def project(suite_path: Path, engine_rows: list[dict[str, Any]], per_run_pass_s: float, device: str) -> dict[str, Any]:
    """The suite's hours on this device: its jobs as `ganbench run` would make them, each trained at the
    run-steps/s measured at its group size (dcgan's structure stands for all), on one GPU at a time
    (`costs.GPU_CONCURRENCY`), plus every evaluation at the measured per-run pass."""
    from collections import Counter

    from ganbench.config import fusion_key
    from ganbench.execution.costs import GPU_CONCURRENCY, evaluations_per_run
    from ganbench.execution.jobs import RunState, default_workers, make_jobs
    from ganbench.execution.sweep import MAX_FUSED_CAP
    from ganbench.study.suite import load_suite

    with tempfile.TemporaryDirectory() as tmp:
        suite = load_suite(suite_path, Path(tmp))  # pure: reads the YAML
        workers = default_workers(["cuda"])
        sizes = Counter(key for key in (fusion_key(r.config) for r in suite.runs) if key is not None)
        k = int(min(MAX_FUSED_CAP, -(-max(sizes.values()) // workers)))  # auto_max_fused's rule, memory aside
        jobs = make_jobs([RunState(run, Path(tmp) / run.run_id) for run in suite.runs], k)
    rates = {r["K"]: r["stacked"]["run_steps_per_s"] for r in engine_rows
             if r["precision"] == "fp32" and isinstance(r.get("stacked"), dict)}
    if not rates:
        return {"unavailable": "the engine part measured no fp32 rate"}
    train_s = sum(job.runs[0][0].config.steps * len(job.runs) / _rate_at(len(job.runs), rates) for job in jobs)
    train_s /= GPU_CONCURRENCY
    evaluations = sum(evaluations_per_run(run.config) for run in suite.runs)
    eval_s = evaluations * per_run_pass_s
    shapes = Counter(len(job.runs) for job in jobs)
    return {"runs": len(suite.runs), "jobs": dict(sorted(shapes.items())), "workers": workers, "max_fused": k,
            "train_h": round(train_s / 3600, 2), "evaluations": evaluations, "eval_h": round(eval_s / 3600, 2),
            "total_h": round((train_s + eval_s) / 3600, 2), "device": device,
            "method": "each job at the fp32 run-steps/s measured (or interpolated in log K) at its group size for "
                      "dcgan's structure, one job at a time per GPU; evaluations at the measured per-run pass "
                      "(a group's pass divided by its runs), one at a time; start-up and data decoding excluded"}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# GPU window on {result['device']}" + (" (dry run: toy sizes, not figures)" if result["dry_run"] else ""),
             ""]
    if "selftest" in result:
        lines += selftest_markdown(result["selftest"]).splitlines()[1:] + [""]
    for name in ("sweep", "projection"):
        if name in result:
            lines += [f"## {name}", "", "```", json.dumps(result[name], indent=1, default=str), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="folder for gpu_window.json and gpu_window.md")
    parser.add_argument("--dry-run", action="store_true", help="a CPU, toy sizes: checks the script end to end")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --dry-run")
    parser.add_argument("--suite", type=Path, default=Path("suites/hacks.yaml"))
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    device = args.device or ("cpu" if args.dry_run else "cuda")
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"device": device, "dry_run": args.dry_run, "caps_s": CAPS, "seconds": {}}

    def save() -> None:
        write_json(args.out / "gpu_window.json", json.loads(json.dumps(result, default=str)))
        (args.out / "gpu_window.md").write_text(markdown(result))

    def saved_part(part: str, part_result: dict[str, Any]) -> None:
        result["seconds"][part] = part_result["seconds"]
        result["selftest"] = json.loads((args.out / "selftest" / "selftest.json").read_text())
        save()
        print(f"{part}: {part_result['status']} in {part_result['seconds']} s", flush=True)

    summary = run_selftest(device, ["env", "smoke", "structures", "engine", "eval"], args.out / "selftest", args.suite,
                           args.data_root, toy=args.dry_run, on_part=saved_part,
                           timeouts=None if args.dry_run else CAPS)
    start = time.perf_counter()
    cap = DRY_CAPS["sweep"] if args.dry_run else CAPS["sweep"]
    result["sweep"] = part_sweep(device, args.dry_run, cap, args.data_root)
    result["seconds"]["sweep"] = round(time.perf_counter() - start, 1)
    save()
    engine = summary["parts"]["engine"]["figures"].get("engine (run-steps/s)", [])
    per_run = summary["parts"]["eval"]["figures"].get("per run and pass (s)")
    result["projection"] = (project(args.suite, engine, per_run, device) if engine and per_run is not None
                            else {"unavailable": "the engine or eval part measured nothing"})
    if args.dry_run:
        result["projection"]["note"] = "a dry run: toy sizes on a CPU, not a figure"
    save()
    print(f"wrote {args.out / 'gpu_window.json'} and {args.out / 'gpu_window.md'}")
    ok = summary["passed"] and result["sweep"]["completed"] == result["sweep"]["runs"] and "total_h" in result["projection"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
