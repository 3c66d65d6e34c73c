"""The training loop: drives any trainer over its K ≥ 1 runs, one recorder per run.

It reads knobs, never hack names. The recorder owns a run's cadence (log every `log_every` steps, evaluate,
write sample grids, checkpoint) and writes through the run-directory contract (`ganbench.rundir`): the loop holds
each run's lock while it trains, refuses a directory that holds another config, and records every ending in
status.json: completed, diverged (a non-finite statistic), failed (with the error) or interrupted.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from ganbench import devices
from ganbench.cadence import due
from ganbench.checks import check_resolved
from ganbench.config import IDENTITY_KNOBS, TrainConfig, run_id
from ganbench.errors import ConfigError
from ganbench.memory_reuse import keep_freed_memory
from ganbench.metrics.registry import parse_metrics, summarize
from ganbench.provenance import provenance
from ganbench.rundir import CHECKPOINT, FINAL, STATUS, RunDir, RunDirError, RunLocked, RunStatus
from ganbench.training.compute import step_compute
from ganbench.training.factory import make_trainer
from ganbench.training.protocol import STAT_NAMES, Diverged, Trainer
from ganbench.training.resources import Resources
from ganbench.training.update import fixed_noise

if TYPE_CHECKING:  # the evaluator (and torch-fidelity under it) loads only for a run that asks for metrics
    from ganbench.metrics.evaluator import RunEvaluator

Progress = Callable[[int, int, dict[str, Any] | None], None]


HEARTBEAT_S = 5.0  # how often a run says its step between log rows (one small status.json rewrite)


@dataclass
class Recorder:
    """One run's files and cadence while a trainer trains it (run k of the trainer)."""

    k: int
    cfg: TrainConfig
    run_dir: RunDir
    status: RunStatus
    evaluator: RunEvaluator | None
    progress: Progress | None = None
    start: int = 0
    count: int = 0
    acc: torch.Tensor | None = None
    active: bool = True
    tick: float = field(default_factory=time.perf_counter)
    beat: float = field(default_factory=time.monotonic)

    def resume(self, trainer: Trainer, state: dict[str, Any] | None, why: str | None) -> None:
        """Load the run's checkpoint (`RunDir.load_checkpoint`'s answer) into the trainer, or
        start over when there is none."""
        device = trainer.device
        self.acc = torch.zeros(len(STAT_NAMES), device=device)
        if why:
            self.status.warnings.append(why)
        if state is None:  # a run that died before its first checkpoint starts over
            self.run_dir.clear_logs()
            return
        trainer.load_state_dict(self.k, state)
        self.start, self.count, self.acc = state["step"], state["count"], state["acc"].to(device)
        self.run_dir.truncate_logs(self.start)  # rows logged after the checkpoint are logged again, identically
        self.status.resumed_from = self.start

    def record(self, trainer: Trainer, step: int, stats: torch.Tensor, noise: torch.Tensor,
               evaluated: list[dict[str, Any]] | None = None) -> None:
        """Fold in this step's statistics and do whatever the cadence asks at `step` (`log`, then
        `finish_step`). `evaluated`: this step's metric rows when the caller evaluated the run with
        others of its group (`drive`)."""
        self.log(trainer, step, stats)
        self.finish_step(trainer, step, noise, evaluated)

    def evaluation_due(self, step: int) -> bool:
        cfg = self.cfg
        return self.evaluator is not None and due(step, cfg.eval_every, cfg.steps)

    def log(self, trainer: Trainer, step: int, stats: torch.Tensor) -> None:
        """Fold in this step's statistics; at a log step write their means (raises Diverged on a
        non-finite one)."""
        cfg, rd = self.cfg, self.run_dir
        self.acc += stats
        self.count += 1
        # Log interval means (one host sync per interval); a non-finite mean ends the run.
        if due(step, cfg.log_every, cfg.steps):
            if trainer.device.type == "cuda":
                torch.cuda.synchronize(trainer.device)
            elapsed, self.tick = time.perf_counter() - self.tick, time.perf_counter()
            means = (self.acc / self.count).tolist()
            lr_d, lr_g = trainer.learning_rates(self.k)
            row = {"step": step, **dict(zip(STAT_NAMES, means)), "lr_d": lr_d, "lr_g": lr_g,
                   "step_time_s": elapsed / self.count}
            rd.append_stats(row)
            self.acc.zero_()
            self.count = 0
            self.status.step = step
            self.status.last_stats = {k: v if not isinstance(v, float) or math.isfinite(v) else None
                                      for k, v in row.items()}
            bad = [name for name, value in zip(STAT_NAMES, means) if not math.isfinite(value)]
            if bad:
                raise Diverged(f"non-finite {', '.join(bad)} in steps {step - cfg.log_every + 1}–{step}")
            if self.progress:
                self.progress(step, cfg.steps, row)
        elif time.monotonic() - self.beat >= HEARTBEAT_S:
            # Between log rows (minutes apart on a CPU), the step reached, for progress displays and ETAs.
            self.beat = time.monotonic()
            self.status.at_step = step
            rd.write_status(self.status)

    def finish_step(self, trainer: Trainer, step: int, noise: torch.Tensor,
                    evaluated: list[dict[str, Any]] | None = None) -> None:
        """The evaluation, sample grid and checkpoint the cadence asks for at `step`."""
        cfg, rd = self.cfg, self.run_dir
        if self.evaluation_due(step):
            rows = evaluated if evaluated is not None else \
                self.evaluator(trainer.generator(self.k), step, self._evaluation_progress(step))
            self.status.phase = None
            rd.append_metrics(rows)
            self.status.metrics = {"step": step, **summarize(rows)}
            rd.write_status(self.status)  # back to training, with the new metrics
        if due(step, cfg.sample_every, cfg.steps):
            rd.save_grid(trainer.samples(self.k, noise), step)
        if due(step, cfg.checkpoint_every, cfg.steps):
            rd.save_checkpoint({"step": step, "count": self.count, "acc": self.acc.cpu(),
                                **trainer.state_dict(self.k)})

    def _evaluation_progress(self, step: int, every_s: float = 1.0) -> Callable[[int, int], None]:
        """A callback for the evaluator: status.json's `phase` says the run is evaluating, how many
        images it has generated of how many and when it should finish (written at most once per
        `every_s`), and the progress callback gets {"evaluating": phase}."""
        started, last_write = time.time(), [0.0]
        phase = {"name": "evaluating", "step": step, "metrics": self.cfg.metrics, "samples_done": 0,
                 "samples_total": None, "started_at": started, "eta_s": None}
        self.status.phase = phase
        self.run_dir.write_status(self.status)  # at once: a cold reference cache can take a while

        def on_samples(done: int, total: int) -> None:
            elapsed = time.time() - started
            phase.update(samples_done=done, samples_total=total,
                         eta_s=round(elapsed * (total - done) / done, 1) if done else None)
            if time.time() - last_write[0] >= every_s or done == total:
                last_write[0] = time.time()
                self.run_dir.write_status(self.status)
                if self.progress:
                    self.progress(step, self.cfg.steps, {"evaluating": dict(phase)})

        return on_samples

    def finish_metrics(self) -> None:
        """Resumed from the final checkpoint: the last evaluation is already on disk."""
        if self.evaluator and self.status.metrics is None:
            rows = [r for r in self.run_dir.metric_rows() if r["step"] == self.cfg.steps]
            self.status.metrics = {"step": self.cfg.steps, **summarize(rows)}


def drive(trainer: Trainer, recorders: Sequence[Recorder]) -> None:
    """Step the trainer until every run has reached its `steps` or diverged. A diverging run
    is recorded 'diverged' at that step and stops; the others go on."""
    starts = {r.start for r in recorders}
    if len(starts) != 1:
        raise ValueError(f"runs trained together must resume from one step, got {sorted(starts)}")
    noises = [fixed_noise(r.cfg, trainer.device) for r in recorders]
    for r in recorders:
        if r.progress:
            r.progress(r.start, r.cfg.steps, None)
        r.tick = time.perf_counter()
    for step in range(starts.pop() + 1, max(r.cfg.steps for r in recorders) + 1):
        stats = trainer.step(step)
        logged = []
        for r in recorders:
            if not r.active:
                continue
            try:
                r.log(trainer, step, stats[r.k])
                logged.append(r)
            except Diverged as err:
                r.status.diverge(str(err))
                r.active = False
                trainer.stop(r.k)
        evaluated = _evaluate_due(trainer, logged, step)
        for r in logged:
            r.finish_step(trainer, step, noises[r.k], evaluated.get(r.k))
            if step == r.cfg.steps:
                r.active = False
                trainer.stop(r.k)
        if not any(r.active for r in recorders):
            break


def _evaluate_due(trainer: Trainer, recorders: Sequence[Recorder], step: int) -> dict[int, list[dict[str, Any]]]:
    """Rows of the runs due for evaluation at `step` whose settings agree with another's, evaluated
    together (one extractor pass per draw); a run alone is left to its own evaluator."""
    by_key: dict[Any, list[Recorder]] = {}
    for r in recorders:
        if r.evaluation_due(step):
            by_key.setdefault(r.evaluator.together_key(step), []).append(r)
    rows: dict[int, list[dict[str, Any]]] = {}
    for group in (g for g in by_key.values() if len(g) > 1):
        evaluated = group[0].evaluator.together([r.evaluator for r in group], [trainer.generator(r.k) for r in group], step,
                                      [r._evaluation_progress(step) for r in group])
        rows.update({r.k: run_rows for r, run_rows in zip(group, evaluated)})
    return rows


def _threads_for(cfg: TrainConfig, device: torch.device, run_dir: RunDir) -> int:
    """CPU threads of this run: the thread count a resumed run started with (CPU reductions
    depend on it), else the config's, else torch's default."""
    recorded = run_dir.recorded_execution() if run_dir.file(CHECKPOINT).exists() else {}
    if device.type == "cpu" and recorded.get("threads"):
        return int(recorded["threads"])
    return cfg.threads or torch.get_num_threads()


@dataclass
class RunSpec:
    """One run to train: its config, directory, and where its config came from."""

    cfg: TrainConfig
    run_dir: Path
    preset: str | None = None
    hacks: tuple[str, ...] = ()
    progress: Progress | None = None


@dataclass
class _Opened:
    """A run whose lock this process holds and whose directory holds its config."""

    spec: RunSpec
    rd: RunDir
    warnings: list[str]


def _open(spec: RunSpec, device: torch.device, fresh: bool = False) -> _Opened | dict[str, Any]:
    """Lock the run and check its directory; a finished run's status instead (lock released).
    Raises `RunLocked` / `ConfigMismatch` / `RunDirError`, or `ConfigError` before anything is written."""
    check_resolved(spec.cfg)  # an unknown dataset or metric, or a protocol not followed
    rd = RunDir(spec.run_dir)
    rd.acquire()
    try:
        rd.refuse_links()
        if fresh:
            rd.reset()
        rd.check_identity(spec.cfg.to_dict(), IDENTITY_KNOBS, TrainConfig().to_dict(), {"device_type": device.type})
        previous = rd.read_status()
    except BaseException:
        rd.release()
        raise
    if previous.get("status") in FINAL:
        rd.release()
        return previous  # finished: a diverged run would only diverge again
    return _Opened(spec, rd, [previous["error"]] if previous.get("corrupt_status") else [])


def train(cfg: TrainConfig, run_dir: str | Path, *, preset: str | None = None, hacks: Sequence[str] = (),
          data_root: str | Path | None = None, progress: Progress | None = None, fresh: bool = False,
          resources: Resources | None = None) -> dict[str, Any]:
    """Train one GAN into `run_dir` and return its status dict.

    Holds the run's lock while training (`RunLocked` when another process trains it),
    refuses a directory holding another config (`ConfigMismatch`; `fresh=True` discards it),
    resumes from its checkpoint, and returns a completed or diverged run as it is. Any other
    exception is recorded as 'failed' (or 'interrupted' on Ctrl-C) and re-raised.
    """
    device = devices.resolve(cfg.device)  # a bad device fails before anything is written
    devices.bind(device)
    opened = _open(RunSpec(cfg, Path(run_dir), preset, tuple(hacks), progress), device, fresh)
    if isinstance(opened, dict):
        return opened
    try:
        return _train_opened([opened], device, data_root, resources or Resources())[0]
    finally:
        opened.rd.release()


def train_group(specs: Sequence[RunSpec], *, data_root: str | Path | None = None,
                resources: Resources | None = None) -> list[dict[str, Any]]:
    """Train runs that share a `structure_key` together (one fused trainer) and return each
    run's outcome {status, error}; never raises for a run that fails. A run another process
    holds is 'busy'; a finished one is returned as it is; a directory holding another config
    is 'failed' with the reason. A crash of the group records every unfinished run 'failed'
    with the cause; each resumes from its own checkpoint on the next sweep."""
    device = devices.resolve(specs[0].cfg.device)
    devices.bind(device)
    outcomes: list[dict[str, Any] | None] = [None] * len(specs)
    opened: list[tuple[int, _Opened]] = []
    for i, spec in enumerate(specs):
        try:
            result = _open(spec, device)
        except RunLocked as err:
            outcomes[i] = {"status": "busy", "error": str(err)}
            continue
        except (RunDirError, ConfigError) as err:
            outcomes[i] = {"status": "failed", "error": str(err)}
            continue
        if isinstance(result, dict):
            outcomes[i] = {"status": result.get("status"), "error": result.get("error")}
        else:
            opened.append((i, result))
    try:
        if opened:
            statuses = _train_opened([o for _, o in opened], device, data_root, resources or Resources())
            for (i, _), status in zip(opened, statuses):
                outcomes[i] = {"status": status["status"], "error": status.get("error")}
    except KeyboardInterrupt:
        raise
    except Exception as err:
        for i, _ in opened:
            outcomes[i] = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
    finally:
        for _, o in opened:
            o.rd.release()
    return [o or {"status": "failed", "error": "not trained"} for o in outcomes]


def _start(opened: _Opened, device: torch.device, threads: int) -> RunStatus:
    """Write the run's config.json and its 'running' status; returns the status record."""
    cfg, rd = opened.spec.cfg, opened.rd
    status = RunStatus(warnings=list(opened.warnings))
    status.start(cfg.steps)
    execution = {"device": str(device), "device_type": device.type, "threads": threads,
                 "precision_policy": devices.precision_policy(device, cfg.precision)}
    rd.write_config({"run_id": run_id(cfg), "config": cfg.to_dict(), "preset": opened.spec.preset,
                     "hacks": list(opened.spec.hacks), "execution": execution, "provenance": provenance(device)})
    rd.write_status(status)
    return status


def _train_opened(runs: Sequence[_Opened], device: torch.device, data_root: str | Path | None,
                  resources: Resources) -> list[dict[str, Any]]:
    """Train locked runs of one structure (K = 1: GanTrainer; more: FusedTrainer)."""
    cfgs = [o.spec.cfg for o in runs]
    threads = _threads_for(cfgs[0], device, runs[0].rd)
    torch.set_num_threads(threads)
    keep_freed_memory()  # a CPU step and evaluation reuse their freed tensors instead of page-faulting new ones
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    statuses = [_start(o, device, threads) for o in runs]
    try:
        for cfg, status in zip(cfgs, statuses):  # after status.json exists: a network that cannot step fails here
            status.compute = step_compute(cfg)  # FLOPs per step and parameter counts, for equal compute
        evaluators = [_evaluator(cfg, device, data_root) for cfg in cfgs]  # a bad metric fails before training
        images, info = resources.training_images(cfgs[0], device, data_root)
        for o, status in zip(runs, statuses):
            status.data = info  # cache hit, load time, memory: provenance and cost of the data
            o.rd.write_status(status)
        checkpoints = [o.rd.load_checkpoint(cfg.steps) for o, cfg in zip(runs, cfgs)]
        # Runs resuming from different steps cannot step together: one trainer per resume step.
        by_start: dict[int, list[int]] = {}
        for i, (state, _) in enumerate(checkpoints):
            by_start.setdefault(state["step"] if state else 0, []).append(i)
        for members in by_start.values():
            for i in members:  # the group each run is really trained in (a resume may split a fused job)
                statuses[i].fused_group = len(members) if len(members) > 1 else None
            trainer = make_trainer([cfgs[i] for i in members], images, device)
            recorders = [Recorder(k, cfgs[i], runs[i].rd, statuses[i], evaluators[i], runs[i].spec.progress)
                         for k, i in enumerate(members)]
            for r, i in zip(recorders, members):
                r.resume(trainer, *checkpoints[i])
            drive(trainer, recorders)
            for r in recorders:
                if r.status.status == "running":
                    r.status.complete()
                    r.finish_metrics()
    except KeyboardInterrupt:
        for status in statuses:
            if status.status == "running":
                status.interrupt("interrupted (Ctrl-C, or SIGTERM passed on as one); re-run to resume")
        raise
    except Exception as err:
        for status in statuses:
            if status.status == "running":
                status.fail(f"{type(err).__name__}: {err}", traceback.format_exc())
        raise
    finally:
        for o, status in zip(runs, statuses):
            status.finish()
            try:
                o.rd.write_status(status)
            except OSError as err:  # disk full: the caller still gets the cause, in the exception it sees
                status.status_write_error = f"{o.rd.file(STATUS)} could not be written: {err}"
    return [status.to_json() for status in statuses]


def _evaluator(cfg: TrainConfig, device: torch.device, data_root: str | Path | None) -> RunEvaluator | None:
    """`make_evaluator`, imported only when the run asks for a metric (a `metrics: none` run never loads torch-fidelity)."""
    if not parse_metrics(cfg.metrics, cfg.dataset):
        return None
    from ganbench.metrics.evaluator import make_evaluator
    return make_evaluator(cfg, device, data_root)
