"""Suites: one YAML file → a design → arms × seeds → a list of runs with content-hashed ids.

    name: quick                      # results go to results/<name>/ unless `results` says otherwise
    description: Leave-one-out of the DCGAN recipe on Fashion-MNIST, CPU-sized.
    dataset: fashion-mnist
    preset: dcgan                    # vanilla | dcgan | ganhacks
    base: {precision: bf16}          # knob overrides for every arm (below the hacks)
    hacks: [batch_norm, leaky_relu]  # the hacks under study
    design: leave_one_out            # or {type: fractional_factorial, resolution: 4}
    arms: {...}                      # design 'arms' only: name → {hacks: [...], set: {...}}
    designs:                         # instead of `design`: several parts, arms named part:arm
      loo: {type: leave_one_out, preset: dcgan}
      aoi: {type: add_one_in, preset: vanilla, hacks: [...]}
    seeds: 3                         # or a list: [0, 1, 2]
    steps: 1500                      # training budget per run (equal steps), or instead:
    budget: {flops: 3.0e13}          # equal compute; or {seconds: 600, device: cpu} (see study/budget.py)
    analysis: {primary: fid_fmnist, verdicts: [fid_fmnist, kid_fmnist]}  # the multiplicity family
    evaluation: {every: 500, samples: 5000, reference_samples: 0, metrics: auto}

Every key, hack, knob and value is checked; an error names the file, the key path and,
for a typo, the closest valid name. Suites are read with `yaml.safe_load` (data, never code).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from ganbench.config import TrainConfig, run_id
from ganbench.errors import ConfigError, did_you_mean
from ganbench.study.budget import Budget, parse_budget
from ganbench.study import suite_keys
from ganbench.study.defined import DefineError, define_hacks
from ganbench.study.design import DESIGNS, NEEDS_STUDIED, Design
from ganbench.hacks import HACKS, dataset_defaults, preset_hacks, resolve_layers
from ganbench.suitedir import SuiteDir, arm_name_problem

# The grammar's names, owned by study/suite_keys.py (with each key's type, default and meaning).
SUITE_KEYS, ANALYSIS_KEYS, EVAL_KEYS = tuple(suite_keys.TOP), tuple(suite_keys.ANALYSIS), suite_keys.EVAL_KNOBS
ARM_KEYS, DESIGN_KEYS, PART_KEYS = tuple(suite_keys.ARM), tuple(suite_keys.DESIGN), tuple(suite_keys.PART)


class SuiteError(ConfigError):
    """A problem in a suite file; the message starts with the file and key path."""


@dataclass(frozen=True)
class Run:
    run_id: str
    arm: str
    seed: int
    config: TrainConfig
    hacks: tuple[str, ...]
    preset: str


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    designs: tuple[Design, ...]  # one, or several named parts
    seeds: tuple[int, ...]
    results_dir: Path
    runs: tuple[Run, ...]  # arms × seeds; one arm's runs are adjacent
    budget: Budget = Budget("steps", 0)
    analysis: dict[str, Any] = dataclasses.field(default_factory=dict)  # primary metric, verdict metrics
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # the CLI's --set, over every arm's `set`

    @property
    def arms(self) -> list[str]:
        return [arm.name for design in self.designs for arm in design.arms]

    @property
    def dir(self) -> SuiteDir:
        """The owner of the suite's results directory (its files, their schemas, containment)."""
        return SuiteDir(self.results_dir)

    def run_dirs(self) -> dict[str, Path]:
        """run id → its checked directory (`SuiteDir.run_path`)."""
        return {run.run_id: self.dir.run_path(run.run_id) for run in self.runs}


def _fail(path: Path, where: str, message: str) -> SuiteError:
    return SuiteError(f"{path}: {where}: {message}")


def _check_keys(path: Path, where: str, mapping: Any, allowed: tuple[str, ...] | Mapping[str, Any]) -> dict:
    if not isinstance(mapping, dict):
        raise _fail(path, where, f"expected a mapping, got {type(mapping).__name__}")
    for key in mapping:
        if key not in allowed:
            raise _fail(path, f"{where}.{key}" if where != "(top)" else str(key),
                        f"unknown key{did_you_mean(str(key), allowed)}; allowed: {', '.join(allowed)}")
    return mapping


def _hack_list(path: Path, where: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
        raise _fail(path, where, "expected a list of hack names")
    for i, name in enumerate(value):
        if name not in HACKS:
            raise _fail(path, f"{where}[{i}]", f"unknown hack '{name}'{did_you_mean(name, HACKS)}")
    if len(set(value)) != len(value):
        raise _fail(path, where, "a hack is listed twice")
    return tuple(value)


def _seeds(path: Path, value: Any) -> tuple[int, ...]:
    if isinstance(value, bool) or value is None:
        raise _fail(path, "seeds", "expected a count (e.g. 3) or a list of integers")
    if isinstance(value, int):
        if value < 1:
            raise _fail(path, "seeds", f"the seed count must be >= 1, got {value}")
        return tuple(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                  for s in value):
        if len(set(value)) != len(value):
            raise _fail(path, "seeds", "a seed is listed twice")
        return tuple(value)
    raise _fail(path, "seeds", f"expected a count or a list of non-negative integers, got {value!r}")


StepsFor = Callable[[str, TrainConfig], int]  # (arm, its config at the budget's placeholder steps) → steps
Planner = Callable[[Budget, SuiteDir], StepsFor]


def _read(path: Path) -> dict[str, Any]:
    """The suite file's top-level mapping, its keys checked (the parsed YAML is never changed)."""
    if not path.is_file():
        raise SuiteError(f"{path}: no such suite file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SuiteError(f"{path}: not valid YAML: {err}") from None
    data = _check_keys(path, "(top)", raw or {}, {}) if not isinstance(raw or {}, dict) else (raw or {})
    problems = suite_keys.unknown_keys(data)  # every unknown key at once, not one per round trip
    if problems:
        raise SuiteError(f"{path}: {len(problems)} unknown key{'s' * (len(problems) > 1)} "
                         "(`ganbench suite-keys` lists them all):\n  " + "\n  ".join(problems))
    return data


def _name(path: Path, data: dict[str, Any]) -> str:
    name = str(data.get("name") or path.stem)
    if name.strip(".") == "" or not name.replace("-", "_").replace(".", "_").lstrip("_").isidentifier():
        raise _fail(path, "name", f"'{name}' must be letters, digits, '-', '_' or '.' (it names a directory)")
    return name


def suite_results_dir(path: str | Path, results_root: str | Path = "results") -> tuple[Path, str]:
    """(the suite's results directory, its budget kind), read from the file without expanding it."""
    path = Path(path)
    data = _read(path)
    return _results_dir(path, data, results_root, _name(path, data)), _budget(path, data).kind


def load_suite(path: str | Path, results_root: str | Path = "results", planner: Planner | None = None,
               overrides: Mapping[str, Any] | None = None) -> Suite:
    """Read, check and expand a suite file. Pure: it writes nothing and imports no torch. A FLOPs or
    seconds budget needs `planner` (its steps per arm): `ganbench.execution.plan.load_planned_suite`
    supplies one that counts, times and records them. `overrides`: the CLI's `--set` (parsed knobs),
    applied over every arm's `set` (the top of the precedence); not `seed` (the suite's seeds are its
    list: use --seeds)."""
    path = Path(path)
    data = _read(path)
    name = _name(path, data)
    try:  # first: every hack list below may name them
        define_hacks(data.get("define"))
    except DefineError as err:
        raise _fail(path, err.where, str(err)) from None
    budget = _budget(path, data)
    base = _base_knobs(path, data, budget)
    designs = _designs(path, data)
    seeds = _seeds(path, data.get("seeds", 1))
    results_dir = _results_dir(path, data, results_root, name)
    steps_for = None
    if budget.kind != "steps":
        if planner is None:
            raise SuiteError(f"{path}: budget: a {budget.kind} budget is planned into steps by "
                             "ganbench.execution.plan.load_planned_suite (the CLI does this)")
        steps_for = planner(budget, SuiteDir(results_dir))
    overrides = dict(overrides or {})
    if "seed" in overrides:
        raise SuiteError(f"{path}: --set seed=…: a suite's seeds are its `seeds` list; choose among them with --seeds")
    runs = _expand(path, designs, seeds, base, steps_for, overrides)
    suite = Suite(name, path, str(data.get("description", "")), designs, seeds, results_dir, tuple(runs),
                  dataclasses.replace(budget, amount=budget.amount or runs[0].config.steps), _analysis(path, data),
                  overrides)
    _check_analysis_measured(suite)
    return suite


def _expand(path: Path, designs: tuple[Design, ...], seeds: tuple[int, ...], base: dict[str, Any],
            steps_for: StepsFor | None, cli: dict[str, Any]) -> list[Run]:
    """arms × seeds → runs with resolved configs and run ids."""
    runs, problems = [], {}
    for design in designs:
        for arm in design.arms:
            for seed in seeds:
                if arm.name in problems:
                    continue  # one message per arm, not one per seed
                where = f"arm '{arm.name}', seed {seed}"
                # defaults < the arm's preset hacks < base < its other hacks < its `set` < the CLI's --set
                try:
                    cfg, _ = resolve_layers(arm.from_preset, arm.extra, base=base,
                                            overrides={**arm.overrides, **cli, "seed": seed})
                    if steps_for is not None and "steps" not in cli:
                        cfg = cfg.replace(steps=steps_for(arm.name, cfg))
                except ConfigError as err:
                    problems[arm.name] = f"arm '{arm.name}': {err}"
                    continue
                runs.append(Run(run_id(cfg), arm.name, seed, cfg, arm.hacks, design.preset))
    _raise_all(path, list(problems.values()))
    return runs


def _raise_all(path: Path, problems: list[str]) -> None:
    """One SuiteError for every problem found (one is said as before; several each on its own line)."""
    if len(problems) == 1:
        raise SuiteError(f"{path}: {problems[0]}")
    if problems:
        raise SuiteError(f"{path}: {len(problems)} problems:\n  " + "\n  ".join(problems))


def _check_analysis_measured(suite: Suite) -> None:
    """The pre-declared primary and verdict metrics must be values some run measures: caught now,
    not after the sweep."""
    from ganbench.metrics.registry import measured_values

    measured = {name for run in suite.runs for name in measured_values(run.config)}
    declared = [("primary", suite.analysis["primary"])] if "primary" in suite.analysis else []
    declared += [("verdicts", name) for name in suite.analysis.get("verdicts", [])]
    for key, name in declared:
        if name not in measured:
            raise _fail(suite.path, f"analysis.{key}", f"'{name}' is not measured by any run of this suite "
                                                      f"(its metrics give {', '.join(sorted(measured)) or 'nothing'})")


def _budget(path: Path, data: dict) -> Budget:
    if "budget" not in data:
        return Budget("steps", 0)
    if "steps" in data:
        raise _fail(path, "budget", "give either `steps` or `budget`, not both")
    try:
        budget = parse_budget(data["budget"])
    except ConfigError as err:
        raise SuiteError(f"{path}: {err}") from None
    return budget


def _analysis(path: Path, data: dict) -> dict[str, Any]:
    """`analysis: {primary, verdicts}`, checked against the metric registry's value names."""
    from ganbench.metrics.registry import all_values

    spec = _check_keys(path, "analysis", data.get("analysis") or {}, ANALYSIS_KEYS)
    if "verdicts" in spec and (not isinstance(spec["verdicts"], list) or not spec["verdicts"]):
        raise _fail(path, "analysis.verdicts", f"expected a list of metric values, e.g. [fid_fmnist, kid_fmnist], "
                                               f"got {spec['verdicts']!r}")
    if "primary" in spec and not isinstance(spec["primary"], str):
        raise _fail(path, "analysis.primary", f"expected one metric value such as fid_fmnist, got {spec['primary']!r}")
    known = {name for name, direction in all_values().items() if direction is not None}
    names = ([spec["primary"]] if "primary" in spec else []) + list(spec.get("verdicts") or [])
    for name in names:
        if not isinstance(name, str) or name not in known:
            raise _fail(path, "analysis", f"'{name}' is not a scored metric value{did_you_mean(str(name), known)}")
    return {k: spec[k] for k in ANALYSIS_KEYS if k in spec}


def _designs(path: Path, data: dict) -> tuple[Design, ...]:
    """The suite's one `design`, or its named `designs` parts (arms then named part:arm)."""
    if "designs" in data:
        if "design" in data or "arms" in data:
            raise _fail(path, "designs", "give either `design` (with `arms`) or `designs`, not both")
        parts = data["designs"]
        if not isinstance(parts, dict) or not parts:
            raise _fail(path, "designs", "expected a mapping of part name → {type, preset, hacks, …}")
        designs = []
        for part_name, spec in parts.items():
            where = f"designs.{part_name}"
            problem = arm_name_problem(str(part_name))
            if problem or ":" in str(part_name):
                raise _fail(path, where, (problem or "a part name cannot hold ':'").replace("arm name", "part name"))
            spec = _check_keys(path, where, spec, PART_KEYS)
            design = _design(path, where, spec, data.get("preset", "vanilla"), data.get("hacks"), spec.get("arms"))
            arms = tuple(dataclasses.replace(a, name=f"{part_name}:{a.name}") for a in design.arms)
            reference = f"{part_name}:{design.reference_arm}" if design.reference_arm else None
            designs.append(dataclasses.replace(design, arms=arms, name=str(part_name), reference_arm=reference))
        return tuple(designs)
    spec = data.get("design", "arms" if "arms" in data else None)
    options = _check_keys(path, "design", spec, DESIGN_KEYS) if isinstance(spec, dict) else {"type": spec}
    if "reference" in data:  # the explicit arms' reference, at the top (shorthand for design.reference)
        if "reference" in options:
            raise _fail(path, "reference", "given twice (also as design.reference); keep one")
        options = {**options, "reference": data["reference"]}
    return (_design(path, "design", options, data.get("preset", "vanilla"), data.get("hacks"), data.get("arms")),)


def _base_knobs(path: Path, data: dict, budget: Budget) -> dict[str, Any]:
    """Suite-wide knobs: `base`, then the `dataset`, `steps` (or a `budget: {steps: N}`) and `evaluation` shortcuts."""
    base = dict(_check_keys(path, "base", data.get("base") or {}, TrainConfig.__dataclass_fields__))
    for key, knob in (("dataset", "dataset"), ("steps", "steps")):
        if key in data:
            base[knob] = data[key]
    if "budget" in data and budget.kind == "steps":
        base["steps"] = int(budget.amount)  # the steps knob, as if given at the top
    evaluation = _check_keys(path, "evaluation", data.get("evaluation") or {}, tuple(EVAL_KEYS))
    for key, value in evaluation.items():
        if key == "metrics" and isinstance(value, list):
            if not all(isinstance(m, str) for m in value):
                raise _fail(path, "evaluation.metrics", f"expected metric names (e.g. [fid_fmnist, kid_fmnist]), got "
                                                        f"{value!r}")
            value = ",".join(value)
        base[EVAL_KEYS[key]] = value
    if "protocol" in evaluation:  # a literature protocol sets its knobs; what the suite sets must agree with them
        from ganbench.metrics.protocols import get_protocol

        try:
            knobs = get_protocol(str(evaluation["protocol"])).knobs
        except ConfigError as err:
            raise _fail(path, "evaluation.protocol", str(err)) from None
        explicit = {knob: key for key, knob in EVAL_KEYS.items() if key in evaluation}
        for knob, value in knobs.items():
            if knob in base and base[knob] != value and knob != "eval_protocol":
                where = f"evaluation.{explicit[knob]}" if knob in explicit else f"base.{knob}"
                raise _fail(path, where, f"{base[knob]!r} conflicts with evaluation.protocol "
                                         f"'{evaluation['protocol']}', which sets {knob}={value!r}; remove one of them")
        base.update(knobs)
    try:  # checked as a run would see it: the dataset's network defaults under the suite's own knobs
        dataset = str(base.get("dataset", TrainConfig.dataset))
        TrainConfig().replace(**{**dataset_defaults(dataset, base), **base})
    except ConfigError as err:
        raise _fail(path, "base", str(err)) from None
    return base


def _design(path: Path, where: str, options: dict, default_preset: str, default_hacks: Any, arms: Any) -> Design:
    spec = options.get("type")
    preset = options.get("preset", default_preset)
    try:
        from_preset = preset_hacks(preset)
    except ConfigError as err:
        raise _fail(path, f"{where}.preset" if where != "design" else "preset", str(err)) from None
    hacks_where = f"{where}.hacks" if "hacks" in options else "hacks"
    studied = _hack_list(path, hacks_where, options.get("hacks", default_hacks))
    if spec not in DESIGNS:
        raise _fail(path, where, f"'{spec}' is not a design{did_you_mean(str(spec), DESIGNS)}; "
                                 f"choose from {', '.join(DESIGNS)}")
    if spec in NEEDS_STUDIED and not studied:
        raise _fail(path, hacks_where, f"design '{spec}' needs the hacks under study")
    if spec != "arms" and arms is not None:
        raise _fail(path, "arms", f"explicit arms are only used with design 'arms', not '{spec}'")
    if spec == "arms":
        options = {**options, "arms": _explicit_arms(path, arms, options.get("reference"))}
    try:
        design = DESIGNS[spec](from_preset, studied, options)
    except ConfigError as err:
        raise _fail(path, f"{where}.resolution", str(err)) from None
    return dataclasses.replace(design, preset=preset, studied=studied)


def _explicit_arms(path: Path, arms_raw: Any, reference: Any) -> dict[str, tuple[tuple[str, ...], dict[str, Any]]]:
    """A suite's explicit `arms:` checked: name → (hacks, knob overrides)."""
    if not isinstance(arms_raw, dict) or not arms_raw:
        raise _fail(path, "arms", "design 'arms' needs a mapping of arm name → {hacks, set}")
    arms, problems = {}, []
    for arm_name, spec in arms_raw.items():  # every arm checked: its problems reported together
        try:
            spec = _check_keys(path, f"arms.{arm_name}", spec or {}, ARM_KEYS)
            hacks = _hack_list(path, f"arms.{arm_name}.hacks", spec.get("hacks"))
            overrides = _check_keys(path, f"arms.{arm_name}.set", spec.get("set") or {},
                                    TrainConfig.__dataclass_fields__)
            problem = arm_name_problem(str(arm_name))
            if problem:
                raise _fail(path, f"arms.{arm_name}", problem)
            arms[str(arm_name)] = (hacks, overrides)
        except SuiteError as err:
            problems.append(str(err).removeprefix(f"{path}: "))
    _raise_all(path, problems)
    if reference is not None and reference not in arms:
        raise _fail(path, "reference", f"no arm named '{reference}'{did_you_mean(str(reference), arms)}")
    return arms


def _results_dir(path: Path, data: dict, results_root: str | Path, name: str) -> Path:
    """results/<name>, or the suite's `results`, which must stay inside the results root."""
    root = Path(results_root).resolve()
    key, value = ("results", data["results"]) if "results" in data else ("name", name)
    target = (root / str(value)).resolve()
    if target == root or root not in target.parents:
        raise _fail(path, key, f"'{value}' must name a directory inside the results root {root}")
    return target
