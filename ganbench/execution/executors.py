"""Choosing and building the executor of a sweep from the user's options (`ganbench run --executor`).

The local executor is `run_suite`'s default (None here); Ray and SLURM are built from one
`ExecutorOptions`, checked first, so that a bad option fails before anything is trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganbench.errors import ConfigError, did_you_mean

EXECUTORS = ("local", "ray", "slurm")


@dataclass(frozen=True)
class ExecutorOptions:
    kind: str = "local"  # local | ray | slurm
    max_fused: int | None = None  # runs per fused group (None: the executor's default)
    data_root: str | None = None
    address: str | None = None  # Ray: 'auto', ray://HOST:10001, or None for a new local Ray
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    max_retries: int = 3  # Ray: restarts of a task whose worker died
    ray_results: str = "auto"  # Ray: shared | gather | auto
    slurm_partition: str | None = None
    slurm_time_min: int = 24 * 60
    slurm_mem_gb: float | None = None
    slurm_parallelism: int = 64
    slurm_cluster: str = "slurm"  # slurm (sbatch) or local (submitit's local executor)

    def check(self) -> None:
        """`ConfigError` for an unknown executor or options it cannot honour."""
        if self.kind not in EXECUTORS:
            raise ConfigError(f"--executor {self.kind!r}: expected local, ray or slurm{did_you_mean(self.kind, EXECUTORS)}")
        if self.kind == "slurm" and (self.gpus_per_task != int(self.gpus_per_task)
                                     or self.cpus_per_task != int(self.cpus_per_task) or self.cpus_per_task < 1):
            raise ConfigError("--executor slurm: --cpus-per-task and --gpus-per-task must be whole numbers "
                              "(SLURM allocates units)")

    def where(self, devices: list[str]) -> str:
        """Where the runs train, in words, for the sweep's first line."""
        if self.kind == "ray":
            return (f"Ray ({self.address or 'local'}, {self.cpus_per_task:g} CPU + {self.gpus_per_task:g} GPU "
                    "per task)")
        if self.kind == "slurm":
            return (f"SLURM ({self.slurm_cluster}, {int(self.cpus_per_task)} CPU + {int(self.gpus_per_task)} GPU "
                    "per array task)")
        return ", ".join(devices)


def make_executor(options: ExecutorOptions, results_dir: Path) -> Any:
    """The Ray or SLURM executor `options` ask for; None for the local one. Raises the executor's own
    error (RayExecutorError, SlurmExecutorError) when its library is missing or the cluster unreachable."""
    options.check()
    if options.kind == "ray":
        from ganbench.execution.ray import RayExecutor, require_ray

        require_ray()
        return RayExecutor(options.address, options.cpus_per_task, options.gpus_per_task, options.max_retries,
                           options.ray_results, options.data_root, max_fused=options.max_fused or 1)
    if options.kind == "slurm":
        from ganbench.execution.slurm import SlurmExecutor, require_submitit

        require_submitit()
        return SlurmExecutor(results_dir / "slurm", options.slurm_cluster, options.slurm_partition,
                             options.slurm_time_min, int(options.cpus_per_task), int(options.gpus_per_task),
                             options.slurm_mem_gb, options.slurm_parallelism, options.data_root,
                             max_fused=options.max_fused or 1)
    return None
