"""Durable, checked files: the primitives every results file is written and read with.

- Writes are atomic and durable (temp file, fsync, rename, fsync of the directory): a crash or
  a power loss leaves the old file or the new one, never a torn one. A rename replaces a
  symlink instead of following it; appends and locks open with O_NOFOLLOW, so no write ever
  goes through a symlink that ganbench did not create.
- A write that fails for want of space says so (`DiskFull`), naming the file and the free space.
- Reads name the file and what was expected (`CorruptFile`), never a bare JSON error.
- `inside` is the one containment check: no path taken from a file or a symlink may leave the
  directory it belongs to.

Torch-free: torch writes through `atomic_write` too, but is never imported here.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

_UMASK = os.umask(0)
os.umask(_UMASK)


class RunDirError(RuntimeError):
    """A results file or directory that cannot be used as asked; the message names it and what to do."""


class CorruptFile(RunDirError, ValueError):
    """A results file that is not what it should be (not JSON, wrong shape, bad values)."""


class OutsideRoot(RunDirError, ValueError):
    """A path taken from a file or a symlink that leads outside the directory it belongs to."""


class DiskFull(RunDirError, OSError):
    """A write that failed because the filesystem has no space left."""


class CorruptLineWarning(UserWarning):
    """A .jsonl line that is not JSON (skipped; the rows after it are kept)."""


# --- Containment -------------------------------------------------------------------------------

def inside(root: str | os.PathLike, path: str | os.PathLike, what: str = "path") -> Path:
    """`path` (symlinks resolved) when it lies in `root` (resolved) or is `root`; else `OutsideRoot`."""
    real_root, real = Path(root).resolve(), Path(path).resolve()
    if real != real_root and real_root not in real.parents:
        shown = f"{path} (→ {real})" if Path(path).is_symlink() or str(real) != os.path.abspath(path) else str(path)
        raise OutsideRoot(f"{what} {shown} lies outside {real_root}; refusing to use it (remove the symlink or "
                          "the entry that names it)")
    return real


def _free_bytes(path: Path) -> str:
    with contextlib.suppress(OSError):
        return f"{shutil.disk_usage(path).free / 2**20:.1f} MiB free"
    return "free space unknown"


def _write_failure(path: Path, err: BaseException) -> BaseException:
    """The error to raise for a failed write: `DiskFull` when the cause is a full filesystem
    (ENOSPC, or torch's writer reporting a short write, which it does instead of ENOSPC)."""
    text = str(err)
    short_write = isinstance(err, RuntimeError) and ("unexpected pos" in text or "file write failed" in text)
    if (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)) or short_write:
        return DiskFull(errno.ENOSPC, f"No space left on device while writing {path} ({_free_bytes(path.parent)}; "
                                      f"{type(err).__name__}: {text.splitlines()[0][:160] if text else ''}); free "
                                      "some space and re-run: the run resumes from its last checkpoint")
    return err


# --- Durable writes ----------------------------------------------------------------------------

def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` on a temp file next to `path`, fsync it, rename it over `path`
    (a symlink at `path` is replaced, never followed)."""
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
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        failure = _write_failure(path, err)
        if failure is err:
            raise
        raise failure from err
    _fsync_dir(path.parent)


def open_nofollow(path: str | os.PathLike, flags: int, what: str = "file") -> int:
    """os.open with O_NOFOLLOW: a symlink at `path` is refused with a message, never followed."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise RunDirError(f"{what} {path} is a symlink; ganbench never writes through a link it did not "
                              "create: remove it") from None
        raise


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN/inf: store non-finite floats as null (the status says why)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | os.PathLike, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def rewrite_in_place(path: str | os.PathLike, data: Any) -> None:
    """The last resort when the disk is full: truncate and rewrite `path` itself (its own blocks
    are reused), no temp file. Not atomic: only for a small file whose old content is moot."""
    text = (json.dumps(data, indent=2, default=str) + "\n").encode()
    fd = open_nofollow(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(fd, text)
        os.fsync(fd)
    finally:
        os.close(fd)


def append_jsonl(path: str | os.PathLike, row: Mapping[str, Any]) -> None:
    """One line per row; flushed and fsynced so a killed run keeps every row it logged."""
    line = (json.dumps({k: finite_or_none(v) for k, v in row.items()}) + "\n").encode()
    fd = open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, "log")
    try:
        os.write(fd, line)
        os.fsync(fd)
    except OSError as err:
        raise _write_failure(Path(path), err) from err
    finally:
        os.close(fd)


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


# --- Checked reads -----------------------------------------------------------------------------

def read_json(path: str | os.PathLike, expected: str = "a JSON file") -> Any:
    """The file's JSON; `CorruptFile` naming the file and `expected` when it is not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise CorruptFile(f"{path} is not valid JSON ({err}); expected {expected}") from None
    except IsADirectoryError:
        raise CorruptFile(f"{path} is a directory; expected {expected}") from None


def read_record(path: str | os.PathLike, expected: str) -> dict[str, Any]:
    """A JSON object from `path` (`CorruptFile` when it is anything else)."""
    data = read_json(path, expected)
    if not isinstance(data, dict):
        raise CorruptFile(f"{path} holds a JSON {type(data).__name__}; expected {expected}")
    return data


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


def read_jsonl(path: str | os.PathLike,
               problem: Callable[[dict[str, Any]], str | None] = lambda row: None) -> list[dict[str, Any]]:
    """Rows of a .jsonl file. A line that is not JSON, or whose row has a `problem(row)`, is reported
    (file and line number, as a `CorruptLineWarning`) and skipped; every row after it is still read.
    A path that is there but not a readable file is reported the same way and reads as no rows."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return []
    try:
        lines = list(_jsonl_lines(path))
    except OSError as err:  # a directory, a dangling link, no permission
        warnings.warn(f"{path}: not a readable log file ({err.strerror or err}), skipped", CorruptLineWarning,
                      stacklevel=2)
        return []
    rows = []
    for number, line, row in lines:
        why = "not a JSON row" if row is None else problem(row)
        if why:
            warnings.warn(f"{path}:{number}: {why}, skipped ({line[:60]!r})", CorruptLineWarning, stacklevel=2)
            continue
        rows.append(row)
    return rows


def truncate_jsonl(path: str | os.PathLike, last_step: int) -> None:
    """Drop the rows logged after `last_step` (a resume logs them again, identically). Lines that
    are not JSON are kept as they are: they are evidence, and every reader reports them."""
    path = Path(path)
    if not path.exists():
        return
    kept = [line for _, line, row in _jsonl_lines(path) if row is None or row.get("step", 0) <= last_step]
    text = "".join(line + "\n" for line in kept)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


@contextlib.contextmanager
def flocked(path: str | os.PathLike, what: str = "lock file", blocking: bool = True) -> Iterator[Any]:
    """Hold an exclusive flock on `path` (created, never through a symlink) for the block."""
    import fcntl

    fd = open_nofollow(path, os.O_RDWR | os.O_CREAT, what)
    fh = os.fdopen(fd, "r+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        yield fh
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def lock_is_held(path: str | os.PathLike) -> bool | None:
    """Whether a live process holds the flock on `path`: True, False, or None when there is no
    lock file. Read-only: the file is opened for reading and nothing is written."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
