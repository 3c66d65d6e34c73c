"""A suite's training budget: equal steps, equal FLOPs or equal seconds for every arm.

    steps: 3000                         # every arm trains 3000 steps (the default kind)
    budget: {flops: 3.0e13}             # each arm trains round(flops / its FLOPs per step) steps
    budget: {seconds: 600, device: cpu} # each arm trains round(seconds / its step time) steps
    designs: {flops: {…, budget: {flops: reference}}}  # a part: each arm trains to the FLOPs its
                                        # reference arm spends in the suite's steps (equal compute, trained)

Equal steps is not equal compute: an arm whose step costs more gets more compute. FLOPs per
step are counted (deterministic, `ganbench.training.compute`); seconds per step are timed
alone on the named device, once per network structure (a median over several blocks, with the
spread recorded), and kept in `results/<suite>/budget.json` by `ganbench run`, so a later load (a
resume, a report, another machine) derives the same steps and finds the same runs. This module
parses and names budgets (torch-free); `ganbench.execution.plan` turns them into steps.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from ganbench.config import TrainConfig, structure_key
from ganbench.errors import ConfigError, did_you_mean
from ganbench.study import suite_keys
from ganbench.suitedir import BUDGET

KEYS = tuple(suite_keys.BUDGET)  # what a budget mapping may hold (the grammar's owner says)
KINDS = tuple(key for key in KEYS if key != "device")  # steps, flops, seconds: one of them per budget


@dataclass(frozen=True)
class Budget:
    kind: str  # steps | flops | seconds
    amount: float
    device: str = "cpu"  # where seconds are timed
    reference: str = ""  # `{flops: reference}` (a design part's budget): this arm's FLOPs in the suite's steps

    def describe(self) -> str:
        if self.reference:  # its amount is the reference arm's, counted when the suite is planned
            return f"equal compute, trained: each arm to the FLOPs `{self.reference}` spends in its steps"
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


def parse_budget(spec: Any, where: str = "budget", reference: str = "") -> Budget:
    """`{flops: X}`, `{seconds: S[, device: D]}` or `{steps: N}` → Budget; errors name the key. A part's
    budget may be `{flops: reference}`: the FLOPs its `reference` arm spends in the suite's steps."""
    if not isinstance(spec, dict) or not spec:
        raise ConfigError(f"{where}: expected a mapping such as {{flops: 3.0e13}} or {{seconds: 600, device: cpu}}")
    kinds = [k for k in spec if k in KINDS]
    for key in spec:
        if key not in KEYS:
            raise ConfigError(f"{where}.{key}: unknown key{did_you_mean(str(key), KEYS)}; allowed: {', '.join(KEYS)}")
    if len(kinds) != 1:
        raise ConfigError(f"{where}: give exactly one of {', '.join(KINDS)}, got {kinds or 'none'}")
    kind = kinds[0]
    if kind == "flops" and spec[kind] == "reference":
        if not reference:
            raise ConfigError(f"{where}.flops: 'reference' (the reference arm's FLOPs) is for a design part's "
                              "budget, whose reference arm trains the suite's steps; give a number here")
        return Budget("flops", 0.0, reference=reference)
    amount = _number(spec[kind])
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount) or amount <= 0:
        raise ConfigError(f"{where}.{kind}: expected a positive number (finite)"
                          f"{' or reference' if reference and kind == 'flops' else ''}, got {spec[kind]!r}")
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
