"""Sweeps: plan a suite, run what is not finished, and say where every run stands.

`results/<suite>/suite.json` records the design (arms, reference arm, aliases) and which
run id belongs to which arm and seed; each run lives in `results/<suite>/runs/<run_id>/`.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ganbench import rundir
from ganbench.config import fusion_key, structure_key, training_only
from ganbench.execution.jobs import RunState, Update, default_workers, make_jobs, run_threads
from ganbench.execution.local import Executor, LocalExecutor
from ganbench.plugins import loaded_plugins
from ganbench.rundir import FINAL, RunDir, RunDirError
from ganbench.study.design import roman
from ganbench.study.suite import Run, Suite, SuiteError, did_you_mean
from ganbench.suitedir import RUNS

if TYPE_CHECKING:
    from ganbench.execution.costs import SweepPlan, TimingProgress


@dataclass(frozen=True)
class Selection:
    only_arms: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()


def select_runs(suite: Suite, selection: Selection) -> list[Run]:
    arms = set(suite.arms)
    for name in selection.only_arms:
        if name not in arms:
            hint = did_you_mean(name, arms) or f"; its arms: {', '.join(suite.arms)}"
            raise SuiteError(f"--only: no arm '{name}' in {suite.path}{hint}")
    for seed in selection.seeds:
        if seed not in suite.seeds:
            raise SuiteError(f"--seeds: seed {seed} is not in the suite's seeds {list(suite.seeds)}")
    return [r for r in suite.runs
            if (not selection.only_arms or r.arm in selection.only_arms)
            and (not selection.seeds or r.seed in selection.seeds)]


def write_manifest(suite: Suite) -> None:
    suite.dir.write_manifest({
        "name": suite.name, "suite_file": str(suite.path), "description": suite.description,
        "seeds": list(suite.seeds), "budget": {"kind": suite.budget.kind, "amount": suite.budget.amount,
                                               "device": suite.budget.device, "text": suite.budget.describe()},
        "analysis": suite.analysis,
        **({"overrides": dict(suite.overrides)} if suite.overrides else {}),  # only with --set: old manifests unchanged
        # what `report` and `status` need loaded again (-p) to read the suite; said, never imported from here
        **({"plugins": loaded_plugins()} if loaded_plugins() else {}),
        "designs": [{"part": d.name, "kind": d.kind, "preset": d.preset, "studied_hacks": list(d.studied),
                     "reference_arm": d.reference_arm, "resolution": d.resolution,
                     "generators": list(d.generators), "aliases": list(d.aliases),
                     **({"budget": {"kind": d.budget.kind, "amount": d.budget.amount, "reference": d.budget.reference,
                                    "text": d.budget.describe()}} if d.budget else {}),  # a part's own only
                     "arms": [{"name": a.name, "hacks": list(a.hacks), "set": dict(a.overrides),
                               "factors": dict(a.factors)} for a in d.arms]} for d in suite.designs],
        "runs": [{"run_id": r.run_id, "arm": r.arm, "seed": r.seed, "hacks": list(r.hacks)} for r in suite.runs],
    })


def pending_runs(suite: Suite, selection: Selection) -> list[Run]:
    """The selected runs that are not completed or diverged."""
    return [s.run for s in run_states(suite, select_runs(suite, selection)) if s.status not in FINAL]


def run_states(suite: Suite, runs: Sequence[Run]) -> list[RunState]:
    """One state per distinct run id (two arms with the same config share one run). A run whose
    directory cannot be used (a symlink out of the results directory) is 'failed' with the reason
    and never trained; the others go on."""
    states, seen = [], set()
    existing = suite.dir.existing_run_ids()
    for run in runs:
        if run.run_id in seen:
            continue
        seen.add(run.run_id)
        if existing is not None and run.run_id not in existing:  # no directory yet: pending (a 100 000-run plan stats none of them)
            states.append(RunState(run, suite.dir.path / RUNS / run.run_id))
            continue
        try:
            path = suite.dir.run_path(run.run_id)
        except RunDirError as err:
            states.append(RunState(run, suite.dir.path / RUNS / run.run_id, status="failed", error=str(err)))
            continue
        status = RunDir(path).read_status()
        state = RunState(run, path)
        if status.get("status") in FINAL:
            state.status, state.step, state.error = status["status"], status.get("step", 0), status.get("error")
        states.append(state)
    return states


DataProgress = Callable[[str, int, int], None]  # (what, done, total)


def data_needs(runs: Sequence[Run]) -> list[tuple[str, str, Any]]:
    """Distinct (dataset, split, preprocessing) the runs train and evaluate on."""
    from ganbench.data.sampler import preprocess

    needs: dict[tuple[str, str, Any], None] = {}
    for run in runs:
        cfg = run.config
        prep = preprocess(cfg)
        needs[(cfg.dataset, cfg.data_split, prep)] = None
        if cfg.metrics != "none":
            needs[(cfg.dataset, cfg.eval_split, prep)] = None
    return list(needs)


def prepare_data(runs: Sequence[Run], data_root: str | None, on_progress: DataProgress | None = None) -> None:
    """Decode every split the runs need into the cache once, here, before workers start
    (a missing dataset fails the sweep now, with the message saying where to put it)."""
    from ganbench.data.cache import prepare

    for name, split, prep in data_needs(runs):
        label = f"{name} {split} {prep.size}px×{prep.channels}"
        prepare(name, split, prep, data_root, None if on_progress is None else
                lambda done, total, label=label: on_progress(label, done, total))


MAX_FUSED_CAP = 32  # beyond this a DCGAN group gains little (measured on an H100; docs/gpu-engine.md)


def auto_max_fused(runs: Sequence[Run], devices: Sequence[str], workers: int) -> int:
    """How many runs one fused job may hold: 1 on the CPU (one run per process is as fast
    there); on a GPU, enough to give every worker a group (the largest fusable set of pending
    runs spread over the workers), no more than fit in half of the GPU's free memory shared by
    its workers (measured by training one step of the largest pending run), up to MAX_FUSED_CAP."""
    if not runs or all(d == "cpu" for d in devices):
        return 1
    import torch

    from ganbench.training.factory import trainer_on_fake_data

    sizes = Counter(key for key in (fusion_key(r.config) for r in runs) if key is not None)
    spread = -(-max(sizes.values(), default=1) // workers)  # ceil: every worker gets a group

    device = torch.device(devices[0])
    run = max(runs, key=lambda r: (r.config.batch_size * r.config.image_size ** 2, r.config.g_width))
    cfg = training_only(run.config, device=str(device))
    torch.zeros(1, device=device)  # the context must exist before its memory statistics can be read
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    trainer = trainer_on_fake_data([cfg], device, alone=True)
    trainer.step(1).tolist()
    per_run = max(torch.cuda.max_memory_allocated(device) - before, 1)
    del trainer
    free, _ = torch.cuda.mem_get_info(device)
    per_gpu_workers = max(1, workers // len(devices))
    return int(max(1, min(MAX_FUSED_CAP, spread, 0.5 * free / per_gpu_workers // per_run)))


def runs_to_train(suite: Suite, selection: Selection, fresh: bool = False) -> list[Run]:
    """The selected runs a sweep would train now: the unfinished ones, or all of them with `fresh`. Read-only."""
    states = run_states(suite, select_runs(suite, selection))
    return [s.run for s in states if fresh or s.status not in FINAL]


def refuse_slow_precision(runs: Sequence[Run], devices: Sequence[str], allow: bool = False) -> None:
    """A `ConfigError` before any work when `runs` (those about to train: a finished bf16 study reports and
    resumes anywhere) would train bf16 on this CPU without native bf16 (`devices.slow_precision_problem`),
    unless `allow` (`--allow-slow-precision`)."""
    from ganbench.devices import slow_precision_problem
    from ganbench.errors import ConfigError

    problem = slow_precision_problem({r.config.precision for r in runs}, list(devices))
    if problem and not allow:
        raise ConfigError(problem)


def run_suite(suite: Suite, selection: Selection = Selection(), workers: int | None = None,
              devices: Sequence[str] = ("cpu",), data_root: str | None = None,
              on_update: Update | None = None, on_data: DataProgress | None = None,
              executor: Executor | None = None, max_fused: int | None = None, fresh: bool = False,
              allow_slow_precision: bool = False, on_timing: "TimingProgress | None" = None,
              on_plan: Callable[["SweepPlan"], None] | None = None) -> list[RunState]:
    """Train every selected run that is not completed or diverged; returns all their states. `fresh`:
    every selected run starts over, its earlier files kept in its replaced/ folder (`RunDir.set_aside`).
    bf16 on a CPU without native bf16 is refused first (`refuse_slow_precision`) unless
    `allow_slow_precision`. Before the first run starts, the local executor times each network
    structure (`on_timing(done, total, label)`, each timing saved as it is made) and hands the
    planned cost to `on_plan` (a `SweepPlan`: total, parts, per-run seconds).

    The default executor is local processes, training fused groups of up to `max_fused` runs
    (None: `auto_max_fused`); another `executor` (Ray) gets the same states. Data is decoded
    here first only for the local executor: a cluster's nodes may see data this machine does
    not, and they build their caches themselves (under a file lock).
    """
    if executor is None:  # a cluster's nodes are other CPUs: only the local executor trains on this one
        refuse_slow_precision(runs_to_train(suite, selection, fresh), devices, allow_slow_precision)
    if not fresh and suite.dir.has_manifest() and not os.access(suite.dir.path, os.W_OK):
        finished = run_states(suite, select_runs(suite, selection))
        if all(s.status in FINAL for s in finished):  # nothing to train, nothing to write (a read-only copy)
            return finished
    rundir.ensure_writable(suite.dir.path / RUNS)  # an unwritable root fails here, with a message
    write_manifest(suite)
    if fresh:
        set_aside(run_states(suite, select_runs(suite, selection)))
    states = run_states(suite, select_runs(suite, selection))
    if executor is None:
        pending = [s.run for s in states if s.status not in FINAL]
        from ganbench.execution.costs import record_plan, record_step_costs, start_timing_worker_startup

        if pending:
            start_timing_worker_startup()  # beside the data checks and step timing below
        prepare_data(pending, data_root, on_data)
        workers = default_workers(devices) if workers is None else workers
        if max_fused is None:
            max_fused = auto_max_fused(pending, devices, workers)
        record_step_costs(suite, pending, devices[0], on_timing)  # what trains now: nothing when all are done
        sweep_plan = record_plan(suite, [s for s in states if s.status not in FINAL], devices, workers, data_root)
        if on_plan is not None and sweep_plan is not None:
            on_plan(sweep_plan)
        executor = LocalExecutor(workers, devices, data_root, max_fused=max_fused)
    executor.execute(states, on_update)
    return states


def set_aside(states: Sequence[RunState]) -> None:
    """`--fresh`: each run's files moved to its replaced/ folder, under its lock; a run another process
    is training keeps its files (it shows as busy) and the others go on."""
    for state in states:
        run = rundir.RunDir(state.run_dir)
        try:
            run.refuse_links()  # a symlinked run directory is never followed (run_states says why)
            with run.locked("setting aside"):
                run.set_aside()
        except rundir.RunDirError:  # RunLocked (busy elsewhere) or a link: its state says so, the rest go on
            continue


def plan_rows(suite: Suite, selection: Selection, estimate: bool, device: str,
              max_fused: int = 1, data_root: str | None = None,
              on_timing: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """One row per selected run: arm, seed, run id, status, the job (group) that would train it,
    and (optionally) its share of that job's estimated training seconds (`estimate_s`) and the
    seconds of the evaluations it has left (`eval_s`). Jobs of one shape and size, and
    evaluations of one metric set, are timed once."""
    from ganbench.execution.costs import estimate_step_seconds, evaluations_per_run, time_evaluation

    runs = select_runs(suite, selection)
    states = run_states(suite, runs)
    statuses = {s.run.run_id: observed_status(s) for s in states}
    for s in states:
        if statuses[s.run.run_id].get("status") in FINAL:
            s.status = statuses[s.run.run_id]["status"]
    group_of: dict[str, tuple[int, Any]] = {}
    for number, job in enumerate(make_jobs(states, max_fused), start=1):
        for run_id in job.run_ids:
            group_of[run_id] = (number, job)
    step_cost: dict[tuple, float] = {}
    to_time = {(structure_key(r.config), run_threads(r), len(group_of[r.run_id][1].runs)) for r in runs
               if r.run_id in group_of} if estimate else set()
    rows = []
    for run in runs:
        status = statuses[run.run_id]
        running = status.get("status") == "running"  # status.json's step lags its logs between checkpoints
        step = RunDir(status["path"]).reached_step(status) if running else status.get("step", 0)
        row = {"arm": run.arm, "seed": run.seed, "run_id": run.run_id, "status": status.get("status", "pending"),
               "step": step, "steps": run.config.steps, "estimate_s": None, "eval_s": None,
               "group": None, "phase": status.get("phase") if status.get("status") == "running" else None,
               "error": status.get("error")}
        if run.run_id in group_of:
            number, job = group_of[run.run_id]
            row["group"] = f"{number}" + (f" (×{len(job.runs)})" if len(job.runs) > 1 else "")
            if estimate:
                members = [r for r, _ in job.runs]
                key = (structure_key(run.config), run_threads(run), len(members))
                if key not in step_cost:
                    step_cost[key] = estimate_step_seconds(members, device)
                    if on_timing:  # `plan` shows how far its timing has got
                        on_timing(len(step_cost), len(to_time))
                row["estimate_s"] = step_cost[key] * (run.config.steps - row["step"]) / len(members)
                evaluations = evaluations_per_run(run.config, row["step"])
                row["eval_s"] = evaluations * time_evaluation(run.config, device, data_root)["seconds"] \
                    if evaluations else 0.0
        rows.append(row)
    return rows


def observed_status(state: RunState) -> dict[str, Any]:
    """A run's status as a reader should show it: status.json, except that a run recorded
    'running' whose lock no live process holds was stopped without a word (its driver was killed):
    it reads 'interrupted' (the next `ganbench run` resumes it). Read-only: probes the lock."""
    if state.error and state.status == "failed":  # unusable directory (run_states said why)
        return {"status": "failed", "error": state.error, "path": state.run_dir}
    run = RunDir(state.run_dir)
    status = {**run.read_status(), "path": state.run_dir}
    if status.get("status") == "running" and run.process_alive() is False:
        status.update(status="interrupted", phase=None,
                      error=f"status.json says running, but no process holds {run.file('.lock')}: it was stopped "
                            "without recording why (killed); `ganbench run` resumes it from its checkpoint")
    return status


def reference_twin_warnings(suite: Suite) -> list[str]:
    """What `plan` and `run` say of an arm that trains its reference arm's very runs."""
    return [f"arm {arm} trains exactly its reference arm's runs (the same configs): it changes nothing there, "
            "e.g. a hack its preset already holds, so its comparison measures nothing"
            for arm in suite.arms_like_their_reference()]


def design_lines(suite: Suite) -> list[str]:
    n_arms = sum(len(d.arms) for d in suite.designs)
    lines = [f"{n_arms} arms × {len(suite.seeds)} seeds = {len(suite.runs)} runs "
             f"({len({r.run_id for r in suite.runs})} distinct configs); budget: {suite.budget.describe()}"]
    lines += dataset_default_lines(suite)
    lines += budget_timing_lines(suite)
    for design in suite.designs:
        label = f"part '{design.name}': " if design.name else ""
        lines.append(f"{label}design {design.kind} from preset '{design.preset}', {len(design.arms)} arms, "
                     f"reference arm: {design.reference_arm or '-'}")
        if design.kind == "fractional_factorial":
            lines.append(f"  resolution {roman(design.resolution)}; generators: {', '.join(design.generators)}")
            lines.append("  alias structure (effects of order ≤ 2 that cannot be told apart; each chain once):")
            lines += [f"    {line}" for line in distinct_chains(design.aliases)]
    return lines


def distinct_chains(lines: Sequence[str]) -> list[str]:
    """Alias lines with each chain once: 'AB = CG = DH' and 'CG = AB = DH' are one chain."""
    seen: set[frozenset[str]] = set()
    out = []
    for line in lines:
        words = frozenset(word.strip() for word in line.split("(")[0].split("=") if word.strip() not in ("", "…"))
        if words not in seen:
            seen.add(words)
            out.append(line)
    return out


def budget_timing_lines(suite: Suite) -> list[str]:
    """For a seconds budget kept in budget.json: how its step times were measured and how far apart
    the timed blocks were (the steps of every arm follow from them)."""
    if suite.budget.kind != "seconds":
        return []
    recorded = suite.dir.read_budget() or {}
    structures = list((recorded.get("structures") or {}).values())
    if not structures:
        return ["  step times: not recorded yet (`ganbench run` or `plan --save` times them once and keeps them)"]
    spreads = [float(s.get("spread", 0.0)) for s in structures]
    return [f"  step times: {len(structures)} network structure(s) timed on {recorded.get('device')}, "
            f"{structures[0].get('method', '')}; spread {min(spreads):.0%}–{max(spreads):.0%}"]


def dataset_default_lines(suite: Suite) -> list[str]:
    """One line when runs of the suite got their network from the dataset's defaults
    (CIFAR-10: the 32-px colour net; CelebA: 64 px)."""
    from ganbench.data.datasets import get_dataset

    lines = []
    for name in sorted({run.config.dataset for run in suite.runs}):
        dataset = get_dataset(name)
        defaults = dataset.net_defaults
        if defaults and any(all(getattr(r.config, k) == v for k, v in defaults.items())
                            for r in suite.runs if r.config.dataset == name):
            lines.append(f"{dataset.describe_net_defaults()} unless `base` or an arm sets these knobs")
    return lines


def results_summary(states: Sequence[RunState]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in states:
        counts[state.status] = counts.get(state.status, 0) + 1
    return counts
