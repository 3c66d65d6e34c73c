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
import json
import math
import os
import shutil
import socket
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

CONFIG, STATS, METRICS, SAMPLES = "config.json", "stats.jsonl", "metrics.jsonl", "samples"
CHECKPOINT, STATUS, LOCK = "checkpoint.pt", "status.json", ".lock"
FINAL = ("completed", "diverged")  # a re-run skips these; failed, interrupted and killed runs resume

_UMASK = os.umask(0)
os.umask(_UMASK)


class RunDirError(RuntimeError):
    """A run directory that cannot be used as asked; the message names the file and what to do."""


class RunLocked(RunDirError):
    """Another live process is training this run."""


class ConfigMismatch(RunDirError):
    """The directory holds a run of another config."""


class CorruptLineWarning(UserWarning):
    """A .jsonl line that is not JSON (skipped; the rows after it are kept)."""


# --- Durable files -----------------------------------------------------------------------------

def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` on a temp file next to `path`, fsync it, rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN/inf: store non-finite floats as null (the status says why)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | os.PathLike, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def append_jsonl(path: str | os.PathLike, row: Mapping[str, Any]) -> None:
    """One line per row; flushed and fsynced so a killed run keeps every row it logged."""
    line = json.dumps({k: finite_or_none(v) for k, v in row.items()}) + "\n"
    with open(path, "a") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def _jsonl_lines(path: Path) -> Iterator[tuple[int, str, dict[str, Any] | None]]:
    """(line number, text, row or None when the line is not a JSON object). A last line without
    its newline is a write cut short by a kill: it is left out, silently."""
    text = path.read_text(errors="replace")
    lines = text.split("\n")
    complete = lines[:-1]  # the piece after the last newline is '' or a torn write
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        yield number, line, row if isinstance(row, dict) else None


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a .jsonl file. A line that is not JSON is reported (file and line number, as a
    `CorruptLineWarning`) and skipped; every row after it is still read."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for number, line, row in _jsonl_lines(path):
        if row is None:
            warnings.warn(f"{path}:{number}: not a JSON row, skipped ({line[:60]!r})", CorruptLineWarning,
                          stacklevel=2)
            continue
        rows.append(row)
    return rows


def write_jsonl(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    text = "".join(json.dumps(dict(row)) + "\n" for row in rows)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def truncate_jsonl(path: str | os.PathLike, last_step: int) -> None:
    """Drop the rows logged after `last_step` (a resume logs them again, identically). Lines that
    are not JSON are kept as they are: they are evidence, and every reader reports them."""
    path = Path(path)
    if not path.exists():
        return
    kept = [line for _, line, row in _jsonl_lines(path) if row is None or row.get("step", 0) <= last_step]
    text = "".join(line + "\n" for line in kept)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def ensure_writable(directory: Path) -> None:
    """Create `directory` or say clearly why it cannot be (no traceback for a read-only root)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"cannot create {directory}: {err.strerror or err}; choose a writable results "
                          "directory (--out / --results-root)") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise RunDirError(f"{directory} is not writable; choose a writable results directory "
                          "(--out / --results-root)")


# --- One run directory -------------------------------------------------------------------------

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
        """status.json, {} when absent. A corrupt file reads as an unfinished run whose
        `error` says so, never as a crash: the run resumes from its checkpoint."""
        path = self.file(STATUS)
        if not path.exists():
            return {}
        try:
            status = read_json(path)
            if not isinstance(status, dict):
                raise ValueError("not a JSON object")
            return status
        except (ValueError, OSError) as err:
            return {"status": "failed", "corrupt_status": True,
                    "error": f"{path} is unreadable ({type(err).__name__}: {err}); the run resumes from its checkpoint"}

    def write_status(self, status: Mapping[str, Any]) -> None:
        write_json(self.file(STATUS), dict(status))

    def last_logged_step(self) -> int:
        """The step of the last complete stats.jsonl row (cheap: reads the file's tail)."""
        path = self.file(STATS)
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

    # Identity.
    def read_config(self) -> dict[str, Any] | None:
        path = self.file(CONFIG)
        if not path.exists():
            return None
        try:
            return read_json(path)
        except ValueError as err:
            raise RunDirError(f"{path} is not valid JSON ({err}); move the directory away or start fresh") from None

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
        fh = open(self.file(LOCK), "a+")
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
        return read_jsonl(self.file(METRICS))

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

    def load_checkpoint(self) -> tuple[dict[str, Any] | None, str | None]:
        """(state, None), or (None, why) when there is no usable checkpoint. An unreadable one
        (truncated, corrupt) is moved aside to checkpoint.pt.corrupt, so the run starts over
        instead of failing on every re-run; `why` names the file and the error."""
        import torch

        path = self.file(CHECKPOINT)
        if not path.exists():
            return None, None
        try:
            return torch.load(path, map_location="cpu", weights_only=True), None
        except Exception as err:  # torch raises RuntimeError, OSError, EOFError, pickle errors…
            aside = path.with_name(CHECKPOINT + ".corrupt")
            os.replace(path, aside)
            return None, (f"{path} was unreadable ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                          f"moved to {aside.name}, the run started over from step 0")
