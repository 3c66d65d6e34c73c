"""The executors of a sweep (`ganbench run --executor NAME`), one registry entry each.

An executor is registered once (`register_executor`): its name, what it is in a line, its own check of
the options, how it is built, and how the sweep's first line says where runs train. `local` is
`run_suite`'s default (it builds nothing here); `ray` and `slurm` are built from one `ExecutorOptions`,
checked first, so that a bad option fails before anything is trained. A plugin adds an executor with
the same call: an object with `execute(states, on_update)` (`execution/local.Executor`), built from the
options it reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ganbench.errors import ConfigError, Registry


@dataclass(frozen=True)
class ExecutorOptions:
    kind: str = "local"  # a registered executor's name
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
        executor = EXECUTORS[self.kind]
        if executor.check is not None:
            executor.check(self)

    def where(self, devices: list[str]) -> str:
        """Where the runs train, in words, for the sweep's first line."""
        executor = EXECUTORS[self.kind]
        return executor.where(self) if executor.where is not None else ", ".join(devices)


@dataclass(frozen=True)
class ExecutorSpec:
    """A registered way to run a sweep's jobs. `build(options, results_dir)` returns the object whose
    `execute(states, on_update)` trains them, or None for the local executor; `check` raises `ConfigError`
    for options it cannot honour (before anything is trained); `where` says where runs train (default: the
    devices)."""

    name: str
    summary: str
    build: Callable[[ExecutorOptions, Path], Any]
    check: Callable[[ExecutorOptions], None] | None = None
    where: Callable[[ExecutorOptions], str] | None = None


EXECUTORS: Registry[ExecutorSpec] = Registry("executor", "choose local, ray, slurm or one a plugin registers")


def register_executor(executor: ExecutorSpec) -> ExecutorSpec:
    return EXECUTORS.register(executor.name, executor)


def make_executor(options: ExecutorOptions, results_dir: Path) -> Any:
    """The executor `options` ask for, built; None for the local one. Raises the executor's own error
    (RayExecutorError, SlurmExecutorError) when its library is missing or the cluster unreachable."""
    options.check()
    return EXECUTORS[options.kind].build(options, results_dir)


def _ray(options: ExecutorOptions, results_dir: Path) -> Any:
    from ganbench.execution.ray import RayExecutor, require_ray

    require_ray()
    return RayExecutor(options.address, options.cpus_per_task, options.gpus_per_task, options.max_retries,
                       options.ray_results, options.data_root, max_fused=options.max_fused or 1)


def _slurm(options: ExecutorOptions, results_dir: Path) -> Any:
    from ganbench.execution.slurm import SlurmExecutor, require_submitit

    require_submitit()
    return SlurmExecutor(results_dir / "slurm", options.slurm_cluster, options.slurm_partition,
                         options.slurm_time_min, int(options.cpus_per_task), int(options.gpus_per_task),
                         options.slurm_mem_gb, options.slurm_parallelism, options.data_root,
                         max_fused=options.max_fused or 1)


def _check_slurm(options: ExecutorOptions) -> None:
    if (options.gpus_per_task != int(options.gpus_per_task) or options.cpus_per_task != int(options.cpus_per_task)
            or options.cpus_per_task < 1):
        raise ConfigError("--executor slurm: --cpus-per-task and --gpus-per-task must be whole numbers "
                          "(SLURM allocates units)")


register_executor(ExecutorSpec("local", "worker processes on this machine", lambda options, results_dir: None))
register_executor(ExecutorSpec(
    "ray", "tasks on a Ray cluster", _ray,
    where=lambda o: f"Ray ({o.address or 'local'}, {o.cpus_per_task:g} CPU + {o.gpus_per_task:g} GPU per task)"))
register_executor(ExecutorSpec(
    "slurm", "one SLURM array job through submitit (results on a shared filesystem)", _slurm, check=_check_slurm,
    where=lambda o: f"SLURM ({o.slurm_cluster}, {int(o.cpus_per_task)} CPU + {int(o.gpus_per_task)} GPU per array task)"))
