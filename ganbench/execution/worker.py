"""Workers: processes that live for many jobs and train them one after another.

A worker imports torch once, keeps decoded training images on its device between runs
(`Resources`), and reports each run's start and end to its driver, with the error when a
run fails, so a cause survives even when the run's status file cannot be written (a full
disk). It dies with its driver: it holds the read end of a pipe whose only write end the
driver holds, and exits the moment that pipe closes, so a killed `ganbench run` leaves
no orphans training beside the next one.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from ganbench.execution.jobs import Job, Placement
from ganbench.plugins import load_plugins
from ganbench.rundir import RunDirError, RunLocked
from ganbench.study.suite import Run

_RESOURCES: Any = None  # this process's Resources, made on first use (it imports torch)

# What a worker imports before it takes a job: the training loop and the metrics stack (torch-fidelity,
# and tqdm beneath it). Imported explicitly because multiprocessing's forkserver preload swallows an
# ImportError: a missing dependency would otherwise kill each worker at its first job, unexplained.
WORKER_IMPORTS = ("ganbench.training.loop", "ganbench.metrics.fidelity")


def import_failure(modules: tuple[str, ...] = WORKER_IMPORTS) -> str | None:
    """The traceback of the first of `modules` this process cannot import, or None when all import."""
    import importlib
    import traceback

    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as err:  # ImportError, or any error an import raises: the worker cannot train
            return (f"a worker cannot import {module}: {type(err).__name__}: {err} (install what is missing, e.g. "
                    f"`pip install -e .`, then re-run)\n" + traceback.format_exc(limit=-3))
    return None


def process_resources() -> Any:
    global _RESOURCES
    if _RESOURCES is None:
        from ganbench.training.resources import Resources

        _RESOURCES = Resources()
    return _RESOURCES


def train_run(run: Run, run_dir: str, placement: Placement, data_root: str | None,
              progress: Callable | None = None) -> dict[str, Any]:
    """Train one run of a suite in this process (any executor's worker); returns its status."""
    from ganbench.training.loop import train

    cfg = run.config.replace(device=placement.device, threads=placement.threads)
    return train(cfg, run_dir, preset=run.preset, hacks=run.hacks, data_root=data_root, progress=progress,
                 resources=process_resources())


def outcome_of(run: Run, run_dir: str, placement: Placement, data_root: str | None,
               progress: Callable | None = None) -> dict[str, Any]:
    """Train `run` and say how it ended: {status, error}. Never raises for a failing run;
    'busy' when another process holds the run's lock."""
    try:
        status = train_run(run, run_dir, placement, data_root, progress)
        return {"status": status.get("status"), "error": status.get("error")}
    except RunLocked as err:
        return {"status": "busy", "error": str(err)}
    except (RunDirError, ValueError) as err:  # a directory holding another config, an unwritable root, bad config
        return {"status": "failed", "error": str(err)}
    except Exception as err:  # train() recorded 'failed' when it could; the cause travels with the outcome
        return {"status": "failed", "error": f"{type(err).__name__}: {err}"}


def group_outcomes(job: Job, placement: Placement, data_root: str | None,
                   progress: dict[str, Callable] | None = None) -> list[dict[str, Any]]:
    """Train a fused job's runs together; one outcome per run, in the job's order. `progress`:
    run id → the callback of that run's log rows (the Ray executor pushes files with it)."""
    from ganbench.training.loop import RunSpec, train_group

    specs = [RunSpec(run.config.replace(device=placement.device, threads=placement.threads), Path(run_dir),
                     run.preset, run.hacks, (progress or {}).get(run.run_id)) for run, run_dir in job.runs]
    try:
        return train_group(specs, data_root=data_root, resources=process_resources())
    except (RunDirError, ValueError) as err:  # the device or the group itself is unusable
        return [{"status": "failed", "error": str(err)} for _ in specs]


def run_job(job: Job, placement: Placement, data_root: str | None,
            report: Callable[[str, str, dict[str, Any] | None], None]) -> None:
    """Train the job's runs; `report(event, run_id, outcome)` with event 'start' or 'end'."""
    load_plugins(job.plugins)  # the driver's plugins: their metrics and datasets exist here too
    if job.trainer == "fused":
        for run_id in job.run_ids:
            report("start", run_id, None)
        for run_id, outcome in zip(job.run_ids, group_outcomes(job, placement, data_root)):
            report("end", run_id, outcome)
        return
    for run, run_dir in job.runs:
        report("start", run.run_id, None)
        report("end", run.run_id, outcome_of(run, run_dir, placement, data_root))


def _die_with_driver(lifeline: Any) -> None:
    """Exit this process as soon as the driver's end of `lifeline` closes (the driver died)."""
    def watch() -> None:
        try:
            lifeline.recv()
        except (EOFError, OSError):
            pass
        os._exit(3)

    threading.Thread(target=watch, name="ganbench-lifeline", daemon=True).start()
    if sys.platform.startswith("linux"):  # and on Linux, the kernel's own guarantee when the parent goes
        import ctypes

        try:
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def worker_main(worker_id: int, inbox: Any, outbox: Any, lifeline: Any, data_root: str | None,
                imports: tuple[str, ...] = WORKER_IMPORTS) -> None:
    """Body of a worker process: say 'ready' once `imports` import (else 'broken', with the error, and
    exit), then take (job, placement) from `inbox` until None."""
    _die_with_driver(lifeline)
    # A sweep a script started in the background (`ganbench run … &`) inherits SIGINT ignored (POSIX
    # shells do that to `&` jobs) and Python then never raises KeyboardInterrupt, so the Ctrl-C by which
    # the driver passes on a SIGTERM would be lost and the runs recorded failed: take SIGINT back.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def report(event: str, run_id: str | None, outcome: dict[str, Any] | None) -> None:
        outbox.put((event, worker_id, run_id, outcome))

    failure = import_failure(imports)
    report("broken" if failure else "ready", None, {"error": failure} if failure else None)
    if failure:
        return
    try:
        while True:
            item = inbox.get()
            if item is None:
                return
            job, placement = item
            run_job(job, placement, data_root, report)
            outbox.put(("idle", worker_id, None, None))
    except KeyboardInterrupt:
        sys.exit(130)
