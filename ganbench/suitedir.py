"""The suite's results directory: the one module that names, reads and writes its files.

    results/<suite>/
        suite.json     the manifest: design (parts, arms, reference, aliases) and run id → arm, seed, hacks
        budget.json    a seconds budget's step times per network structure, and each arm's steps
        compute.json   each arm's seconds per step timed alone (the report's equal-time estimate)
        plan.json      `ganbench plan --save` / `run`'s estimate, which `ganbench status` compares with
        runs/<id>/     one run directory each (`ganbench.rundir.RunDir`)

Every path handed out is checked to lie inside the suite's directory (symlinks resolved), every
name taken from a file is validated (run ids are 12 hex digits, arm names are never `.`, `..` or
hold a `/`), and a file that is not what it should be raises `CorruptFile` naming it and what was
expected. Torch-free.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ganbench.files import CorruptFile, ensure_writable, flocked, inside, read_record, write_json
from ganbench.rundir import RunDir

# Unicode format, separator-line/paragraph, private-use and surrogate characters: not shown, or change
# how the rest is shown (U+200B zero width space, U+202E right-to-left override).
INVISIBLE_CATEGORIES = frozenset({"Cf", "Zl", "Zp", "Co", "Cs"})
MANIFEST, BUDGET, COMPUTE, PLAN, RUNS = "suite.json", "budget.json", "compute.json", "plan.json", "runs"
RUN_ID = re.compile(r"[0-9a-f]{12}")


def arm_name_problem(name: Any) -> str | None:
    """Why `name` cannot name an arm (it becomes part of file and TensorBoard paths), or None."""
    if not isinstance(name, str) or not name.strip():
        return "an arm name must be a non-empty string"
    if name in (".", "..") or "/" in name or "\\" in name:
        return f"arm name {name!r} cannot be '.', '..' or hold '/' or '\\' (it names directories)"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return f"arm name {name!r} holds a control character"
    hidden = [c for c in name if unicodedata.category(c) in INVISIBLE_CATEGORIES]
    if hidden:  # 'plain' and 'plain\u200b' would be two arms that read the same; U+202E reverses the text shown
        return (f"arm name {ascii(name)} holds an invisible or direction-changing character "
                f"({', '.join(f'U+{ord(c):04X}' for c in hidden)}): two arms would read the same")
    return None


def check_run_id(run_id: Any, where: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise CorruptFile(f"{where}: run id {run_id!r} is not a ganbench run id (12 hex digits)")
    return run_id


@dataclass(frozen=True)
class ManifestRun:
    run_id: str
    arm: str
    seed: int
    hacks: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    """suite.json, checked: `runs` typed, the rest as recorded (`data`)."""

    data: dict[str, Any]
    runs: tuple[ManifestRun, ...]

    @property
    def name(self) -> str:
        return str(self.data.get("name", ""))

    @property
    def designs(self) -> list[dict[str, Any]]:
        return self.data["designs"]

    @property
    def plugins(self) -> list[str]:
        """The plugins the sweep had loaded (names or .py paths; data to show, never imported from here)."""
        plugins = self.data.get("plugins")
        return [p for p in plugins if isinstance(p, str)] if isinstance(plugins, list) else []

    def as_dict(self) -> dict[str, Any]:
        """The manifest as the analysis reads it (runs as plain mappings)."""
        return {**self.data, "runs": [{"run_id": r.run_id, "arm": r.arm, "seed": r.seed, "hacks": list(r.hacks)}
                                      for r in self.runs]}


def parse_manifest(data: Any, path: Path) -> Manifest:
    """Check suite.json's shape and every name in it; `CorruptFile` names the first problem."""
    expected = "a suite manifest {name, designs: [...], runs: [{run_id, arm, seed, hacks}]}"
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or not isinstance(data.get("designs"), list):
        raise CorruptFile(f"{path}: expected {expected}")
    for i, design in enumerate(data["designs"]):
        if not isinstance(design, dict) or not isinstance(design.get("arms"), list):
            raise CorruptFile(f"{path}: designs[{i}] is not a design with `arms`; expected {expected}")
        for j, arm in enumerate(design["arms"]):
            problem = arm_name_problem(arm.get("name") if isinstance(arm, dict) else None)
            if problem:
                raise CorruptFile(f"{path}: designs[{i}].arms[{j}]: {problem}")
    runs = []
    for i, run in enumerate(data["runs"]):
        where = f"{path}: runs[{i}]"
        if not isinstance(run, dict):
            raise CorruptFile(f"{where} is not a mapping; expected {expected}")
        problem = arm_name_problem(run.get("arm"))
        if problem:
            raise CorruptFile(f"{where}: {problem}")
        seed, hacks = run.get("seed"), run.get("hacks") or []
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise CorruptFile(f"{where}: seed {seed!r} is not a non-negative integer")
        if not isinstance(hacks, list) or not all(isinstance(h, str) for h in hacks):
            raise CorruptFile(f"{where}: hacks {hacks!r} is not a list of hack names")
        runs.append(ManifestRun(check_run_id(run.get("run_id"), where), run["arm"], seed, tuple(hacks)))
    return Manifest(data, tuple(runs))


def positive_number(value: Any, where: str, least: float = 0.0) -> float:
    """A finite number > 0 (and >= `least`) from a results file, else `CorruptFile` naming `where`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise CorruptFile(f"{where}: {value!r} is not a finite number > 0")
    if value < least:
        raise CorruptFile(f"{where}: {value!r} is implausible (below {least:g}); expected a measured value")
    return float(value)


MAX_PLANNED_STEPS = 10**9  # a planned arm's steps; budget.json above it is damaged (10^15 once passed, V03a)
MIN_STEP_SECONDS = 1e-6  # no GAN training step takes under a microsecond: a smaller "time" is a damaged file


class SuiteDir:
    """results/<suite>/: its files' names and schemas, containment, and the suite's file lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)  # as given: reports quote it

    def __repr__(self) -> str:
        return f"SuiteDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        """A file of the suite directory itself (suite.json, budget.json, …), checked to stay inside."""
        candidate = self.path / name
        if candidate.is_symlink():
            inside(self.path, candidate, f"{name} of the suite directory")
        return candidate

    # Runs.
    def run_path(self, run_id: str) -> Path:
        """runs/<run_id>: a checked run id, and a directory that is not a link out of the suite directory."""
        check_run_id(run_id, str(self.path))
        path = self.path / RUNS / run_id
        if (self.path / RUNS).is_symlink():
            inside(self.path, self.path / RUNS, "the runs directory")
        if path.is_symlink() or path.exists():
            inside(self.path, path, "run directory")
        return path

    def existing_run_ids(self) -> set[str] | None:
        """Names in runs/ (directories or not, links included): every run not among them is pending.
        None when runs/ itself is a link (each run's path must then be checked, `run_path`)."""
        if (self.path / RUNS).is_symlink():
            return None
        try:
            return set(os.listdir(self.path / RUNS))
        except (FileNotFoundError, NotADirectoryError):
            return set()

    def run_dir(self, run_id: str) -> RunDir:
        return RunDir(self.run_path(run_id))

    # suite.json.
    def has_manifest(self) -> bool:
        return (self.path / MANIFEST).exists()

    def read_manifest(self) -> Manifest:
        path = self.file(MANIFEST)
        if not path.exists():
            raise FileNotFoundError(f"{path} missing: run `ganbench run SUITE` first (it records the design there)")
        return parse_manifest(read_record(path, "a suite manifest written by `ganbench run`"), path)

    def write_manifest(self, data: dict[str, Any]) -> None:
        parse_manifest(data, self.path / MANIFEST)  # never write what could not be read back
        path = self.file(MANIFEST)
        if path.exists():  # replace only a manifest: a suite.json of the user's own is never lost
            try:
                parse_manifest(read_record(path, "a suite manifest written by `ganbench run`"), path)
            except CorruptFile as err:
                raise CorruptFile(f"{path} is not a suite manifest ganbench wrote ({str(err).removeprefix(f'{path}: ')}), "
                                  "so it was left as it is: move it away, or choose another --results-root") from None
        write_json(path, data)

    # budget.json, compute.json, plan.json.
    def read_optional(self, name: str, expected: str) -> dict[str, Any] | None:
        path = self.file(name)
        return read_record(path, expected) if path.exists() else None

    def read_budget(self) -> dict[str, Any] | None:
        """budget.json checked: every step time a finite number > 0, every arm's steps a whole number > 0."""
        path = self.file(BUDGET)
        record = self.read_optional(BUDGET, "a budget record {kind, device, structures, arms}")
        if record is None:
            return None
        for key, entry in (record.get("structures") or {}).items():
            if not isinstance(entry, dict):
                raise CorruptFile(f"{path}: structures.{key} is not a mapping")
            positive_number(entry.get("seconds_per_step"), f"{path}: structures.{key}.seconds_per_step",
                            MIN_STEP_SECONDS)
        for arm, entry in (record.get("arms") or {}).items():
            steps = entry.get("steps") if isinstance(entry, dict) else None
            if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_PLANNED_STEPS:
                raise CorruptFile(f"{path}: arms.{arm}.steps: {steps!r} is not a whole number in [1, "
                                  f"{MAX_PLANNED_STEPS:,}] (more would be months of training a run)")
        for arm, value in (record.get("seconds_per_step") or {}).items():  # the first format: per arm
            positive_number(value, f"{path}: seconds_per_step.{arm}", MIN_STEP_SECONDS)
        return record

    def write_budget(self, record: dict[str, Any]) -> None:
        ensure_writable(self.path)
        write_json(self.file(BUDGET), record)

    def read_compute(self) -> dict[str, Any]:
        """compute.json ({} without one), checked: arm → {step_seconds > 0, threads}."""
        path = self.file(COMPUTE)
        record = self.read_optional(COMPUTE, "step costs {device, device_type, arms: {arm: {step_seconds}}}") or {}
        arms = record.get("arms", {})
        if not isinstance(arms, dict):
            raise CorruptFile(f"{path}: `arms` is not a mapping of arm → {{step_seconds, threads}}")
        for arm, entry in arms.items():
            positive_number(entry.get("step_seconds") if isinstance(entry, dict) else None,
                            f"{path}: arms.{arm}.step_seconds")
        return record

    def write_compute(self, record: dict[str, Any]) -> None:
        write_json(self.file(COMPUTE), record)

    def read_plan(self) -> dict[str, Any] | None:
        """plan.json (None without one), checked: arm → {train_s, eval_s} of finite seconds >= 0."""
        path = self.file(PLAN)
        record = self.read_optional(PLAN, "an estimate {device, workers, arms: {arm: {train_s, eval_s}}}")
        if record is None:
            return None
        arms = record.get("arms")
        if not isinstance(arms, dict):
            raise CorruptFile(f"{path}: `arms` is not a mapping of arm → {{train_s, eval_s}}")
        for arm, entry in arms.items():
            for key in ("train_s", "eval_s"):
                value = entry.get(key) if isinstance(entry, dict) else None
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                        or value < 0:
                    raise CorruptFile(f"{path}: arms.{arm}.{key}: {value!r} is not a number of seconds >= 0")
        return record

    def write_plan(self, record: dict[str, Any]) -> None:
        ensure_writable(self.path)
        write_json(self.file(PLAN), record)

    # The suite's lock.
    @contextlib.contextmanager
    def locked(self, what: str) -> Iterator[None]:
        """Hold the suite directory's lock `.<what>.lock` (created; never through a symlink)."""
        ensure_writable(self.path)
        with flocked(self.file(f".{what}.lock"), f"the suite's {what} lock"):
            yield

