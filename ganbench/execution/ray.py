"""Run a suite's runs as Ray tasks (`ganbench run SUITE --executor ray`).

Each job is one Ray task asking for `cpus_per_run` CPUs and `gpus_per_run` GPUs: one run,
or with `max_fused` > 1 a fused group of runs of one structure trained as one network.
Fractions (0.25) let several tasks share a GPU. Ray retries a task whose worker
process died (`max_retries`); the retry resumes from the run's last checkpoint. A run that
fails by itself (an exception in training) returns its 'failed' status and is not retried,
and a diverged run is recorded as diverged, exactly as with the local executor.

Results reach the suite's results directory in one of two ways:

- shared: the directory is on a filesystem every node mounts (NFS, a KubeRay volume, one
  machine); tasks write their run directories there directly.
- gather: it is not; a task trains in a node-local scratch directory and, at every log
  interval, pushes the run directory's changed files (status, logs, samples, checkpoint)
  to a `RunStore` actor; the driver pulls them into the results directory. A retried task
  first pulls its run's last files back, so it resumes from the last pushed checkpoint.

`auto` (the default) decides per task: the driver leaves a marker file next to the run
directories, and a task that can see it writes in place. Progress and `ganbench status`
read the run directories on the driver, the same files the local executor writes.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

from ganbench import rundir
from ganbench.errors import did_you_mean
from ganbench.execution.jobs import Job, Placement, RunState, Update, make_jobs, run_threads
from ganbench.execution.local import record_end, record_outcome, refresh_progress
from ganbench.execution.worker import group_outcomes, outcome_of
from ganbench.rundir import CHECKPOINT, FINAL, RunDir, RunStatus

RESULTS_MODES = ("auto", "shared", "gather")
INSTALL_HINT = "the Ray executor needs Ray: pip install 'ganbench[ray]' (or pip install 'ray[default]')"
Files = dict[str, bytes]  # path relative to a run directory → content


class RayExecutorError(RuntimeError):
    """Ray is missing, or the cluster cannot be reached or cannot run the tasks."""


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayExecutorError(INSTALL_HINT) from None
    return ray


# --- Moving run directories between nodes -----------------------------------------------------

def changed_files(run_dir: Path, seen: dict[str, tuple[int, int]]) -> Files:
    """Files of `run_dir` new or changed since `seen` (path → (size, mtime_ns)), which is updated."""
    out: Files = {}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel, st = path.relative_to(run_dir).as_posix(), path.stat()
        if seen.get(rel) != (st.st_size, st.st_mtime_ns):
            seen[rel] = (st.st_size, st.st_mtime_ns)
            out[rel] = path.read_bytes()
    return out


def write_files(run_dir: Path, files: Files) -> None:
    for rel, data in files.items():
        rundir.atomic_write(run_dir / rel, lambda tmp, data=data: Path(tmp).write_bytes(data))


class RunStore:
    """The latest files of each run, kept by an actor so that tasks and the driver need no shared disk."""

    def __init__(self) -> None:
        self.version = 0
        self.files: dict[str, dict[str, tuple[int, bytes]]] = {}  # run id → path → (version, content)

    def push(self, run_id: str, files: Files) -> None:
        self.version += 1
        self.files.setdefault(run_id, {}).update({rel: (self.version, data) for rel, data in files.items()})

    def pull(self, run_id: str) -> Files:
        return {rel: data for rel, (_, data) in self.files.get(run_id, {}).items()}

    def changes(self, since: int) -> tuple[int, dict[str, Files]]:
        """(current version, files changed after version `since`, per run)."""
        out = {run_id: {rel: data for rel, (v, data) in files.items() if v > since}
               for run_id, files in self.files.items()}
        return self.version, {run_id: files for run_id, files in out.items() if files}


def ray_train_task(job: Job, device: str, threads: int, data_root: str | None, marker: str | None,
                   store: Any) -> dict[str, Any]:
    """One job (one run, or a fused group) on a Ray worker: in place when the results directory
    is visible here, else in scratch space synchronised through `store`. Returns how each run
    went (never raises for a failing run, so Ray retries only dead workers)."""
    import ray

    shared = marker is not None and Path(marker).exists()
    if store is None and not shared:
        raise RayExecutorError(f"--ray-results shared, but this node ({os.uname().nodename}) cannot see {marker}; "
                               "use --ray-results gather or mount the results directory on every node")
    where = {run.run_id: Path(run_dir) for run, run_dir in job.runs}
    pushers: dict[str, Any] = {}
    if not shared:
        for run_id in where:
            where[run_id] = Path(tempfile.gettempdir()) / "ganbench-ray" / run_id
            shutil.rmtree(where[run_id], ignore_errors=True)
            write_files(where[run_id], ray.get(store.pull.remote(run_id)))  # a retry resumes from the last push
            pushers[run_id] = _pusher(store, run_id, where[run_id])
    placement = Placement(device, threads)
    local = Job(tuple((run, str(where[run.run_id])) for run, _ in job.runs))
    if job.trainer == "fused":
        outcomes = group_outcomes(local, placement, data_root, progress=pushers or None)
    else:
        run, run_dir = local.runs[0]
        outcomes = [outcome_of(run, run_dir, placement, data_root, progress=pushers.get(run.run_id))]
    for run_id, push in pushers.items():
        push()
        shutil.rmtree(where[run_id], ignore_errors=True)
    return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "shared": shared,
            "outcomes": dict(zip(job.run_ids, outcomes))}


def _pusher(store: Any, run_id: str, where: Path) -> Any:
    """A progress callback that pushes the run directory's changed files to `store`."""
    import ray

    seen: dict[str, tuple[int, int]] = {}
    changed_files(where, seen)

    def push(*_: Any) -> None:
        files = changed_files(where, seen)
        if files:
            ray.get(store.push.remote(run_id, files))

    return push


# --- The executor -----------------------------------------------------------------------------

class RayExecutor:
    """Every pending job (a run, or a fused group of up to `max_fused`) as a Ray task on the cluster at
    `address` (None: a local Ray instance)."""

    def __init__(self, address: str | None = None, cpus_per_run: float = 1.0, gpus_per_run: float = 0.0,
                 max_retries: int = 3, results: str = "auto", data_root: str | None = None, poll_s: float = 0.5,
                 max_fused: int = 1):
        if results not in RESULTS_MODES:
            raise RayExecutorError(f"--ray-results {results!r}: expected one of {', '.join(RESULTS_MODES)}"
                                   f"{did_you_mean(results, RESULTS_MODES)}")
        if cpus_per_run <= 0 or gpus_per_run < 0 or max_retries < 0:
            raise RayExecutorError("--cpus-per-run must be > 0, --gpus-per-run and --max-retries >= 0")
        self.address, self.cpus_per_run, self.gpus_per_run = address, cpus_per_run, gpus_per_run
        self.max_retries, self.results, self.data_root, self.poll_s = max_retries, results, data_root, poll_s
        self.max_fused = max_fused  # runs per task: a fused group is one task with one task's resources

    def placement(self) -> tuple[dict[str, Any], str]:
        """(Ray task options, the device a task trains on). Torch threads come from the run
        (`run_threads`), as with the local executor, so a run's numbers do not depend on
        --cpus-per-run."""
        resources = dict(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=self.max_retries,
                         retry_exceptions=False)
        # Ray gives a GPU task CUDA_VISIBLE_DEVICES with its GPU, so 'cuda' is that GPU.
        return resources, "cuda" if self.gpus_per_run > 0 else "cpu"

    def connect(self) -> bool:
        """Initialise Ray unless the caller already did; True when we started it (and shut it down)."""
        ray = require_ray()
        if ray.is_initialized():
            return False
        try:
            ray.init(address=self.address, log_to_driver=False, logging_level="WARNING")
        except Exception as err:  # ConnectionError, a bad ray:// address, a version mismatch, …
            raise RayExecutorError(f"cannot start or reach Ray at {self.address or 'a new local instance'}: "
                                   f"{type(err).__name__}: {err}") from None
        return True

    def execute(self, states: Sequence[RunState], on_update: Update | None = None) -> None:
        ray = require_ray()
        pending = [s for s in states if s.status == "pending"]
        if not pending:
            return
        started_ray = self.connect()
        runs_dir = pending[0].run_dir.parent
        marker = runs_dir / f".ganbench-driver-{secrets.token_hex(8)}"
        runs_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text("results directory of a running ganbench driver\n")
        store, version = None, 0
        try:
            if self.results != "shared":
                store = ray.remote(num_cpus=0)(RunStore).remote()
                for state in pending:  # earlier attempts' checkpoints, for runs that resume
                    if (state.run_dir / CHECKPOINT).exists():
                        ray.get(store.push.remote(state.run.run_id, changed_files(state.run_dir, {})))
            task = ray.remote(ray_train_task)
            resources, device = self.placement()
            marker_arg = None if self.results == "gather" else str(marker)
            by_id = {s.run.run_id: s for s in pending}
            refs = {}
            for job in make_jobs(pending, self.max_fused):
                first = job.runs[0][0]
                name = f"ganbench {first.arm} seed {first.seed}" + (f" +{len(job.runs) - 1}" if len(job.runs) > 1 else "")
                ref = task.options(**resources, name=name).remote(job, device, run_threads(first), self.data_root,
                                                                  marker_arg, store)
                refs[ref] = [by_id[run_id] for run_id in job.run_ids]
            try:
                while refs:
                    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=self.poll_s)
                    version = self._sync(store, version, states)
                    for ref in ready:
                        self._finish(refs.pop(ref), ref)
                    if on_update:
                        on_update(states)
            except KeyboardInterrupt:
                for ref in refs:
                    ray.cancel(ref, force=True)
                self._sync(store, version, states)
                for job_states in refs.values():
                    for state in job_states:
                        self._interrupted(state)
                raise
        finally:
            marker.unlink(missing_ok=True)
            if started_ray:
                ray.shutdown()

    def _sync(self, store: Any, version: int, states: Sequence[RunState]) -> int:
        """Pull changed run files (gather mode) and refresh the running runs' progress."""
        by_id = {s.run.run_id: s for s in states}
        if store is not None:
            version, changes = require_ray().get(store.changes.remote(version))
            for run_id, files in changes.items():
                write_files(by_id[run_id].run_dir, files)
        refresh_progress(states)
        return version

    def _finish(self, states: Sequence[RunState], ref: Any) -> None:
        ray = require_ray()
        try:
            outcomes = ray.get(ref)["outcomes"]
        except ray.exceptions.RayError as err:  # retries exhausted, node lost, an error outside training
            cause = getattr(err, "cause", None) or err
            for state in states:
                record_end(state, f"Ray: {type(cause).__name__}: "
                                  f"{str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}")
            return
        for state in states:
            record_outcome(state, outcomes[state.run.run_id])

    def _interrupted(self, state: RunState) -> None:
        """A cancelled run that had started is 'interrupted' (it resumes); one that had not stays pending."""
        run = RunDir(state.run_dir)
        status = run.read_status()
        if status and status.get("status") not in FINAL:
            record = RunStatus.from_json(status)
            record.interrupt("interrupted (Ctrl-C, or SIGTERM passed on as one); re-run to resume")
            run.write_status(record)
            state.status, state.error = "interrupted", record.error
