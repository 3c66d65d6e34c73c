"""A suite's design section → Design objects: its one `design` (with explicit `arms`), or its named
`designs` parts, each with its preset, hacks under study, reference arm and, for a part, its own
budget (`{flops: reference}`: every arm trained to the FLOPs its reference arm spends in the
suite's steps, so the equal-compute answer is trained, not read off a curve)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ganbench.config import TrainConfig
from ganbench.errors import ConfigError, did_you_mean
from ganbench.hacks import preset_hacks
from ganbench.study import suite_keys
from ganbench.study.budget import Budget, parse_budget
from ganbench.study.checks import SuiteError, check_keys, fail, hack_list, raise_all
from ganbench.study.design import DESIGNS, Design, design_options
from ganbench.suitedir import arm_name_problem

ARM_KEYS = tuple(suite_keys.ARM)


def designs_of(path: Path, data: dict) -> tuple[Design, ...]:
    """The suite's one `design`, or its named `designs` parts (arms then named part:arm)."""
    if "designs" in data:
        if "design" in data or "arms" in data:
            raise fail(path, "designs", "give either `design` (with `arms`) or `designs`, not both")
        parts = data["designs"]
        if not isinstance(parts, dict) or not parts:
            raise fail(path, "designs", "expected a mapping of part name → {type, preset, hacks, …}")
        designs = []
        for part_name, spec in parts.items():
            where = f"designs.{part_name}"
            problem = arm_name_problem(str(part_name))
            if problem or ":" in str(part_name):
                raise fail(path, where, (problem or "a part name cannot hold ':'").replace("arm name", "part name"))
            spec = check_keys(path, where, spec, tuple(suite_keys.part_keys(design_options())))
            design = part_design(path, where, spec, data.get("preset", "vanilla"), data.get("hacks"), spec.get("arms"))
            arms = tuple(dataclasses.replace(a, name=f"{part_name}:{a.name}") for a in design.arms)
            reference = f"{part_name}:{design.reference_arm}" if design.reference_arm else None
            designs.append(dataclasses.replace(design, arms=arms, name=str(part_name), reference_arm=reference,
                                               budget=part_budget(path, where, spec, reference)))
        return tuple(designs)
    spec = data.get("design", "arms" if "arms" in data else None)
    design_keys = tuple(suite_keys.design_keys(design_options()))
    options = check_keys(path, "design", spec, design_keys) if isinstance(spec, dict) else {"type": spec}
    if "reference" in data:  # the explicit arms' reference, at the top (shorthand for design.reference)
        if "reference" in options:
            raise fail(path, "reference", "given twice (also as design.reference); keep one")
        options = {**options, "reference": data["reference"]}
    return (part_design(path, "design", options, data.get("preset", "vanilla"), data.get("hacks"), data.get("arms")),)


def part_budget(path: Path, where: str, spec: dict, reference: str | None) -> Budget | None:
    """A part's own `budget`: {steps: N}, {flops: F} or {flops: reference} (a seconds budget is timed and
    kept once per suite, so it is the suite's only)."""
    if "budget" not in spec:
        return None
    try:
        budget = parse_budget(spec["budget"], f"{where}.budget", reference=reference or "")
    except ConfigError as err:
        raise SuiteError(f"{path}: {err}") from None
    if budget.kind == "seconds":
        raise fail(path, f"{where}.budget", "a seconds budget is the suite's (timed once, kept in budget.json); "
                                           "give a part {steps: N}, {flops: F} or {flops: reference}")
    return budget


def part_design(path: Path, where: str, options: dict, default_preset: str, default_hacks: Any, arms: Any) -> Design:
    spec = options.get("type")
    preset = options.get("preset", default_preset)
    try:
        from_preset = preset_hacks(preset)
    except ConfigError as err:
        raise fail(path, f"{where}.preset" if where != "design" else "preset", str(err)) from None
    hacks_where = f"{where}.hacks" if "hacks" in options else "hacks"
    studied = hack_list(path, hacks_where, options.get("hacks", default_hacks))
    if spec not in DESIGNS:
        raise fail(path, where, f"'{spec}' is not a design{did_you_mean(str(spec), DESIGNS)}; "
                                 f"choose from {', '.join(DESIGNS)}")
    if DESIGNS[spec].studies_hacks and not studied:
        raise fail(path, hacks_where, f"design '{spec}' needs the hacks under study")
    if spec != "arms" and arms is not None:
        raise fail(path, "arms", f"explicit arms are only used with design 'arms', not '{spec}'")
    if spec == "arms":
        options = {**options, "arms": explicit_arms(path, arms, options.get("reference"))}
    try:
        design = DESIGNS[spec].build(from_preset, studied, options)
    except ConfigError as err:  # one of the design's options (said at its key), or its size (the hacks studied)
        option = next((key for key in DESIGNS[spec].options if key in str(err)), None)
        raise fail(path, f"{where}.{option}" if option else hacks_where, str(err)) from None
    return dataclasses.replace(design, preset=preset, studied=studied)


def explicit_arms(path: Path, arms_raw: Any, reference: Any) -> dict[str, tuple[tuple[str, ...], dict[str, Any]]]:
    """A suite's explicit `arms:` checked: name → (hacks, knob overrides)."""
    if not isinstance(arms_raw, dict) or not arms_raw:
        raise fail(path, "arms", "design 'arms' needs a mapping of arm name → {hacks, set}")
    arms, problems = {}, []
    for arm_name, spec in arms_raw.items():  # every arm checked: its problems reported together
        try:
            spec = check_keys(path, f"arms.{arm_name}", spec or {}, ARM_KEYS)
            hacks = hack_list(path, f"arms.{arm_name}.hacks", spec.get("hacks"))
            overrides = check_keys(path, f"arms.{arm_name}.set", spec.get("set") or {},
                                    TrainConfig.__dataclass_fields__)
            problem = arm_name_problem(str(arm_name))
            if problem:
                raise fail(path, f"arms.{arm_name}", problem)
            arms[str(arm_name)] = (hacks, overrides)
        except SuiteError as err:
            problems.append(str(err).removeprefix(f"{path}: "))
    raise_all(path, problems)
    if reference is not None and reference not in arms:
        raise fail(path, "reference", f"no arm named '{reference}'{did_you_mean(str(reference), arms)}")
    return arms
