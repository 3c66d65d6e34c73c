"""The live display of a sweep: one bar for all runs, one per running run, one per dataset being decoded,
one while the step costs are timed; the planned total before the first run, an ETA all along."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Sequence


from ganbench.cli.tables import describe_phase, fmt_seconds

if TYPE_CHECKING:  # annotations only: imported when a function runs (a fast `ganbench --help`)
    from rich.console import Console


def plan_line(plan: Any) -> str:
    """'planned: ≈ 37m03s on 2 workers (training 28m13s + 168 evaluations 8m21s + …); done ≈ 02:41'."""
    cost = plan.cost
    finish = time.strftime("%H:%M", time.localtime(time.time() + cost["total_s"]))
    return (f"planned: ≈ {fmt_seconds(cost['total_s'])} on {plan.workers} worker(s) on {plan.device} (training "
            f"{fmt_seconds(cost['train_s'])} + {cost['evaluations']} evaluations {fmt_seconds(cost['eval_s'])} + "
            f"start-up {fmt_seconds(cost['startup_s'] + cost['one_time_s'])}), timed here; done ≈ {finish}")


class Eta:
    """Seconds left in a sweep. With the sweep's plan (`SweepPlan`): each run's planned seconds, the
    share of them done (by steps), and how fast the plan is being worked off so far — so a costly arm
    (4× a step) or the evaluations do not skew it, as a plain run-steps rate would. Until 5 % of the
    planned work is done, the plan alone. Without a plan (Ray, SLURM): the run-steps rate."""

    WARM_UP = 0.05

    def __init__(self, todo: Sequence[Any], clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.start_steps = {s.run.run_id: s.step for s in todo}
        self.total_steps = sum(s.run.config.steps - s.step for s in todo)
        self.started_at = clock()
        self.plan: Any = None

    def planned(self, plan: Any) -> None:
        self.plan, self.started_at = plan, self.clock()  # the workers start now

    def steps_done(self, states: Sequence[Any]) -> int:
        return sum(max(min(s.step, s.run.config.steps) - self.start_steps[s.run.run_id], 0) for s in states
                   if s.run.run_id in self.start_steps)

    def _fraction(self, state: Any) -> float:
        if state.status in ("completed", "diverged", "failed"):
            return 1.0
        start = self.start_steps[state.run.run_id]
        return max(min(state.step, state.run.config.steps) - start, 0) / max(state.run.config.steps - start, 1)

    def _planned_done(self, states: Sequence[Any]) -> tuple[float, float]:
        """(planned seconds done, planned seconds in all) of the runs of the plan."""
        seconds = self.plan.run_seconds
        done = sum(seconds[s.run.run_id] * self._fraction(s) for s in states if s.run.run_id in seconds)
        return done, sum(seconds.values())

    def seconds_left(self, states: Sequence[Any]) -> tuple[float | None, bool]:
        """(seconds left or None when nothing says yet, whether the plan alone said it)."""
        elapsed = self.clock() - self.started_at
        if self.plan is not None:
            done, planned = self._planned_done(states)
            if done < self.WARM_UP * planned:
                return max(self.plan.cost["total_s"] - elapsed, (planned - done) / self.plan.cost["parallel"]), True
            return (planned - done) * elapsed / done, False
        done_steps = self.steps_done(states)
        return ((self.total_steps - done_steps) * elapsed / done_steps if done_steps else None), False

    def text(self, states: Sequence[Any]) -> str:
        left, by_plan = self.seconds_left(states)
        if left is None:
            return "ETA unknown yet"
        finish = time.strftime("%H:%M", time.localtime(time.time() + left))
        return f"ETA {fmt_seconds(left)} (≈ {finish}{', planned' if by_plan else ''})"


class SweepProgress:
    """`update(states)` and `data(label, done, total)` are the sweep's callbacks (`run_suite`'s
    `on_update` and `on_data`); steps count from where each run stood when the sweep began."""

    def __init__(self, console: Console, todo: Sequence[Any]) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("{task.fields[eta]}"), console=console)
        self.eta = Eta(todo)
        self.start_steps = self.eta.start_steps
        self.overall = self.bar.add_task("all runs", total=self.eta.total_steps or 1, eta="")
        self.per_run: dict[str, Any] = {}
        self.decoding: dict[str, Any] = {}
        self.timing_task: Any = None

    def __enter__(self) -> "SweepProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def update(self, states: Sequence[Any]) -> None:
        from ganbench.execution.sweep import results_summary

        counts = results_summary(states)
        done = self.eta.steps_done(states)
        busy = f" · {counts['busy']} busy elsewhere" if counts.get("busy") else ""
        self.bar.update(self.overall, completed=done, eta=self.eta.text(states), description=(
            f"runs {counts.get('completed', 0) + counts.get('diverged', 0)}/{len(states)} done · "
            f"{counts.get('failed', 0)} failed · {counts.get('diverged', 0)} diverged · "
            f"{counts.get('running', 0)} running{busy}"))
        for state in states:
            self._update_run(state)

    def _update_run(self, state: Any) -> None:
        rid, label = state.run.run_id, f"  {state.run.arm} s{state.run.seed}"
        if state.status == "running" and rid not in self.per_run:
            self.per_run[rid] = self.bar.add_task(label, total=state.run.config.steps, eta="")
        if rid in self.per_run:
            phase = describe_phase(state.phase) if state.status == "running" else ""
            self.bar.update(self.per_run[rid], completed=state.step, description=label + (f" · {phase}" if phase else ""))
            if state.status != "running":
                self.bar.remove_task(self.per_run.pop(rid))

    def data(self, label: str, done: int, total: int) -> None:
        if label not in self.decoding:
            self.decoding[label] = self.bar.add_task(f"decoding {label}", total=total, eta="")
        self.bar.update(self.decoding[label], completed=done)

    def timing(self, done: int, total: int, arm: str) -> None:
        """The step-cost timing before the first run: one network structure at a time."""
        if self.timing_task is None:
            self.timing_task = self.bar.add_task("timing one step of each network structure", total=total, eta="")
        self.bar.update(self.timing_task, completed=done, eta=f"now: {arm}" if arm else "")
        if done == total:
            self.bar.remove_task(self.timing_task)

    def planned(self, plan: Any) -> None:
        self.eta.planned(plan)
        self.bar.console.print(plan_line(plan), highlight=False)


class PlainProgress:
    """The sweep's progress for a log file (stdout not a terminal): one line when a run starts and when
    it ends (its status, time and error), and every `every_s` a summary line (runs done, run-steps/s
    since the sweep began, ETA at that rate) — plain text, no redraws, nothing truncated."""

    def __init__(self, console: Console, todo: Sequence[Any], every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console, self.every_s, self.clock = console, every_s, clock
        self.eta = Eta(todo, clock)
        self.start_steps, self.total = self.eta.start_steps, self.eta.total_steps
        self.started_at = self.last_summary = self.clock()
        self.seen: dict[str, str] = {}

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def _say(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True, markup=False)

    def update(self, states: Sequence[Any]) -> None:
        for state in states:
            before, rid = self.seen.get(state.run.run_id), state.run.run_id
            if state.status == before or rid not in self.start_steps:
                continue
            self.seen[rid] = state.status
            name = f"{state.run.arm} seed {state.run.seed} ({rid})"
            if state.status == "running":
                self._say(f"started {name}")
            elif state.status in ("completed", "diverged", "failed", "interrupted"):
                self._say(f"{state.status} {name} at step {state.step}/{state.run.config.steps}"
                          + (f": {state.error}" if state.error else ""))
        if self.clock() - self.last_summary >= self.every_s:
            self.last_summary = self.clock()
            self._say(self.summary(states))

    def summary(self, states: Sequence[Any]) -> str:
        done = self.eta.steps_done(states)
        finished = sum(s.status in ("completed", "diverged") for s in states)
        rate = done / max(self.clock() - self.eta.started_at, 1e-9)
        eta = f", {self.eta.text(states)}" if done < self.total else ""
        return (f"progress: {finished}/{len(states)} runs done, {sum(s.status == 'failed' for s in states)} failed, "
                f"{sum(s.status == 'running' for s in states)} running; {done}/{self.total} run-steps, "
                f"{rate:.1f} run-steps/s{eta}")

    def data(self, label: str, done: int, total: int) -> None:
        if done == total:
            self._say(f"decoded {label}: {total} images")

    def timing(self, done: int, total: int, arm: str) -> None:
        if done == 0:
            self._say(f"timing one step of each of {total} network structure(s) before the first run "
                      "(saved as each is timed)")
        elif done == total:
            self._say(f"timed {total} network structure(s)")

    def planned(self, plan: Any) -> None:
        self.eta.planned(plan)
        self._say(plan_line(plan))


def sweep_progress(console: Console, todo: Sequence[Any]) -> SweepProgress | PlainProgress:
    """Live bars on a terminal; plain lines when stdout is redirected to a file or a pipe."""
    return SweepProgress(console, todo) if console.is_terminal else PlainProgress(console, todo)
