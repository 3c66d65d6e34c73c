"""The run-directory contract: the one module that reads and writes a run's files.

    results/<suite>/runs/<run_id>/
        config.json    run id, resolved config, preset, hacks, execution (device, threads), provenance
        stats.jsonl    one row per `log_every` steps: means of the losses, D outputs, grad norms
        metrics.jsonl  one row per metric value per evaluation, with its provenance
        samples/       step_XXXXXX.png grids of G(fixed noise)
        checkpoint.pt  nets, optimisers, RNG and sampler states: a killed run resumes from it
        status.json    pending → running → completed | diverged | failed | interrupted
        .lock          held (flock) by the one process training the run; the OS frees it when that process dies

Everything here is torch-free except the checkpoint reader and writer, which import torch
when called. Writes are atomic and durable (temp file, fsync, rename, fsync of the
directory), so a crash or a power loss leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import shutil
import socket
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Mapping, get_args

# The durable-file primitives live in `ganbench.files`; they are re-exported here, where most
# callers have always found them.
from ganbench.run_records import checkpoint_problem, metric_row_problem, stats_row_problem
from ganbench.files import (CorruptFile, CorruptLineWarning, DiskFull, OutsideRoot, RunDirError,  # noqa: F401
                            append_jsonl, atomic_write, ensure_writable, finite_or_none, lock_is_held,
                            open_nofollow, read_json, read_jsonl, read_record, rewrite_in_place, truncate_jsonl,
                            write_json)

REEVALUATION = "ganbench eval"  # the `source` of metrics rows `ganbench eval` appends to a finished run
CONFIG, STATS, METRICS, SAMPLES = "config.json", "stats.jsonl", "metrics.jsonl", "samples"
CHECKPOINT, STATUS, LOCK = "checkpoint.pt", "status.json", ".lock"
FINAL = ("completed", "diverged")  # a re-run skips these; failed, interrupted and killed runs resume
Status = Literal["pending", "running", "completed", "diverged", "failed", "interrupted"]
STATUSES: tuple[str, ...] = get_args(Status)

class RunLocked(RunDirError):
    """Another live process is training this run."""


class ConfigMismatch(RunDirError):
    """The directory holds a run of another config."""


# --- One run directory -------------------------------------------------------------------------

# What each status may become (completed and diverged are final: only --fresh starts them over).
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "pending": ("running", "failed"), "running": ("completed", "diverged", "failed", "interrupted"),
    "failed": ("running", "failed", "interrupted"), "interrupted": ("running", "failed", "interrupted"),
    "completed": (), "diverged": (),
}


class BadTransition(RunDirError):
    """A status change the lifecycle does not allow (e.g. a completed run set running)."""


@dataclass
class RunStatus:
    """status.json as a typed record: the lifecycle state and its transitions, where the run is,
    and what it has measured. Keys this version does not know are kept in `other` and written
    back as they were."""

    status: Status = "pending"
    step: int = 0  # the last logged step
    at_step: int | None = None  # the step reached, written every few seconds between log rows (progress only)
    steps: int | None = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    wall_s: float | None = None
    host: str | None = None
    pid: int | None = None
    resumed_from: int | None = None
    fused_group: int | None = None  # trained as one of this many runs in one stacked network
    phase: dict[str, Any] | None = None  # while evaluating: images done, ETA
    metrics: dict[str, Any] | None = None  # the last evaluation's values
    last_stats: dict[str, Any] | None = None
    compute: dict[str, Any] | None = None  # FLOPs per step, parameter counts
    data: dict[str, Any] | None = None  # cache hit, load time, memory of the training data
    warnings: list[str] = field(default_factory=list)
    traceback: str | None = None
    status_write_error: str | None = None
    other: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> "RunStatus":
        known = {f.name for f in fields(cls)} - {"other"}
        out = cls(**{k: v for k, v in record.items() if k in known})
        out.other = {k: v for k, v in record.items() if k not in known}
        return out

    def to_json(self) -> dict[str, Any]:
        """The record as status.json holds it (unset fields left out, unknown keys kept)."""
        record = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "other"}
        record = {k: v for k, v in record.items() if v is not None and v != [] or k in ("status", "step", "error")}
        return {**record, **self.other}

    def _move(self, to: str, error: str | None) -> None:
        if to not in TRANSITIONS[self.status]:
            raise BadTransition(f"a {self.status} run cannot become {to}")
        self.status, self.error = to, error  # type: ignore[assignment]

    def start(self, steps: int) -> None:
        self._move("running", None)
        self.steps, self.started_at = steps, time.time()
        self.host, self.pid = socket.gethostname(), os.getpid()

    def complete(self) -> None:
        self._move("completed", None)

    def diverge(self, error: str) -> None:
        self._move("diverged", error)

    def fail(self, error: str, traceback: str | None = None) -> None:
        self._move("failed", error)
        self.traceback = traceback

    def interrupt(self, error: str) -> None:
        self._move("interrupted", error)

    def finish(self) -> None:
        """Stamp the end of this process's work on the run (whatever its state)."""
        self.finished_at = time.time()
        self.wall_s = round(self.finished_at - (self.started_at or self.finished_at), 3)

    @property
    def final(self) -> bool:
        return self.status in FINAL


class RunDir:
    """A run's directory: layout, status lifecycle, identity check, lock, logs, samples, checkpoint."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock_file: Any = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    # Status.
    def read_status(self) -> dict[str, Any]:
        """status.json, {} when absent. A corrupt file (not JSON, not an object, an unknown
        `status`) reads as an unfinished run whose `error` names the file and says so, never as a
        crash: the run resumes from its checkpoint, and every reader goes on with the other runs."""
        path = self.file(STATUS)
        if not path.exists():
            return {}
        try:
            status = read_record(path, "a run's status record (a JSON object)")
            if status.get("status", "pending") not in STATUSES:
                raise CorruptFile(f"{path}: status {status.get('status')!r} is not one of {', '.join(STATUSES)}")
            return status
        except (RunDirError, OSError) as err:
            reason = str(err).replace(f"{path}: ", "", 1).replace(f"{path} ", "", 1)
            return {"status": "failed", "corrupt_status": True,
                    "error": f"{path} is unreadable ({reason}); the run resumes from its checkpoint"}

    def read_record(self) -> RunStatus:
        """status.json as a `RunStatus` (a corrupt one reads as a failed run whose error says so)."""
        return RunStatus.from_json(self.read_status())

    def write_status(self, status: "RunStatus | Mapping[str, Any]") -> None:
        """Write status.json atomically; on a full disk, rewrite it in place as a last resort (so
        the run is never left saying 'running'), then raise `DiskFull` all the same."""
        record = status.to_json() if isinstance(status, RunStatus) else dict(status)
        if record.get("status", "pending") not in STATUSES:
            raise ValueError(f"status {record.get('status')!r} is not one of {STATUSES}")
        try:
            write_json(self.file(STATUS), record)
        except DiskFull:
            with contextlib.suppress(OSError, RunDirError):
                rewrite_in_place(self.file(STATUS), record)
            raise

    def process_alive(self) -> bool | None:
        """Whether a live process holds the run's lock (it is training or evaluating the run):
        True / False, or None without a lock file. Read-only: probes the lock, writes nothing."""
        return lock_is_held(self.file(LOCK))

    def last_logged_step(self) -> int:
        """The step of the last complete stats.jsonl row (cheap: reads the file's tail)."""
        path = self.file(STATS)
        if not path.is_file():  # missing, or damaged into a directory: said by the readers of its rows
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

    def reached_step(self, status: Mapping[str, Any] | None = None) -> int:
        """The step a run has reached, for progress displays: its last logged row's, or the later step a
        running run writes into status.json between rows (`at_step`); `status`: status.json already read."""
        status = self.read_status() if status is None else status
        at_step = status.get("at_step") if status.get("status") == "running" else None
        return max(self.last_logged_step(), at_step if isinstance(at_step, int) and not isinstance(at_step, bool)
                   else 0)

    # Identity.
    def read_config(self) -> dict[str, Any] | None:
        """config.json, None when absent; `CorruptFile` naming it when it is not a run record."""
        path = self.file(CONFIG)
        if not path.exists():
            return None
        record = read_record(path, "a run record {run_id, config, …}; move the directory away or start fresh "
                                   "with --fresh")
        if not isinstance(record.get("config"), dict):
            raise CorruptFile(f"{path} has no `config` mapping; expected a run record {{run_id, config, …}}")
        return record

    def check_identity(self, config: Mapping[str, Any], identity_knobs: Iterable[str], defaults: Mapping[str, Any],
                       execution: Mapping[str, Any] | None = None) -> None:
        """Refuse a directory that holds a run of another config, naming every knob that differs.
        Knobs missing from an older config.json count as their defaults. A run that has
        started may not move to another device type (its random streams live there)."""
        recorded = self.read_config()
        if recorded is None:
            return
        old = recorded.get("config", {})
        diffs = [f"{k}: {old.get(k, defaults.get(k))!r} here, {config.get(k)!r} asked"
                 for k in identity_knobs if old.get(k, defaults.get(k)) != config.get(k)]
        if diffs:
            raise ConfigMismatch(f"{self.path} holds a run with another config ({'; '.join(diffs)}). "
                                 "Use another directory, or --fresh to discard that run and start over")
        before, now = (recorded.get("execution") or {}).get("device_type"), (execution or {}).get("device_type")
        if before and now and before != now and self.file(CHECKPOINT).exists():
            raise ConfigMismatch(f"{self.path} was trained on {before} and cannot resume on {now} (its random "
                                 f"streams are {before} streams); resume it with --device {before}, or --fresh")

    def write_config(self, record: Mapping[str, Any]) -> None:
        write_json(self.file(CONFIG), dict(record))

    def recorded_execution(self) -> dict[str, Any]:
        recorded = self.read_config() or {}
        return dict(recorded.get("execution") or {})

    def refuse_links(self) -> None:
        """A run's files are written in place: refuse a directory where one of them is a symlink
        (a write through it would land wherever it points)."""
        for name in (CONFIG, STATS, METRICS, SAMPLES, CHECKPOINT, STATUS, LOCK):
            if self.file(name).is_symlink():
                raise RunDirError(f"{self.file(name)} is a symlink (to {os.readlink(self.file(name))}); ganbench "
                                  "never writes through a link it did not create: remove it")

    def set_aside(self) -> Path | None:
        """Start over without losing anything: move the run's files into replaced/<UTC time>/ inside its
        directory (the lock stays, held by the caller); None when there was nothing to move."""
        present = [name for name in (CONFIG, STATS, METRICS, CHECKPOINT, STATUS, SAMPLES) if self.file(name).exists()]
        if not present:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.file("replaced").mkdir(exist_ok=True)
        for n in itertools.count(1):  # two --fresh within one second: 20261207T120000Z, then …Z-2
            target = self.file("replaced") / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                target.mkdir()
                break
            except FileExistsError:
                continue
        for name in present:
            os.replace(self.file(name), target / name)
        return target

    def reset(self) -> None:
        """Start over: remove every file of the run (the lock stays, held by the caller)."""
        for name in (CONFIG, STATS, METRICS, CHECKPOINT, STATUS):
            self.file(name).unlink(missing_ok=True)
        shutil.rmtree(self.file(SAMPLES), ignore_errors=True)

    # Lock.
    def acquire(self, what: str = "training") -> None:
        """Take the run's exclusive lock for as long as this process trains it. Raises
        `RunLocked`, naming the holder, when another live process has it."""
        import fcntl

        ensure_writable(self.path)
        fh = os.fdopen(open_nofollow(self.file(LOCK), os.O_RDWR | os.O_CREAT, "lock file"), "r+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RunLocked(f"{self.path} is being trained by {holder}; skipped here") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} ({what}, since "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        fh.flush()
        self._lock_file = fh

    def release(self) -> None:
        if self._lock_file is not None:
            import fcntl

            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    @contextlib.contextmanager
    def locked(self, what: str = "training") -> Iterator["RunDir"]:
        self.acquire(what)
        try:
            yield self
        finally:
            self.release()

    # Logs.
    def metric_rows(self) -> list[dict[str, Any]]:
        """metrics.jsonl's rows, each checked (`run_records`): a damaged one is said and left out."""
        return read_jsonl(self.file(METRICS), metric_row_problem)

    def training_metric_rows(self) -> list[dict[str, Any]]:
        """The training's own evaluations (rows `ganbench eval` appended are re-evaluations: left out)."""
        return [row for row in self.metric_rows() if row.get("source") != REEVALUATION]

    def stats_rows(self) -> list[dict[str, Any]]:
        """stats.jsonl's rows, each checked (`run_records`): a damaged one is said and left out."""
        return read_jsonl(self.file(STATS), stats_row_problem)

    def append_stats(self, row: Mapping[str, Any]) -> None:
        append_jsonl(self.file(STATS), row)

    def append_metrics(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            append_jsonl(self.file(METRICS), row)

    def truncate_logs(self, last_step: int) -> None:
        for name in (STATS, METRICS):
            truncate_jsonl(self.file(name), last_step)

    def clear_logs(self) -> None:
        for name in (STATS, METRICS):
            self.file(name).unlink(missing_ok=True)

    # Samples and checkpoints (torch imported here only).
    def sample_path(self, step: int) -> Path:
        return self.file(SAMPLES) / f"step_{step:06d}.png"

    def save_grid(self, images: Any, step: int) -> None:
        from torchvision.utils import save_image

        nrow = int(math.isqrt(images.shape[0]))
        atomic_write(self.sample_path(step), lambda tmp: save_image(images, tmp, nrow=nrow, padding=2, format="png"))

    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        import torch

        atomic_write(self.file(CHECKPOINT), lambda tmp: torch.save(dict(state), tmp))

    def load_checkpoint(self, steps: int | None = None,
                        set_aside: bool = True) -> tuple[dict[str, Any] | None, str | None]:
        """(state, None), or (None, why) when there is no usable checkpoint: unreadable (truncated,
        corrupt), not a checkpoint, or at a step outside the run's `steps` (one claiming step 1 000
        of an 8-step run would have made it 'completed' untrained). Training (`set_aside`) moves an
        unusable one to checkpoint.pt.corrupt, so the run starts over instead of failing on every
        re-run; a reader (`ganbench eval`) leaves it where it is. `why` names the file and the error."""
        import torch

        path = self.file(CHECKPOINT)
        if not path.exists():
            return None, None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            problem = checkpoint_problem(state, steps)
        except Exception as err:  # torch raises RuntimeError, OSError, EOFError, pickle errors…
            problem = f"unreadable ({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})"
        if problem is None:
            return state, None
        if not set_aside:
            return None, f"{path} is {problem}"
        aside = path.with_name(CHECKPOINT + ".corrupt")
        os.replace(path, aside)
        return None, f"{path} was {problem}; moved to {aside.name}, the run started over from step 0"
