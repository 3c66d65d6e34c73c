"""Planning a suite's budget into steps (FLOPs counted, seconds timed), and loading a suite with it.

`study.suite.load_suite` is pure (no writes, no torch): a FLOPs or seconds budget needs a planner,
which this module supplies. `load_planned_suite` is what the CLI calls: it reads budget.json,
recovers a lost one from the runs, counts or times what is missing (torch), and with `record`
keeps the timings in budget.json under the suite's lock, so that two sweeps started together
time once and agree on every arm's steps.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganbench.cadence import steps_due
from ganbench.config import TrainConfig
from ganbench.files import RunDirError
from ganbench.study.budget import Budget, structure_id
from ganbench.study.suite import Suite, SuiteError, load_suite, suite_results_dir
from ganbench.suitedir import BUDGET, SuiteDir


def load_planned_suite(path: str | Path, results_root: str | Path = "results", record: bool = False,
                       overrides: dict[str, Any] | None = None) -> Suite:
    """`load_suite` with its budget planned (and the CLI's `--set` `overrides`). Writes nothing unless
    `record` (`ganbench run`, `plan --save`): then a seconds budget timed now is kept in budget.json."""
    try:
        results_dir, kind = suite_results_dir(path, results_root)
    except SuiteError:  # load_suite says it, with every other problem of the file
        results_dir, kind = None, "steps"
    planners: list[StepPlanner] = []

    def planner(budget: Budget, suite_dir: SuiteDir) -> Any:
        try:
            planners.append(StepPlanner(budget, suite_dir))
        except (ValueError, RuntimeError) as err:  # a corrupt budget.json or suite.json, named
            raise SuiteError(f"{path}: budget: {err}") from None
        return planners[-1].steps_for

    timed = record and kind == "seconds"
    with SuiteDir(results_dir).locked("budget") if timed else contextlib.nullcontext():
        suite = load_suite(path, results_root, planner=planner, overrides=overrides)
        if timed:
            for step_planner in planners:
                step_planner.save()
    return suite


@dataclass
class SuitePlan:
    """What `ganbench plan` shows (`--json` prints it as a dict)."""

    suite: str
    path: str
    design: list[str]  # the design's lines: arms, aliases, budget
    device: str
    workers: int
    max_fused: int
    runs: list[dict[str, Any]]  # per run: arm, seed, run id, status, steps, job, estimated seconds
    cost: dict[str, Any] | None  # the total and its parts; None when nothing is left to train
    power: list[dict[str, Any]]  # per verdict metric: seeds, family, pilot SD, minimum detectable change, seeds for --target
    warnings: list[str]  # what evaluating here will cost (Inception on a CPU), said before the table
    disk: dict[str, Any] | None = None  # the selected runs' disk: kept at the end, written over the sweep (`disk.py`)

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "warnings"}


def plan_suite(suite: Suite, selection: Any, devices: list[str], workers: int | None = None, estimate: bool = True,
               max_fused: int | None = None, data_root: str | None = None, save: bool = False,
               pilot: str | Path | None = None, target: str | None = None,
               on_timing: Any = None) -> SuitePlan:
    """The jobs and cost of a suite's unfinished runs on `devices` (with `save`, kept in plan.json), and
    what its seeds can detect (`power_lines`)."""
    from ganbench.devices import slow_precision_problem
    from ganbench.execution.costs import evaluation_warnings, plan_total, start_timing_worker_startup, write_plan
    from ganbench.execution.jobs import default_workers
    from ganbench.execution.sweep import auto_max_fused, design_lines, pending_runs, plan_rows, reference_twin_warnings

    n_workers = workers or default_workers(devices)
    pending = pending_runs(suite, selection)
    if estimate and pending:
        start_timing_worker_startup()  # beside the timings below
    if max_fused is None:
        max_fused = auto_max_fused(pending, devices, n_workers)
    warnings = evaluation_warnings(pending, devices[0], data_root) if estimate else []
    slow = slow_precision_problem({r.config.precision for r in pending}, devices)
    if slow:  # `run` refuses it; the plan's step times below are the slow ones
        warnings.insert(0, slow)
    rows = plan_rows(suite, selection, estimate, devices[0], max_fused, data_root, on_timing)
    todo = [r for r in rows if r["estimate_s"] is not None]
    cost = plan_total(suite, todo, devices, n_workers, data_root) if todo else None
    if todo and save:
        write_plan(suite.dir, devices[0], n_workers, todo)
    power = suite_power(suite, pilot, target)
    warnings = list(warnings) + [p["warning"] for p in power if p.get("warning")][:1]
    if estimate:
        warnings += equal_flops_warnings(suite)
    warnings += reference_twin_warnings(suite)
    return SuitePlan(suite.name, str(suite.path), design_lines(suite), devices[0], n_workers, max_fused, rows, cost,
                     power, warnings, selected_disk(suite, selection))


def selected_disk(suite: Suite, selection: Any) -> dict[str, Any]:
    """`disk.suite_disk` of the selected runs (one per run id)."""
    from ganbench.execution.costs import evaluations_per_run
    from ganbench.execution.disk import suite_disk
    from ganbench.execution.sweep import select_runs
    from ganbench.metrics.registry import METRICS, parse_metrics

    cfgs = list({r.run_id: r.config for r in select_runs(suite, selection)}.values())
    rows = [evaluations_per_run(c) * sum(len(METRICS[n].higher_is_better) for n in parse_metrics(c.metrics, c.dataset))
            for c in cfgs]
    return suite_disk(cfgs, rows)


def equal_flops_warnings(suite: Suite) -> list[str]:
    """The arms whose equal-FLOPs reading against their reference would fall before the first evaluation or
    more than `inference.MAX_READ_DISTANCE` of an interval from one (the report will refuse them)."""
    from ganbench.analysis.inference import MAX_READ_DISTANCE, read_distance
    from ganbench.training.compute import step_compute

    if suite.trains_equal_flops:
        return []  # a part trained to equal FLOPs answers it: the report reads no curve then
    first = {}
    for run in suite.runs:
        first.setdefault(run.arm, run.config)
    out = []
    for design in suite.designs:
        ref = first.get(design.reference_arm or "")
        if ref is None:
            continue
        ref_cost = step_compute(ref)["flops_per_step"]
        for arm in design.arms:
            cfg = first.get(arm.name)
            if cfg is None or arm.name == design.reference_arm:
                continue
            cost = step_compute(cfg)["flops_per_step"]
            if cost == ref_cost:
                continue
            budget = min(cost * cfg.steps, ref_cost * ref.steps)
            early, early_cost = (cfg, cost) if cost * cfg.steps > ref_cost * ref.steps else (ref, ref_cost)
            grid = steps_due(early.eval_every, early.steps)
            distance = read_distance(grid, budget / early_cost)
            if distance > MAX_READ_DISTANCE:
                out.append(f"{arm.name}: at equal FLOPs with {design.reference_arm} ({cost / ref_cost:.2g}× its FLOPs "
                           f"per step) the reading falls at step {budget / early_cost:.0f}, "
                           + ("before the first evaluation" if distance == float("inf") else
                              f"{distance:.0%} of an evaluation interval from one")
                           + "; the report will refuse it (evaluate more often, or train to a FLOPs budget)")
    return out


def verdict_metrics(suite: Suite) -> list[str]:
    """The metrics the suite's report will give verdicts on, by the report's own rule
    (`analysis.verdict_metrics.choose_metrics`) over the metrics its runs will write."""
    from ganbench.analysis.verdict_metrics import choose_metrics, expected_scored

    scored = expected_scored(dict.fromkeys((run.config.metrics, run.config.dataset) for run in suite.runs))
    return choose_metrics(scored, suite.analysis)[1] if scored else []


def family_size(suite: Suite, metrics: list[str]) -> int:
    """The most comparisons the suite's report can hold in its family (as `report.analysis.analyse` builds
    it): each verdict metric for every arm against its part's reference, once per pair of run sets (an arm
    of a FLOPs-trained part with the reference's steps is an earlier part's comparison), plus, when no part
    is trained to equal FLOPs, an equal-FLOPs reading for each arm whose network differs from the
    reference's (FLOPs per step can differ only then)."""
    from ganbench.config import structure_key

    network = {run.arm: structure_key(run.config) for run in suite.runs}
    runs: dict[str, set[str]] = {}
    for run in suite.runs:
        runs.setdefault(run.arm, set()).add(run.run_id)
    size, compared = 0, set()
    for design in suite.designs:
        if design.reference_arm is None:
            continue
        reference = frozenset(runs.get(design.reference_arm, ()))
        for arm in (a.name for a in design.arms if a.name != design.reference_arm):
            if (frozenset(runs.get(arm, ())), reference) in compared:
                continue
            compared.add((frozenset(runs.get(arm, ())), reference))
            size += len(metrics) + (not suite.trains_equal_flops and network.get(arm) != network.get(design.reference_arm))
    return size


def _per_arm_power(spec: Any, suite: Suite, seeds: int, family: int) -> dict[str, Any]:
    """Where the pilot has per-arm SDs: the detectable change per arm by Welch's power with its own SD against
    the reference's (the suite's reference arm where the pilot has it, else the pooled SD): the smallest and
    the largest, with their arms. One σ for every arm hides a spread like loo-cpu's 0.042–0.72."""
    from ganbench.analysis import power

    if len(spec.arm_sds) < 2:
        return {}
    sds = {arm: sd for arm, sd, _ in spec.arm_sds}
    references = [d.reference_arm for d in suite.designs]
    reference = next((sds[a] for a in references if a in sds), spec.sd)
    detectable = sorted((power.min_detectable(reference, seeds, family, sd_arm=sd), arm) for arm, sd in sds.items())
    (low, low_arm), (high, high_arm) = detectable[0], detectable[-1]
    return {"per_arm_text": f"per arm (each its own SD, Welch): from {power.as_change(low, spec.scale)} ({low_arm}) "
                            f"to {power.as_change(high, spec.scale)} ({high_arm})"}


def suite_power(suite: Suite, pilot: str | Path | None = None, target: str | None = None) -> list[dict[str, Any]]:
    """Per verdict metric: the minimum detectable change at 80 % power for the suite's seeds and family
    (from the pilot's seed SD), and the seeds a `target` change needs."""
    from ganbench.analysis import power
    from ganbench.analysis.inference import MIN_SEEDS

    metrics = verdict_metrics(suite)
    seeds, family = len(suite.seeds), family_size(suite, metrics)
    out = []
    for metric in metrics:
        spec = (power.pilot_from(pilot, metric) if pilot else None) or power.BUILT_IN.get(metric)
        row: dict[str, Any] = {"metric": metric, "seeds": seeds, "family": family}
        if spec is None or not family:
            row["note"] = "no pilot SD for this metric (give --pilot RESULTS_DIR)" if family else "no comparisons"
            out.append(row)
            continue
        mdc = power.min_detectable(spec.sd, seeds, family)
        row.update(sd=spec.sd, sd_dof=spec.dof, scale=spec.scale, pilot=spec.source, min_detectable=mdc,
                   min_detectable_text=power.as_change(mdc, spec.scale))
        low, high = spec.sd_range()
        if math.isfinite(low):  # what the σ's own uncertainty (its dof) does to the detectable change
            row["min_detectable_range_text"] = " to ".join(
                power.as_change(power.min_detectable(sd, seeds, family), spec.scale) for sd in (low, high))
        row.update(_per_arm_power(spec, suite, seeds, family))
        wanted = target or (power.DEFAULT_TARGET if spec.scale == "log" else None)
        if wanted and power.target_applies(wanted, spec.scale):
            delta = power.to_delta(wanted, spec.scale)
            row.update(target=wanted, seeds_for_target=power.seeds_needed(delta, spec.sd, family))
        if seeds < MIN_SEEDS:
            row["warning"] = (f"{seeds} seeds per arm: below {MIN_SEEDS} the report gives no verdicts (exploratory); "
                              f"{metric} then needs a change of {row['min_detectable_text']} to be seen at all")
        out.append(row)
    return out


@dataclass
class SuiteStatus:
    """What `ganbench status` shows (`--json` prints it as a dict)."""

    suite: str
    counts: dict[str, int]  # status → runs, from the run files
    runs: list[dict[str, Any]]
    planned_vs_measured: dict[str, Any] | None  # None: no saved estimate to compare with


def suite_status(suite: Suite, selection: Any) -> SuiteStatus:
    """Every selected run's state from its directory (any executor's), and each arm's planned vs measured time."""
    from ganbench.execution.costs import planned_vs_actual
    from ganbench.execution.sweep import plan_rows

    rows = plan_rows(suite, selection, estimate=False, device="cpu")  # jobs of one run: no grouping needed
    counts: dict[str, int] = {}  # from the run files, as the rows (run_states calls any unfinished run pending)
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return SuiteStatus(suite.name, counts, rows, planned_vs_actual(suite))


class BudgetReplanned(UserWarning):
    """budget.json holds the plan of another budget (kind, amount or device): planned again."""


class StepPlanner:
    """Steps per arm under a budget. A seconds budget is timed per network structure, on the
    budget's device, and kept in budget.json (with each arm's steps), so every later load derives
    the same steps and finds the same runs; `save()` writes it (only `ganbench run` and
    `plan --save` do). When budget.json is missing but runs have started, their own config.json
    says what steps they got, and that is what the suite keeps."""

    def __init__(self, budget: Budget, suite_dir: SuiteDir) -> None:
        self.budget, self.suite_dir = budget, suite_dir
        self.structures: dict[str, dict[str, Any]] = {}
        self.arm_steps: dict[str, dict[str, Any]] = {}
        self.first_format: dict[str, float] = {}  # arm → seconds per step: budget.json's first format
        self.reference_flops: float | None = None  # {flops: reference}: what the reference arm spends
        self.changed = False
        if budget.kind != "seconds":
            return
        recorded = suite_dir.read_budget()
        same = recorded is not None and recorded.get("kind") == budget.kind and recorded.get("device") == budget.device
        if same and recorded.get("amount") in (None, budget.amount):
            self.structures = dict(recorded.get("structures") or {})
            self.arm_steps = dict(recorded.get("arms") or {})
            self.first_format = dict(recorded.get("seconds_per_step") or {})
        elif recorded is not None:  # planned for another budget: every arm is planned again, and said
            warnings.warn(BudgetReplanned(
                f"{suite_dir.file(BUDGET)} was planned for {recorded.get('kind')} {recorded.get('amount')} on "
                f"{recorded.get('device')}, the suite asks {budget.kind} {budget.amount} on {budget.device}: its arms "
                "are planned again, so their runs get new ids (the runs trained under the old plan stay, under "
                "their own ids); put the suite's budget back to keep them"), stacklevel=2)
        else:
            self.arm_steps = self._recovered()
            self.changed = bool(self.arm_steps)

    def _recovered(self) -> dict[str, dict[str, Any]]:
        """arm → steps from the runs a previous sweep of this same budget started (suite.json maps
        run ids to arms; each run's config.json holds its steps). Unreadable runs are passed over."""
        if not self.suite_dir.has_manifest():
            return {}
        manifest = self.suite_dir.read_manifest()
        recorded = manifest.data.get("budget") or {}
        if (recorded.get("kind"), recorded.get("amount"), recorded.get("device")) != \
                (self.budget.kind, self.budget.amount, self.budget.device):
            return {}
        arms: dict[str, dict[str, Any]] = {}
        for run in manifest.runs:
            if run.arm in arms:
                continue
            try:
                record = self.suite_dir.run_dir(run.run_id).read_config()
            except (RunDirError, OSError):
                continue
            steps = (record or {}).get("config", {}).get("steps")
            if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1:
                arms[run.arm] = {"steps": steps, "source": f"recovered from runs/{run.run_id}/config.json"}
        return arms

    def steps_for(self, arm: str, cfg: TrainConfig) -> int:
        if self.budget.kind == "steps":
            return int(self.budget.amount)
        if self.budget.kind == "flops":
            from ganbench.training.compute import step_compute

            flops = step_compute(cfg)["flops_per_step"]
            if self.budget.reference:  # a part's {flops: reference}: the reference arm comes first (load_suite)
                if arm == self.budget.reference:
                    self.reference_flops = cfg.steps * flops
                    return cfg.steps
                if self.reference_flops is None:
                    raise RuntimeError(f"the reference arm '{self.budget.reference}' must be planned before '{arm}'")
                return max(1, round(self.reference_flops / flops))
            return max(1, round(self.budget.amount / flops))
        if arm in self.arm_steps:
            return int(self.arm_steps[arm]["steps"])
        if arm in self.first_format:
            seconds = float(self.first_format[arm])
        else:
            key = structure_id(cfg)
            if key not in self.structures:
                from ganbench.training.compute import time_step_robustly

                self.structures[key] = time_step_robustly(cfg, self.budget.device, threads=cfg.threads or 1)
            seconds = float(self.structures[key]["seconds_per_step"])
        steps = max(1, round(self.budget.amount / seconds))
        self.arm_steps[arm] = {"steps": steps, "structure": None if arm in self.first_format else structure_id(cfg)}
        self.changed = True
        return steps

    def record(self) -> dict[str, Any]:
        return {"kind": self.budget.kind, "device": self.budget.device, "amount": self.budget.amount,
                "structures": self.structures, "arms": self.arm_steps,
                **({"seconds_per_step": self.first_format} if self.first_format else {}),
                "note": "seconds per step timed alone once per network structure; each arm's steps follow. Delete "
                        "this file only together with the runs: the steps are part of every run id"}

    def save(self) -> None:
        if self.changed:
            self.suite_dir.write_budget(self.record())
            self.changed = False
