"""The SLURM executor: a suite's jobs as one SLURM array job, submitted through submitit.

Each array task trains one job (a run, or a fused group with --max-fused) in place: the
results directory must be visible on every node (a shared filesystem, as on most clusters),
so the results layout and `ganbench status` are the same as with the local executor.

Preemption and time limits: submitit sends the task its preemption signal (USR2) before SLURM
stops it; the task is `Checkpointable`, so submitit requeues the same job and it resumes from
each run's last checkpoint (at most `checkpoint_every` steps are trained again, identically).
A task that dies otherwise (killed, node lost) leaves its runs 'failed' with the reason, and the
next `ganbench run --executor slurm` resumes them from their checkpoints. One failing array task
never stops the others.

`cluster='local'` runs the same code through submitit's local executor (subprocesses on this
machine), which is how the tests exercise it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Sequence

from ganbench.execution.jobs import Job, Placement, RunState, Update, make_jobs, run_threads
from ganbench.execution.local import record_end, record_outcome, refresh_progress
from ganbench.execution.worker import run_job


class SlurmExecutorError(RuntimeError):
    """submitit is missing, or the submission itself failed."""


def require_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise SlurmExecutorError("--executor slurm needs submitit: pip install 'ganbench[slurm]'") from None
    return submitit


class SlurmTask:
    """What one array task runs: train a job in place, return each run's outcome. Checkpointable
    (submitit.helpers.Checkpointable's contract): on preemption or timeout submitit calls
    `checkpoint`, which resubmits the same call; the runs resume from their checkpoint.pt."""

    def __call__(self, job: Job, device: str, threads: int, data_root: str | None) -> dict[str, Any]:
        outcomes: dict[str, Any] = {}
        run_job(job, Placement(device, threads), data_root,
                lambda event, run_id, outcome: outcomes.__setitem__(run_id, outcome) if event == "end" else None)
        return outcomes

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)  # the run files are the checkpoint


class SlurmExecutor:
    """Submits the pending jobs as one array job and follows them through the run directories."""

    def __init__(self, folder: Path, cluster: str = "slurm", partition: str | None = None, time_min: int = 24 * 60,
                 cpus_per_task: int = 1, gpus_per_task: int = 0, mem_gb: float | None = None,
                 array_parallelism: int = 64, data_root: str | None = None, max_fused: int = 1,
                 poll_s: float = 2.0) -> None:
        if cluster not in ("slurm", "local", "debug"):
            raise SlurmExecutorError(f"--slurm-cluster {cluster!r}: expected slurm, local or debug")
        self.folder, self.cluster, self.partition = Path(folder), cluster, partition
        self.time_min, self.cpus_per_task, self.gpus_per_task = time_min, cpus_per_task, gpus_per_task
        self.mem_gb, self.array_parallelism, self.data_root = mem_gb, array_parallelism, data_root
        self.max_fused, self.poll_s = max_fused, poll_s
        self.submitted: list[tuple[Any, list[RunState]]] = []  # (submitit job, its runs), for status and tests

    def _executor(self) -> Any:
        submitit = require_submitit()
        executor = submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster=self.cluster)
        params: dict[str, Any] = {"timeout_min": self.time_min, "cpus_per_task": self.cpus_per_task,
                                  "gpus_per_node": self.gpus_per_task, "tasks_per_node": 1, "nodes": 1,
                                  "name": "ganbench", "slurm_array_parallelism": self.array_parallelism}
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.mem_gb:
            params["mem_gb"] = self.mem_gb
        executor.update_parameters(**params)
        return executor

    def execute(self, states: Sequence[RunState], on_update: Update | None = None) -> None:
        pending = [s for s in states if s.status == "pending"]
        jobs = make_jobs(pending, self.max_fused)
        if not jobs:
            return
        executor = self._executor()
        device = "cuda" if self.gpus_per_task > 0 else "cpu"
        by_id = {s.run.run_id: s for s in pending}
        try:
            submitted = executor.map_array(SlurmTask(), jobs, [device] * len(jobs),
                                           [run_threads(job.runs[0][0]) for job in jobs], [self.data_root] * len(jobs))
        except Exception as err:  # sbatch missing or refusing: say so, nothing was trained
            raise SlurmExecutorError(f"submitting {len(jobs)} array tasks failed: {type(err).__name__}: {err}") from err
        self.submitted = [(task, [by_id[run_id] for run_id in job.run_ids]) for task, job in zip(submitted, jobs)]
        waiting = list(self.submitted)
        try:
            while waiting:
                refresh_progress(states)
                for item in [w for w in waiting if w[0].done()]:
                    waiting.remove(item)
                    self._finish(*item)
                if on_update:
                    on_update(states)
                if waiting:
                    time.sleep(self.poll_s)
        except KeyboardInterrupt:
            for task, _ in waiting:
                task.cancel(check=False)
            raise

    @staticmethod
    def _finish(task: Any, job_states: list[RunState]) -> None:
        try:
            outcomes = task.result()
        except Exception as err:  # the task died (killed, node lost, timed out too often): runs resume next time
            reason = task_failure(task, err)
            for state in job_states:
                record_end(state, reason)
            return
        for state in job_states:
            record_outcome(state, outcomes.get(state.run.run_id, {"status": "failed", "error": "no outcome"}))


_TELLING = re.compile(r"error|exception|killed|signal|cancel|timeout|time limit|oom|out of memory|preempt", re.I)


def task_failure(task: Any, err: BaseException) -> str:
    """Why a SLURM task ended without a result, as a run's error: the task's state, the most telling
    line of submitit's error (its last lines are often its own log, e.g. 'Loading pickle: …') and the
    path of the task's log, where the whole story is."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    cause = ([line for line in lines if _TELLING.search(line)] or lines or [""])[-1][:300]
    try:
        state = task.state
    except Exception:  # sacct unreachable: the state is unknown, the rest still helps
        state = "UNKNOWN"
    try:
        log = str(task.paths.stderr)
    except Exception:
        log = "unknown"
    return f"SLURM task {task.job_id} ended {state}: {type(err).__name__}: {cause} (log: {log})"
