"""The live display of a sweep: one bar for all runs, one per running run, one per dataset being decoded."""

from __future__ import annotations

from typing import Any, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ganbench.cli.tables import describe_phase, fmt_seconds


class SweepProgress:
    """`update(states)` and `data(label, done, total)` are the sweep's callbacks (`run_suite`'s
    `on_update` and `on_data`); steps count from where each run stood when the sweep began."""

    def __init__(self, console: Console, todo: Sequence[Any]) -> None:
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TimeRemainingColumn(), console=console)
        self.start_steps = {s.run.run_id: s.step for s in todo}
        self.overall = self.bar.add_task("all runs", total=sum(s.run.config.steps - s.step for s in todo) or 1)
        self.per_run: dict[str, Any] = {}
        self.decoding: dict[str, Any] = {}

    def __enter__(self) -> "SweepProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def update(self, states: Sequence[Any]) -> None:
        from ganbench.execution.sweep import results_summary

        counts = results_summary(states)
        done = sum(min(s.step, s.run.config.steps) - self.start_steps.get(s.run.run_id, s.step) for s in states
                   if s.run.run_id in self.start_steps)
        busy = f" · {counts['busy']} busy elsewhere" if counts.get("busy") else ""
        self.bar.update(self.overall, completed=max(done, 0), description=(
            f"runs {counts.get('completed', 0) + counts.get('diverged', 0)}/{len(states)} done · "
            f"{counts.get('failed', 0)} failed · {counts.get('diverged', 0)} diverged · "
            f"{counts.get('running', 0)} running{busy}"))
        for state in states:
            self._update_run(state)

    def _update_run(self, state: Any) -> None:
        rid, label = state.run.run_id, f"  {state.run.arm} s{state.run.seed}"
        if state.status == "running" and rid not in self.per_run:
            self.per_run[rid] = self.bar.add_task(label, total=state.run.config.steps)
        if rid in self.per_run:
            phase = describe_phase(state.phase) if state.status == "running" else ""
            self.bar.update(self.per_run[rid], completed=state.step, description=label + (f" · {phase}" if phase else ""))
            if state.status != "running":
                self.bar.remove_task(self.per_run.pop(rid))

    def data(self, label: str, done: int, total: int) -> None:
        if label not in self.decoding:
            self.decoding[label] = self.bar.add_task(f"decoding {label}", total=total)
        self.bar.update(self.decoding[label], completed=done)


class PlainProgress:
    """The sweep's progress for a log file (stdout not a terminal): one line when a run starts and when
    it ends (its status, time and error), and every `every_s` a summary line (runs done, run-steps/s
    since the sweep began, ETA at that rate) — plain text, no redraws, nothing truncated."""

    def __init__(self, console: Console, todo: Sequence[Any], every_s: float = 60.0) -> None:
        import time

        self.console, self.every_s, self.clock = console, every_s, time.monotonic
        self.start_steps = {s.run.run_id: s.step for s in todo}
        self.total = sum(s.run.config.steps - s.step for s in todo)
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
        done = sum(max(min(s.step, s.run.config.steps) - self.start_steps[s.run.run_id], 0) for s in states
                   if s.run.run_id in self.start_steps)
        finished = sum(s.status in ("completed", "diverged") for s in states)
        rate = done / max(self.clock() - self.started_at, 1e-9)
        eta = f", ETA {fmt_seconds((self.total - done) / rate)}" if rate > 0 and done < self.total else ""
        return (f"progress: {finished}/{len(states)} runs done, {sum(s.status == 'failed' for s in states)} failed, "
                f"{sum(s.status == 'running' for s in states)} running; {done}/{self.total} run-steps, "
                f"{rate:.1f} run-steps/s{eta}")

    def data(self, label: str, done: int, total: int) -> None:
        if done == total:
            self._say(f"decoded {label}: {total} images")


def sweep_progress(console: Console, todo: Sequence[Any]) -> SweepProgress | PlainProgress:
    """Live bars on a terminal; plain lines when stdout is redirected to a file or a pipe."""
    return SweepProgress(console, todo) if console.is_terminal else PlainProgress(console, todo)
