"""A suite's training budget: equal steps, equal FLOPs or equal seconds for every arm.

    steps: 3000                         # every arm trains 3000 steps (the default kind)
    budget: {flops: 3.0e13}             # each arm trains round(flops / its FLOPs per step) steps
    budget: {seconds: 600, device: cpu} # each arm trains round(seconds / its step time) steps

Equal steps is not equal compute: an arm whose step costs more gets more compute. FLOPs per
step are counted (deterministic, `ganbench.training.compute`); seconds per step are timed
alone on the named device, once per network structure (a median over several blocks, with the
spread recorded), and kept in `results/<suite>/budget.json` by `ganbench run`, so a later load (a
resume, a report, another machine) derives the same steps and finds the same runs.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from ganbench.config import ConfigError, TrainConfig, did_you_mean, structure_key
from ganbench.files import RunDirError
from ganbench.suitedir import BUDGET, SuiteDir

KINDS = ("steps", "flops", "seconds")


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
                f"timed alone once per network structure and kept in {BUDGET})")


def _number(value: Any) -> Any:
    if isinstance(value, str):  # YAML 1.1 reads 3.0e13 (no exponent sign) as a string
        try:
            return float(value)
        except ValueError:
            return value
    return value


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
    amount = _number(spec[kind])
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount) or amount <= 0:
        raise ConfigError(f"{where}.{kind}: expected a positive number (finite), got {spec[kind]!r}")
    if kind == "steps" and not float(amount).is_integer():
        raise ConfigError(f"{where}.steps: expected a whole number of steps, got {spec[kind]!r}")
    if "device" in spec and kind != "seconds":
        raise ConfigError(f"{where}.device: only a seconds budget is timed on a device")
    device = str(spec.get("device", "cpu"))
    if kind == "seconds":
        from ganbench.devices import SYNTAX, is_device_name

        if not is_device_name(device) or device == "auto":
            raise ConfigError(f"{where}.device: '{device}' is not a device to time on; expected cpu, cuda or cuda:N "
                              f"({SYNTAX} without auto: the steps must not depend on the machine)")
    return Budget(kind, float(amount), device)


def structure_id(cfg: TrainConfig) -> str:
    """A stable name for the network structure and thread count a step time belongs to (runs
    of one structure cost the same per step, whatever their arm, seed or learning rates)."""
    payload = json.dumps([*structure_key(cfg), cfg.threads or 1], default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


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
        self.changed = False
        if budget.kind != "seconds":
            return
        recorded = suite_dir.read_budget()
        same = recorded is not None and recorded.get("kind") == budget.kind and recorded.get("device") == budget.device
        if same and recorded.get("amount") in (None, budget.amount):
            self.structures = dict(recorded.get("structures") or {})
            self.arm_steps = dict(recorded.get("arms") or {})
            self.first_format = dict(recorded.get("seconds_per_step") or {})
        elif recorded is None:
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

            return max(1, round(self.budget.amount / step_compute(cfg)["flops_per_step"]))
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
