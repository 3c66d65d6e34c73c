"""The report's directory: `ganbench report --out` writes only into a directory it owns.

A report directory is new, empty, or one an earlier `ganbench report` marked (`.ganbench-report`);
anything else — a checkout's root, a folder of the user's own files — is refused before a byte is
written, so `--out .` cannot replace a README. Its `tables/` and `figures/` must be real folders
inside it: a symlink there (pointing at someone else's files) is refused, never written through.
Every file is written by `files.atomic_write`, which replaces a symlink at the file's own path
instead of following it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ganbench.files import atomic_write

MARKER = ".ganbench-report"
SUBDIRS = ("tables", "figures")


class ReportDirError(ValueError):
    """The report cannot be written there (the message says why and what to do)."""


def claim(out_dir: Path, suite_name: str) -> Path:
    """Check that `out_dir` may hold the report of `suite_name`, create it and its folders, and mark it."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ReportDirError(f"--out {out_dir}: exists and is not a directory")
    if out_dir.is_dir() and not (out_dir / MARKER).is_file() and any(out_dir.iterdir()):
        raise ReportDirError(
            f"--out {out_dir}: not empty and not a ganbench report (no {MARKER} in it), so nothing was written; "
            "choose a new or empty directory (a report written before ganbench marked its reports has no "
            f"marker: add an empty {MARKER} to it if it is one)")
    for name in SUBDIRS:
        sub = out_dir / name
        if sub.is_symlink() or (sub.exists() and not sub.is_dir()):
            raise ReportDirError(f"--out {out_dir}: {name} is {'a symlink' if sub.is_symlink() else 'not a folder'}; "
                                 "a report writes only into folders it made (remove it and report again)")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in SUBDIRS:
        (out_dir / name).mkdir(exist_ok=True)
    atomic_write(out_dir / MARKER, lambda tmp: Path(tmp).write_text(
        json.dumps({"written_by": "ganbench report", "suite": suite_name}) + "\n"))
    return out_dir
