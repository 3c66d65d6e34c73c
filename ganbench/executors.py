"""Executors: run a list of runs, one process per run, and report progress from the run files.

The local executor keeps `workers` processes busy. Each run is a fresh process (started by a
forkserver that has imported torch once, so a start costs milliseconds, not seconds), so a
run that crashes, diverges or is killed takes only itself down: its status is recorded
and the sweep goes on. Progress is read from each run's stats.jsonl, the same files any
other executor writes, so the display works the same everywhere.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

from ganbench import runio
from ganbench.suite import Run

FINAL = ("completed", "diverged")  # a re-run skips these; failed, interrupted and killed runs resume


@dataclass
class RunState:
    """What the display knows of one run."""

    run: Run
    run_dir: Path
    status: str = "pending"  # pending | running | completed | diverged | failed | interrupted
    step: int = 0
    error: str | None = None
    started: float | None = None


Update = Callable[[Sequence[RunState]], None]


class Executor(Protocol):
    """Trains the pending runs among `states`, updating them and calling `on_update` as they progress."""

    def execute(self, states: Sequence[RunState], on_update: Update | None = None) -> None: ...


def read_status(run_dir: Path) -> dict:
    path = run_dir / "status.json"
    try:
        return runio.read_json(path) if path.exists() else {}
    except ValueError:  # unreadable: treat as never finished
        return {}


def last_logged_step(run_dir: Path) -> int:
    """The step of the last complete stats.jsonl row (cheap: reads the file's tail)."""
    path = run_dir / "stats.jsonl"
    if not path.exists():
        return 0
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - 4096))
        lines = fh.read().decode(errors="ignore").splitlines()
    for line in reversed(lines):
        if line.startswith('{"step": '):
            try:
                return int(line[9 : line.index(",")])
            except ValueError:
                continue
    return 0


def default_workers(devices: Sequence[str]) -> int:
    """CPU: one single-threaded process per core (two 1-thread processes beat one 2-thread
    process on small convs); CUDA: four small DCGANs per GPU."""
    if all(d == "cpu" for d in devices):
        return max(1, os.cpu_count() or 1)
    return 4 * len(devices)


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def train_run(run: Run, run_dir: str | Path, device: str, threads: int, data_root: str | None,
              progress: Callable | None = None) -> dict:
    """Train one run of a suite in this process (any executor's worker); returns its status."""
    import torch

    from ganbench.train import train

    threads = run.config.threads or threads  # a suite that sets `threads` keeps it
    torch.set_num_threads(threads)
    cfg = run.config.replace(device=device, threads=threads)
    return train(cfg, run_dir, preset=run.preset, hacks=run.hacks, data_root=data_root, progress=progress)


def _child(run: Run, run_dir: str, device: str, threads: int, data_root: str | None) -> None:
    """Body of a worker process: train one run; its status file records the outcome."""
    try:
        status = train_run(run, run_dir, device, threads, data_root)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:
        sys.exit(1)  # train() has written status 'failed' with the traceback
    sys.exit(0 if status["status"] in FINAL else 1)


def _context() -> multiprocessing.context.BaseContext:
    if sys.platform.startswith("linux"):
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["torch", "ganbench.train"])
        return ctx
    return multiprocessing.get_context("spawn")


class LocalExecutor:
    """Up to `workers` runs at once on this machine, spread round-robin over `devices`."""

    def __init__(self, workers: int, devices: Sequence[str], data_root: str | None = None, poll_s: float = 0.5):
        self.workers, self.devices, self.data_root, self.poll_s = workers, list(devices), data_root, poll_s

    def execute(self, states: Sequence[RunState], on_update: Update | None = None) -> None:
        ctx = _context()
        queue = [s for s in states if s.status == "pending"]
        active: dict[int, tuple[RunState, multiprocessing.Process]] = {}  # slot → run
        threads = threads_per_worker(self.workers)
        try:
            while queue or active:
                for slot in range(self.workers):
                    if slot not in active and queue:
                        state = queue.pop(0)
                        device = self.devices[slot % len(self.devices)]
                        proc = ctx.Process(target=_child, args=(state.run, str(state.run_dir), device, threads,
                                                                self.data_root), daemon=False)
                        proc.start()
                        state.status, state.started = "running", time.time()
                        active[slot] = (state, proc)
                for slot, (state, proc) in list(active.items()):
                    state.step = last_logged_step(state.run_dir)
                    if not proc.is_alive():
                        proc.join()
                        record_end(state, f"worker process died (exit code {proc.exitcode})")
                        del active[slot]
                if on_update:
                    on_update(states)
                if queue or active:
                    time.sleep(self.poll_s)
        except KeyboardInterrupt:
            for state, proc in active.values():
                proc.join(timeout=10)  # the terminal's Ctrl-C reached them too: let them save status
                if proc.is_alive():
                    proc.terminate()
                    proc.join()
                record_end(state, f"worker process died (exit code {proc.exitcode})")
            raise


def record_end(state: RunState, reason: str) -> None:
    """Fold a finished run into its state. A run whose status file is missing or still says
    'running' died without a word (a signal, the OOM killer, a lost node): recorded failed for `reason`."""
    status = read_status(state.run_dir)
    state.step = last_logged_step(state.run_dir)
    state.status, state.error = status.get("status", "running"), status.get("error")
    if state.status == "running":
        runio.write_json(state.run_dir / "status.json", {**status, "status": "failed", "error": reason})
        state.status, state.error = "failed", reason
