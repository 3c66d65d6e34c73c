"""The local executor: a few persistent worker processes on this machine train job after job.

Workers are started by a forkserver that has imported torch once, and each lives for the
whole sweep, so a run costs no interpreter start. A run that fails or diverges is reported
by its worker, which goes on with the next job; a worker that dies (a segfault, the OOM
killer, a signal) takes down only the run it was training, which is recorded failed with
the exit code, and a new worker takes its place. A run whose lock another process holds
(a second `ganbench run` of the same suite) is left to that process and shown as 'busy'.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from ganbench.execution.jobs import Job, Placement, RunState, Update, make_jobs, run_threads
from ganbench.execution.worker import WORKER_IMPORTS, worker_main
from ganbench.rundir import RunDir, RunStatus


class Executor(Protocol):
    """Trains the pending runs among `states`, updating them and calling `on_update` as they progress."""

    def execute(self, states: Sequence[RunState], on_update: Update | None = None) -> None: ...


def _context() -> multiprocessing.context.BaseContext:
    if sys.platform.startswith("linux"):
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["torch", "ganbench.training.loop"])
        return ctx
    return multiprocessing.get_context("spawn")


@dataclass
class _Worker:
    process: Any
    inbox: Any
    device: str
    job: Job | None = None
    ended: set[str] = field(default_factory=set)  # run ids of the current job that reported their end
    ready: bool = False  # it imported what a job needs (no job is handed to it before)


class WorkerStartError(RuntimeError):
    """A worker cannot start training (its imports fail); no run was started."""


class LocalExecutor:
    """Up to `workers` persistent worker processes, spread round-robin over `devices`."""

    def __init__(self, workers: int, devices: Sequence[str], data_root: str | None = None, poll_s: float = 0.2,
                 max_fused: int = 1, worker_imports: tuple[str, ...] = WORKER_IMPORTS):
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        self.workers, self.devices, self.data_root, self.poll_s = workers, list(devices), data_root, poll_s
        self.max_fused, self.worker_imports = max_fused, worker_imports

    def execute(self, states: Sequence[RunState], on_update: Update | None = None) -> None:
        jobs = make_jobs(states, self.max_fused)
        if not jobs:
            return
        by_id = {s.run.run_id: s for s in states}
        ctx = _context()
        outbox = ctx.Queue()
        lifeline_r, lifeline_w = ctx.Pipe(duplex=False)  # the driver keeps the only write end
        pool: dict[int, _Worker] = {}

        def start_worker(slot: int) -> None:
            inbox = ctx.Queue()
            proc = ctx.Process(target=worker_main, args=(slot, inbox, outbox, lifeline_r, self.data_root,
                                                         self.worker_imports),
                               name=f"ganbench-worker-{slot}", daemon=True)
            proc.start()
            pool[slot] = _Worker(proc, inbox, self.devices[slot % len(self.devices)])

        try:
            for slot in range(min(self.workers, len(jobs))):
                start_worker(slot)
            while jobs or any(w.job for w in pool.values()):
                self._hand_out(pool, jobs)
                self._drain(outbox, pool, by_id)
                for slot in self._reap_dead(outbox, pool, by_id):
                    if jobs:
                        start_worker(slot)
                _refresh_running(states)
                if on_update:
                    on_update(states)
        except KeyboardInterrupt:
            _stop_after_interrupt(pool, by_id)
            raise
        finally:
            for worker in pool.values():
                if worker.process.is_alive():
                    worker.inbox.put(None)
            for worker in pool.values():
                worker.process.join(timeout=5)
                if worker.process.is_alive():
                    worker.process.kill()
                    worker.process.join()
            lifeline_w.close()
            lifeline_r.close()

    @staticmethod
    def _hand_out(pool: dict[int, _Worker], jobs: list[Any]) -> None:
        """The next job to every idle worker."""
        for worker in pool.values():
            if worker.ready and worker.job is None and jobs:
                worker.job, worker.ended = jobs.pop(0), set()
                threads = max(run_threads(run) for run, _ in worker.job.runs)
                worker.inbox.put((worker.job, Placement(worker.device, threads)))

    def _reap_dead(self, outbox: Any, pool: dict[int, _Worker], by_id: dict[str, RunState]) -> list[int]:
        """Slots whose worker died mid-job; each of its unfinished runs is recorded failed with the exit code."""
        dead = []
        for slot, worker in list(pool.items()):
            if not worker.ready and not worker.process.is_alive():
                self._drain(outbox, pool, by_id)  # its 'broken' message, if it got that far
                raise WorkerStartError(f"a worker process exited (code {worker.process.exitcode}) before it could "
                                       "import the training stack; no run was started")
            if worker.job is not None and not worker.process.is_alive():
                self._drain(outbox, pool, by_id)  # its last words, if any
                if worker.job is not None:
                    code = worker.process.exitcode
                    for run_id in worker.job.run_ids:
                        if run_id not in worker.ended:
                            record_end(by_id[run_id], f"worker process died (exit code {code}) while "
                                                      "training this run; re-run to resume it")
                    worker.job = None
                    dead.append(slot)
        return dead

    def _drain(self, outbox: Any, pool: dict[int, _Worker], by_id: dict[str, RunState]) -> None:
        """Apply the workers' messages: a run started, a run ended (with its outcome), a worker idle."""
        deadline = time.monotonic() + self.poll_s
        while True:
            try:
                event, slot, run_id, outcome = outbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return
            worker = pool[slot]
            if event == "ready":
                worker.ready = True
            elif event == "broken":  # before any job reached it: stop the sweep, saying why
                raise WorkerStartError(outcome["error"])
            elif event == "start":
                state = by_id[run_id]
                state.status, state.started = "running", time.time()
            elif event == "end":
                worker.ended.add(run_id)
                record_outcome(by_id[run_id], outcome)
            elif event == "idle":
                worker.job = None


def refresh_progress(states: Sequence[RunState]) -> None:
    """Update pending and running states from their run directories (executors whose workers run
    elsewhere: Ray, SLURM): a run whose status.json says running has started; step and phase follow."""
    for state in states:
        if state.status in ("pending", "running"):
            run = RunDir(state.run_dir)
            status = run.read_status()
            if status.get("status") == "running" and state.status == "pending":
                state.status, state.started = "running", time.time()
            state.step, state.phase = run.reached_step(status), status.get("phase")


def record_outcome(state: RunState, outcome: dict[str, Any]) -> None:
    """Fold a worker's report into the state; the run files are the truth when they can be read."""
    if outcome["status"] == "busy":
        state.status, state.error = "busy", outcome["error"]
        return
    record_end(state, outcome.get("error") or "ended without a final status")
    if state.status == "failed" and outcome.get("error") and state.error != outcome["error"]:
        state.error = f"{state.error}; {outcome['error']}" if state.error else outcome["error"]


def record_end(state: RunState, reason: str) -> None:
    """Fold a finished run into its state. A run whose status file is missing or still says
    'running' died without a word (a signal, the OOM killer, a lost node): recorded failed for `reason`."""
    run = RunDir(state.run_dir)
    status = run.read_status()
    state.step = run.last_logged_step()
    state.status, state.error = status.get("status", "running"), status.get("error")
    if state.status in ("running", "pending") or status.get("corrupt_status"):
        state.status, state.error = "failed", reason
        record = RunStatus.from_json({**status, "status": "failed" if status.get("corrupt_status") else
                                      status.get("status", "pending")})
        record.other.pop("corrupt_status", None)  # the reason says what happened now
        record.fail(reason)
        try:
            run.write_status(record)
        except OSError as err:  # the reason still reaches the user through the state
            state.error = f"{reason} (and status.json could not be written: {err})"


def _refresh_running(states: Sequence[RunState]) -> None:
    """Step and phase of every running run, from its files (what progress and `status` show)."""
    for state in states:
        if state.status == "running":
            run_dir = RunDir(state.run_dir)
            status = run_dir.read_status()
            state.step, state.phase = run_dir.reached_step(status), status.get("phase")


def _stop_after_interrupt(pool: dict[int, _Worker], by_id: dict[str, RunState]) -> None:
    """Ctrl-C or SIGTERM: let every worker save its runs' status, then stop it; runs it did not end are
    recorded as stopped (they resume on the next sweep)."""
    for worker in pool.values():
        if not worker.ready and worker.job is None:  # still importing: nothing to save, and a Ctrl-C there
            worker.process.terminate()  # prints the interpreter's start-up traceback (C04a): end it quietly
            worker.process.join()
            continue
        worker.process.join(timeout=5)  # the terminal's Ctrl-C reached them too: let them save status
        if worker.process.is_alive():  # the driver alone was stopped (SIGTERM): pass it on as Ctrl-C
            with contextlib.suppress(OSError):
                os.kill(worker.process.pid, signal.SIGINT)
            worker.process.join(timeout=10)
        if worker.process.is_alive():
            worker.process.terminate()
            worker.process.join()
        if worker.job is not None:
            for run_id in worker.job.run_ids:
                if run_id not in worker.ended:
                    record_end(by_id[run_id], f"worker process stopped (exit code {worker.process.exitcode})")
