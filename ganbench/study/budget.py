"""A suite's training budget: equal steps, equal FLOPs or equal seconds for every arm.

    steps: 3000                         # every arm trains 3000 steps (the default kind)
    budget: {flops: 3.0e13}             # each arm trains round(flops / its FLOPs per step) steps
    budget: {seconds: 600, device: cpu} # each arm trains round(seconds / its step time) steps

Equal steps is not equal compute: an arm whose step costs more gets more compute. FLOPs per
step are counted (deterministic, `ganbench.training.compute`); seconds per step are timed
alone on the named device, once, and written to `results/<suite>/budget.json`, so a later
load (a resume, a report, another machine) derives the same steps and finds the same runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganbench import rundir
from ganbench.config import ConfigError, TrainConfig, did_you_mean

KINDS = ("steps", "flops", "seconds")
BUDGET_FILE = "budget.json"


@dataclass(frozen=True)
class Budget:
    kind: str  # steps | flops | seconds
    amount: float
    device: str = "cpu"  # where seconds are timed

    def describe(self) -> str:
        if self.kind == "steps":
            return f"equal steps ({int(self.amount)} per run)"
        if self.kind == "flops":
            return f"equal compute: {self.amount:.3g} FLOPs per run (steps = FLOPs / the arm's FLOPs per step)"
        return (f"equal time: {self.amount:g} s per run on `{self.device}` (steps = seconds / the arm's step time, "
                f"timed alone once and kept in {BUDGET_FILE})")


def parse_budget(spec: Any, where: str = "budget") -> Budget:
    """`{flops: X}`, `{seconds: S[, device: D]}` or `{steps: N}` → Budget; errors name the key."""
    if not isinstance(spec, dict) or not spec:
        raise ConfigError(f"{where}: expected a mapping such as {{flops: 3.0e13}} or {{seconds: 600, device: cpu}}")
    kinds = [k for k in spec if k in KINDS]
    for key in spec:
        if key not in (*KINDS, "device"):
            raise ConfigError(f"{where}.{key}: unknown key{did_you_mean(str(key), (*KINDS, 'device'))}; "
                              f"allowed: {', '.join((*KINDS, 'device'))}")
    if len(kinds) != 1:
        raise ConfigError(f"{where}: give exactly one of {', '.join(KINDS)}, got {kinds or 'none'}")
    kind = kinds[0]
    amount = spec[kind]
    if isinstance(amount, str):  # YAML 1.1 reads 3.0e13 (no exponent sign) as a string
        try:
            amount = float(amount)
        except ValueError:
            pass
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount <= 0:
        raise ConfigError(f"{where}.{kind}: expected a positive number, got {amount!r}")
    if "device" in spec and kind != "seconds":
        raise ConfigError(f"{where}.device: only a seconds budget is timed on a device")
    return Budget(kind, float(amount), str(spec.get("device", "cpu")))


class StepPlanner:
    """Steps per arm under a budget; seconds-per-step measurements persist in budget.json."""

    def __init__(self, budget: Budget, results_dir: Path) -> None:
        self.budget, self.path = budget, results_dir / BUDGET_FILE
        recorded = rundir.read_json(self.path) if self.path.exists() else {}
        same = recorded.get("kind") == budget.kind and recorded.get("device") == budget.device
        self.measured: dict[str, float] = dict(recorded.get("seconds_per_step", {})) if same else {}
        self.changed = False

    def steps_for(self, arm: str, cfg: TrainConfig) -> int:
        if self.budget.kind == "steps":
            return int(self.budget.amount)
        if self.budget.kind == "flops":
            from ganbench.training.compute import step_compute

            return max(1, round(self.budget.amount / step_compute(cfg)["flops_per_step"]))
        if arm not in self.measured:
            from ganbench.training.compute import time_step

            self.measured[arm] = time_step([cfg], self.budget.device, threads=cfg.threads or 1)
            self.changed = True
        return max(1, round(self.budget.amount / self.measured[arm]))

    def save(self) -> None:
        if self.changed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            rundir.write_json(self.path, {"kind": self.budget.kind, "device": self.budget.device,
                                          "seconds_per_step": self.measured,
                                          "note": "timed alone once; delete this file to time again"})
