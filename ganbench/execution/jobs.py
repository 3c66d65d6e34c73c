"""Pending runs → jobs: what a worker is handed (runs, the trainer that trains them).

Runs that share a `config.fusion_key` (same shapes, control flow and threads; no dropout)
go into one job of up to `max_fused` runs, trained by one fused trainer; the others are
jobs of one run. Progress never flows through jobs: it is read from the run directories,
the same files every executor writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ganbench.config import fusion_key
from ganbench.plugins import env_plugins
from ganbench.study.suite import Run

@dataclass
class RunState:
    """What the driver knows of one run."""

    run: Run
    run_dir: Path
    status: str = "pending"  # pending | running | completed | diverged | failed | interrupted | busy
    step: int = 0
    error: str | None = None
    started: float | None = None
    phase: dict[str, Any] | None = None  # status.json's `phase` while the run evaluates, else None


Update = Callable[[Sequence[RunState]], None]


@dataclass(frozen=True)
class Placement:
    device: str  # cpu, cuda, cuda:N
    threads: int  # torch CPU threads of the process while it trains the job


@dataclass(frozen=True)
class Job:
    runs: tuple[tuple[Run, str], ...]  # (run, its run directory)
    # Plugin modules the driver loaded ($GANBENCH_PLUGINS, -p): every process that runs the job (local
    # worker, Ray task, SLURM task) imports them first. Entry-point plugins load wherever installed.
    plugins: tuple[str, ...] = field(default_factory=lambda: tuple(env_plugins()))
    trainer: str = field(init=False)  # 'single' (one run) or 'fused' (several, one stacked network)
    run_ids: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        keys = {fusion_key(run.config) for run, _ in self.runs}
        if len(self.runs) > 1 and (len(keys) != 1 or None in keys):
            raise ValueError("a fused job needs runs of one fusion key")
        object.__setattr__(self, "trainer", "fused" if len(self.runs) > 1 else "single")
        object.__setattr__(self, "run_ids", tuple(run.run_id for run, _ in self.runs))


def make_jobs(states: Sequence[RunState], max_fused: int = 1) -> list[Job]:
    """Pending runs → jobs: runs of one fusion key in groups of up to `max_fused`, in suite order
    of each group's first run; runs that cannot fuse alone."""
    if max_fused < 1:
        raise ValueError(f"--max-fused must be >= 1, got {max_fused}")
    groups: dict[Any, list[RunState]] = {}
    for s in states:
        if s.status == "pending":
            key = fusion_key(s.run.config)
            groups.setdefault(key if key is not None and max_fused > 1 else ("alone", s.run.run_id), []).append(s)
    jobs = []
    for members in groups.values():
        for i in range(0, len(members), max_fused):
            jobs.append(Job(tuple((s.run, str(s.run_dir)) for s in members[i : i + max_fused])))
    return jobs


def run_threads(run: Run) -> int:
    """CPU threads a sweep trains `run` with: the suite's `threads`, else 1. CPU reductions depend
    on the thread count, so it must not depend on --workers or the machine's core count; the
    parallelism of a sweep comes from its worker processes."""
    return run.config.threads or 1


def default_workers(devices: Sequence[str]) -> int:
    """CPU: one single-threaded process per core (two 1-thread processes beat one 2-thread
    process on small convs); CUDA: four workers per GPU, each training fused groups. More
    than one, because a worker evaluates its runs one after another and torch-fidelity's KID
    and precision/recall spend part of that time on the CPU (measured on an H100: the quick
    suite with evaluation was slower with 2 workers of fused groups than with 16 of single runs)."""
    if all(d == "cpu" for d in devices):
        return max(1, os.cpu_count() or 1)
    return 4 * len(devices)
