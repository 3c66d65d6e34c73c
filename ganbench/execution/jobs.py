"""Pending runs → jobs: what a worker is handed (runs, the trainer that trains them, placement).

Today every job holds one run and the one-run trainer (`single`); a fused trainer will put
the runs that share a `structure_key` into one job. Progress never flows through jobs: it
is read from the run directories, the same files every executor writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ganbench.study.suite import Run

TRAINERS = ("single",)


@dataclass
class RunState:
    """What the driver knows of one run."""

    run: Run
    run_dir: Path
    status: str = "pending"  # pending | running | completed | diverged | failed | interrupted | busy
    step: int = 0
    error: str | None = None
    started: float | None = None


Update = Callable[[Sequence[RunState]], None]


@dataclass(frozen=True)
class Placement:
    device: str  # cpu, cuda, cuda:N
    threads: int  # torch CPU threads of the process while it trains the job


@dataclass(frozen=True)
class Job:
    runs: tuple[tuple[Run, str], ...]  # (run, its run directory)
    trainer: str = "single"
    run_ids: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.trainer not in TRAINERS:
            raise ValueError(f"unknown trainer '{self.trainer}'; known: {', '.join(TRAINERS)}")
        object.__setattr__(self, "run_ids", tuple(run.run_id for run, _ in self.runs))


def make_jobs(states: Sequence[RunState]) -> list[Job]:
    """One job per pending run, in suite order (arms × seeds)."""
    return [Job(((s.run, str(s.run_dir)),)) for s in states if s.status == "pending"]


def run_threads(run: Run) -> int:
    """CPU threads a sweep trains `run` with: the suite's `threads`, else 1. CPU reductions depend
    on the thread count, so it must not depend on --workers or the machine's core count; the
    parallelism of a sweep comes from its worker processes."""
    return run.config.threads or 1


def default_workers(devices: Sequence[str]) -> int:
    """CPU: one single-threaded process per core (two 1-thread processes beat one 2-thread
    process on small convs); CUDA: four small DCGANs per GPU."""
    if all(d == "cpu" for d in devices):
        return max(1, os.cpu_count() or 1)
    return 4 * len(devices)
