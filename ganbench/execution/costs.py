"""What a suite will cost before it runs: step times (timed once per network structure, kept in
compute.json as they are made), evaluations, worker start-up, and the warning before an expensive
choice; `plan.json` so that `ganbench status` can put the estimate beside the measured time
afterwards, and the `SweepPlan` `ganbench run` prints before its first run.

Training steps are timed by `ganbench.training.compute.time_step` (`estimate_step_seconds`).
An evaluation is timed here, on the chosen device, by running the run's own evaluator on an
untrained generator with a small calibration set (`CALIBRATION` images against as many real
ones): once to build the extractor and the reference features, then the faster of two timed
passes. Its images per
second, scaled to the suite's sample count, give the seconds of one evaluation; the reference
features and the uniform-noise FID are a one-time cost per machine (cached on disk after).
"""

from __future__ import annotations

import atexit
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ganbench import rundir
from ganbench.cadence import count_due
from ganbench.config import TrainConfig
from ganbench.metrics.registry import METRICS, parse_metrics
from ganbench.suitedir import PLAN
from ganbench.process_cache import PROCESS

if TYPE_CHECKING:
    from ganbench.execution.jobs import RunState
    from ganbench.study.suite import Run, Suite

CALIBRATION = {"inception": 64, "fmnist": 500}  # images per timed evaluation, by the costliest extractor


def evaluations_per_run(cfg: TrainConfig, from_step: int = 0) -> int:
    """Evaluator passes a run still makes after `from_step`: one per evaluation step, and
    `eval_draws` at the final one."""
    if not parse_metrics(cfg.metrics, cfg.dataset) or from_step >= cfg.steps:
        return 0
    return count_due(cfg.eval_every, cfg.steps, after=from_step) + cfg.eval_draws - 1


def uses_inception(cfg: TrainConfig) -> bool:
    return any(METRICS[name].extractor == "inception" for name in parse_metrics(cfg.metrics, cfg.dataset))


def _evaluation_key(cfg: TrainConfig) -> tuple:
    return (cfg.dataset, cfg.eval_split, cfg.eval_reference_samples, cfg.image_size, cfg.channels, cfg.resize,
            parse_metrics(cfg.metrics, cfg.dataset), cfg.arch, cfg.inception_weights)


def time_evaluation(cfg: TrainConfig, device: str, data_root: str | None = None) -> dict[str, Any]:
    """{seconds (one evaluation at cfg.eval_samples), one_time_s, images_per_s, method} measured
    here, once per metric setup (runs that differ only in seeds or hacks share it). Inception on a
    CPU is timed on a few images through the extractor alone: there it is the whole cost, and a
    full calibration (reference features, noise floor) would take minutes before the warning
    about that cost could be given."""
    key = (_evaluation_key(cfg), cfg.eval_samples, device, data_root)
    timed = PROCESS.get("evaluation_timing", key, lambda: (
        _timed_inception(cfg, device, data_root) if device == "cpu" and uses_inception(cfg)
        else _timed(cfg, device, data_root)), keep=64)
    return dict(timed)


INCEPTION_TIMED_IMAGES = 8


def _timed_inception(cfg: TrainConfig, device: str, data_root: str | None) -> dict[str, Any]:
    """Inception's images per second here, from one batch of `INCEPTION_TIMED_IMAGES` images at the
    run's size (after an untimed batch of 2), scaled to the run's sample and reference counts."""
    import torch
    from torch_fidelity.utils import create_feature_extractor

    from ganbench.metrics.fidelity import checked_weights
    from ganbench.metrics.reference import Reference, load_reference

    name, weights = checked_weights("inception", False, cfg.inception_weights or None)
    extractor = create_feature_extractor(name, ["2048"], cuda=False, verbose=False,
                                         feature_extractor_weights_path=str(weights.path) if weights.path else None)
    images = torch.randint(0, 256, (INCEPTION_TIMED_IMAGES, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        extractor(images[:2])
        start = time.perf_counter()
        extractor(images)
        rate = INCEPTION_TIMED_IMAGES / (time.perf_counter() - start)
    reference = load_reference(Reference.for_config(cfg, data_root))[0]  # decoded once, shared with training
    references = len(reference) if cfg.eval_reference_samples == 0 else min(cfg.eval_reference_samples, len(reference))
    return {"seconds": cfg.eval_samples / rate, "one_time_s": (references + cfg.eval_samples) / rate,
            "images_per_s": rate, "method": f"Inception features of {INCEPTION_TIMED_IMAGES} images timed on {device} "
                                            f"(the extractor dominates there), scaled to {cfg.eval_samples}"}


def _timed(cfg: TrainConfig, device: str, data_root: str | None) -> dict[str, Any]:
    import torch

    from ganbench.metrics.evaluator import make_evaluator
    from ganbench.metrics.reference import Reference, load_reference
    from ganbench.models import Generator

    samples = cfg.eval_samples
    n = min(samples, CALIBRATION["inception" if uses_inception(cfg) else "fmnist"])
    reference = load_reference(Reference.for_config(cfg, data_root))[0]  # the process's copy, shared with training
    calibration = cfg.replace(eval_samples=n, eval_reference_samples=min(n, len(reference)), eval_draws=1,
                              fid_infinity=False, device=device, eval_protocol="")  # a smaller set: no protocol
    dev = torch.device(device)
    rng_state = torch.get_rng_state()
    try:
        evaluator = make_evaluator(calibration, dev, data_root)
        net_g = Generator(calibration).to(dev)
        evaluator(net_g, 0)  # extractor, calibration reference features, noise floor: not timed
        passes = []
        for _ in range(2):  # the faster of two: anything else running on the machine only adds time
            start = time.perf_counter()
            evaluator(net_g, 0)
            passes.append(time.perf_counter() - start)
        seconds = min(passes)
    finally:
        torch.set_rng_state(rng_state)
    rate = n / seconds
    one_time = (len(reference) if cfg.eval_reference_samples == 0 else cfg.eval_reference_samples) / rate
    one_time += samples / rate  # the uniform-noise FID at the run's sample count
    return {"seconds": samples / rate, "one_time_s": one_time, "images_per_s": rate,
            "method": f"one evaluation of {n} images timed on {device}, scaled to {samples}"}


def worker_startup_seconds() -> float:
    """Seconds for a fresh Python process to import the training stack (what every worker pays), measured
    once per process (started early by `start_timing_worker_startup`, or now)."""
    return _startup_timer().seconds()


def start_timing_worker_startup() -> None:
    """Start the start-up measurement now, in the background, so that its 3-5 s pass beside the step
    timing and data checks that come before the plan instead of after them."""
    _startup_timer()


def _startup_timer() -> _StartupTimer:
    return PROCESS.get("worker_startup", "import", _StartupTimer)


class _StartupTimer:
    """A fresh interpreter importing what a worker imports, timed from its start to its exit (a thread
    stamps the exit, so reading the result later does not lengthen it)."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._process = subprocess.Popen([sys.executable, "-c", "import ganbench.training.loop, "
                                          "ganbench.metrics.fidelity"], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)
        self._ended: float | None = None
        self._stderr: bytes | None = None
        self._waiter = threading.Thread(target=self._wait, name="ganbench-startup-timer", daemon=True)
        self._waiter.start()
        atexit.register(self._stop)  # a command that ends (or fails) before the plan leaves no importer behind

    def _stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()

    def _wait(self) -> None:
        _, self._stderr = self._process.communicate()  # read as it comes: a full pipe would block the child
        self._ended = time.perf_counter()

    def seconds(self) -> float:
        self._waiter.join()
        if self._process.returncode:
            raise subprocess.CalledProcessError(self._process.returncode, self._process.args, stderr=self._stderr)
        assert self._ended is not None
        return self._ended - self._start


def inception_warning(cfg: TrainConfig, device: str, runs: int = 1, data_root: str | None = None) -> str | None:
    """The warning before Inception metrics on a CPU: how long they will take here, and the
    cheaper choices. None when the run evaluates no Inception metric or not on a CPU."""
    if device != "cpu" or not uses_inception(cfg):
        return None
    timing = time_evaluation(cfg, device, data_root)
    evaluations = evaluations_per_run(cfg) * runs
    total = timing["seconds"] * evaluations + timing["one_time_s"]
    inception = [n for n in parse_metrics(cfg.metrics, cfg.dataset) if METRICS[n].extractor == "inception"]
    cheaper = (f"`--set metrics={','.join(n + '_fmnist' for n in inception if n + '_fmnist' in METRICS)}` "
               "(the dataset's own extractor), " if cfg.dataset in ("fashion-mnist", "fake") else "")
    return (f"Inception metrics ({', '.join(inception)}) on the CPU run at about {timing['images_per_s']:.1f} "
            f"images/s here: {evaluations} evaluation(s) of {cfg.eval_samples} images"
            f"{f' over {runs} runs' if runs > 1 else ''} ≈ {format_duration(total)} (including "
            f"{format_duration(timing['one_time_s'])} once for the reference features and the noise floor). Cheaper: "
            f"{cheaper}fewer images for a smoke test (`--set eval_samples=500`), evaluating less often "
            "(`--set eval_every=0`: the last step only), `--set metrics=none`, or a GPU (`--device cuda`).")


def evaluation_warnings(runs: Sequence[Any], device: str, data_root: str | None = None) -> list[str]:
    """One `inception_warning` per distinct metric setup among `runs` (suite runs)."""
    groups: dict[tuple, list[Any]] = {}
    for run in runs:
        groups.setdefault(_evaluation_key(run.config) + (run.config.eval_samples,), []).append(run)
    warnings = (inception_warning(group[0].config, device, len(group), data_root) for group in groups.values())
    return [w for w in warnings if w]


# Runs trained at once on one GPU by the workers that share it, relative to one alone. Timed alone, a
# job has the whole GPU; the 4 workers of a GPU then time-slice it, so their jobs do not finish 4× sooner.
# Not measured yet (no GPU run of several workers has been timed): 1, the conservative assumption.
GPU_CONCURRENCY = 1.0


def parallel_jobs(devices: Sequence[str], workers: int) -> tuple[float, str]:
    """(how many jobs' measured times run at once, said in words): on CPUs each worker has its own core;
    on GPUs the workers share them, so GPU-bound work runs `GPU_CONCURRENCY` per GPU at once."""
    gpus = [d for d in dict.fromkeys(devices) if d != "cpu"]
    if not gpus:
        return float(workers), f"{workers} worker(s) in parallel"
    slots = min(workers, len(gpus)) * GPU_CONCURRENCY
    return slots, (f"{len(gpus)} GPU(s) shared by {workers} worker(s): jobs timed alone on a GPU are not divided by "
                   f"the workers that share it (concurrency {GPU_CONCURRENCY:g} per GPU, assumed, not measured)")


def plan_total(suite: Any, rows: Sequence[dict[str, Any]], devices: Sequence[str], workers: int,
               data_root: str | None = None) -> dict[str, Any]:
    """What `plan` prints: training and evaluation seconds of the rows (spread over the jobs that run at
    once: `parallel_jobs`), worker start-up (the workers start together: once) and one-time costs per
    metric setup."""
    configs = {run.run_id: run.config for run in suite.runs}
    cfgs = [configs[row["run_id"]] for row in rows]
    train = sum(row["estimate_s"] for row in rows)
    evaluate = sum(row.get("eval_s") or 0.0 for row in rows)
    setups = {_evaluation_key(c) + (c.eval_samples,): c for c in cfgs if evaluations_per_run(c)}
    one_time = sum(time_evaluation(c, devices[0], data_root)["one_time_s"] for c in setups.values())
    startup = worker_startup_seconds()
    parallel, how = parallel_jobs(devices, workers)
    return {"train_s": train / parallel, "eval_s": evaluate / parallel, "startup_s": startup, "one_time_s": one_time,
            "evaluations": sum(evaluations_per_run(c, row["step"]) for c, row in zip(cfgs, rows)),
            "total_s": (train + evaluate) / parallel + startup + one_time, "parallel": parallel, "parallel_how": how}


def format_duration(seconds: float) -> str:
    """'1h02m' or '3m05s'."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def plan_record(device: str, workers: int, rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """plan.json's content: per arm, the estimated seconds of one run (training + evaluations)."""
    arms: dict[str, dict[str, float]] = {}
    for row in rows:
        if row.get("estimate_s") is not None:
            arms.setdefault(row["arm"], {"train_s": row["estimate_s"], "eval_s": row.get("eval_s") or 0.0})
    return {"device": device, "workers": workers, "created_at": time.time(), "arms": arms} if arms else None


def write_plan(suite_dir: Any, device: str, workers: int, rows: Sequence[dict[str, Any]]) -> None:
    """plan.json in the suite's directory (`SuiteDir`), when the rows hold an estimate."""
    record = plan_record(device, workers, rows)
    if record:
        suite_dir.write_plan(record)


def planned_vs_actual(suite: Any) -> dict[str, dict[str, Any]] | None:
    """arm → {planned_s, actual_s (median wall time of its finished runs), finished}; None
    without a plan.json."""
    plan = suite.dir.read_plan()
    if plan is None:
        return None
    out: dict[str, dict[str, Any]] = {}
    for arm, planned in plan["arms"].items():
        walls = []
        for run in (r for r in suite.runs if r.arm == arm):
            try:
                status = suite.dir.run_dir(run.run_id).read_status()
            except rundir.RunDirError:
                continue
            if status.get("status") in rundir.FINAL and status.get("wall_s"):
                walls.append(float(status["wall_s"]))
        out[arm] = {"planned_s": planned["train_s"] + planned["eval_s"], "finished": len(walls),
                    "actual_s": statistics.median(walls) if walls else None}
    return out


def estimate_step_seconds(runs: Sequence[Run], device: str) -> float:
    """Seconds per training step of `runs` trained together, timed alone on this machine with
    the thread count the sweep would give them (`ganbench.training.compute.time_step`)."""
    from ganbench.execution.jobs import run_threads
    from ganbench.training.compute import time_step

    return time_step([r.config for r in runs], device, run_threads(runs[0]))


TimingProgress = Callable[[int, int, str], None]  # (structures timed, of how many, the one being timed)


def record_step_costs(suite: Suite, runs: Sequence[Run], device: str,
                      on_timing: TimingProgress | None = None) -> None:
    """Time one step of each network structure of the selected runs alone on `device` (once per
    structure and thread count: arms that differ only in numbers cost the same per step), before
    workers start, into results/<suite>/compute.json: per arm seconds per step (the report's
    equal-time comparisons read it, since wall time under contention is not compute) and per
    structure. Each timing is saved as soon as it is made, so a sweep stopped during this phase
    keeps what it timed, and structures already timed on this device type are not timed again."""
    from ganbench.devices import resolve
    from ganbench.execution.jobs import run_threads
    from ganbench.study.budget import structure_id
    from ganbench.training.compute import TIME_STEP_METHOD

    if not runs:  # nothing trains now: nothing to time, and compute.json stays as it is
        return
    recorded = suite.dir.read_compute()
    device_type = resolve(device).type
    same_device = recorded.get("device_type") == device_type
    arms = dict(recorded.get("arms", {})) if same_device else {}
    structures = dict(recorded.get("structures", {})) if same_device else {}
    by_structure: dict[str, list[Run]] = {}
    for run in runs:
        by_structure.setdefault(structure_id(run.config), []).append(run)
    if same_device and "structures" not in recorded:  # timed per arm by an older version: reuse those times
        for sid, members in by_structure.items():
            known = next((arms[r.arm] for r in members if r.arm in arms), None)
            if known is not None:
                structures[sid] = {"step_seconds": known["step_seconds"], "threads": known.get("threads", 1)}
    todo = [sid for sid in by_structure if sid not in structures]

    def save() -> None:  # every arm gets its structure's time (an arm whose knobs changed is timed anew)
        for sid, members in by_structure.items():
            for run in members if sid in structures else ():
                arms[run.arm] = {"step_seconds": structures[sid]["step_seconds"], "threads": run_threads(run)}
        record = {"device": device, "device_type": device_type, "arms": arms, "structures": structures,
                  "method": TIME_STEP_METHOD}
        if record != recorded:  # nothing new: the file stays as it is
            suite.dir.write_compute(record)

    for done, sid in enumerate(todo):
        first = by_structure[sid][0]
        if on_timing:
            on_timing(done, len(todo), first.arm)
        structures[sid] = {"step_seconds": estimate_step_seconds([first], device), "threads": run_threads(first),
                           "arms": sorted({r.arm for r in by_structure[sid]})}
        save()
    if on_timing and todo:
        on_timing(len(todo), len(todo), "")
    if not todo:
        save()


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep will cost, from its own timings, said before its first run starts."""

    cost: dict[str, Any]  # `costs.plan_total`'s: total_s and its parts
    run_seconds: dict[str, float]  # run id → planned seconds of its training and evaluations left
    workers: int
    device: str


def record_plan(suite: Suite, states: Sequence[RunState], devices: Sequence[str], workers: int,
                data_root: str | None) -> SweepPlan | None:
    """The sweep's cost from this sweep's own measurements (compute.json's step times, the evaluation
    timed here), for the runs of `states` still to train (from the step each stands at). plan.json
    keeps it unless `ganbench plan --save` wrote one: `ganbench status` compares that with the
    measured times once runs finish. None when nothing is left to train."""
    if not states:
        return None
    device = devices[0]
    timed = suite.dir.read_compute()["arms"]

    def row(run: Run, start: int) -> dict[str, Any]:
        evaluations = evaluations_per_run(run.config, start)
        return {"arm": run.arm, "run_id": run.run_id, "step": start,
                "estimate_s": timed[run.arm]["step_seconds"] * (run.config.steps - start),
                "eval_s": evaluations * time_evaluation(run.config, device, data_root)["seconds"]
                if evaluations else 0.0}

    if not suite.dir.file(PLAN).exists():  # a whole run of each arm, what `status` compares with
        write_plan(suite.dir, device, workers, [row(s.run, 0) for s in states])
    rows = [row(s.run, rundir.RunDir(s.run_dir).last_logged_step() if s.run_dir.exists() else 0) for s in states]
    return SweepPlan(plan_total(suite, rows, devices, workers, data_root),
                     {row["run_id"]: row["estimate_s"] + row["eval_s"] for row in rows}, workers, device)
