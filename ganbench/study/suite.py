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
for a typo, the closest valid name. Suites are read as data, never code, every key
once and aliases bounded (`suite_yaml.py`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ganbench.config import TrainConfig, in_range, range_rule, run_id
from ganbench.errors import ConfigError, did_you_mean
from ganbench.study.budget import Budget, parse_budget
from ganbench.study import suite_keys
from ganbench.study.defined import DefineError, define_hacks
from ganbench.study.checks import SuiteError, check_keys, fail, raise_all
from ganbench.study.design import Design, design_options
from ganbench.study.parts import designs_of
from ganbench.study.suite_yaml import SuiteYamlError, load_yaml
from ganbench.hacks import dataset_defaults, resolve_layers
from ganbench.suitedir import MANIFEST, SuiteDir

MAX_NAME_BYTES = 200  # a suite's results directory name (file systems allow 255; its files add suffixes)
MAX_RUNS = 200_000  # arms × seeds: a plan of 100 000 runs takes ≈ 20 s and 0.5 GB on 2 cores

# The grammar's names, owned by study/suite_keys.py (with each key's type, default and meaning).
SUITE_KEYS, ANALYSIS_KEYS, EVAL_KEYS = tuple(suite_keys.TOP), tuple(suite_keys.ANALYSIS), suite_keys.EVAL_KNOBS


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
    def trains_equal_flops(self) -> bool:
        """A part is trained to a FLOPs budget: the equal-compute answer is trained, read off no curve."""
        return any(d.budget is not None and d.budget.kind == "flops" for d in self.designs)

    def arms_like_their_reference(self) -> list[str]:
        """'part: arm' for every arm whose runs are its reference arm's own (the same configs, so the same run
        ids): an arm that changes nothing, e.g. adding a hack the preset already holds. Its comparison
        would measure nothing; `plan` and `run` say so."""
        ids: dict[str, set[str]] = {}
        for run in self.runs:
            ids.setdefault(run.arm, set()).add(run.run_id)
        return [f"{design.name + ': ' if design.name else ''}{arm.name}" for design in self.designs
                for arm in design.arms if design.reference_arm and arm.name != design.reference_arm
                and ids.get(arm.name) and ids.get(arm.name) == ids.get(design.reference_arm)]

    @property
    def dir(self) -> SuiteDir:
        """The owner of the suite's results directory (its files, their schemas, containment)."""
        return SuiteDir(self.results_dir)

    def run_dirs(self) -> dict[str, Path]:
        """run id → its checked directory (`SuiteDir.run_path`)."""
        return {run.run_id: self.dir.run_path(run.run_id) for run in self.runs}


def _seeds(path: Path, value: Any) -> tuple[int, ...]:
    if isinstance(value, bool) or value is None:
        raise fail(path, "seeds", "expected a count (e.g. 3) or a list of integers")
    if isinstance(value, int):
        if not 1 <= value <= MAX_RUNS:
            raise fail(path, "seeds", f"the seed count must be >= 1 and <= {MAX_RUNS:,}, got {value}")
        return tuple(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and in_range("seed", s)
                                                  for s in value):
        if len(set(value)) != len(value):
            raise fail(path, "seeds", "a seed is listed twice")
        return tuple(value)
    raise fail(path, "seeds", f"expected a count or a list of integers {range_rule('seed')}, "
                              f"got {str(value)[:80]}")


StepsFor = Callable[[str, TrainConfig], int]  # (arm, its config at the budget's placeholder steps) → steps
Planner = Callable[[Budget, SuiteDir], StepsFor]


def _read(path: Path) -> dict[str, Any]:
    """The suite file's top-level mapping, its keys checked (the parsed YAML is never changed)."""
    if not path.is_file():
        raise SuiteError(f"{path}: no such suite file")
    try:
        raw = load_yaml(path)
    except SuiteYamlError as err:
        raise SuiteError(f"{path}: {err}") from None
    data = check_keys(path, "(top)", raw or {}, {}) if not isinstance(raw or {}, dict) else (raw or {})
    problems = suite_keys.unknown_keys(data, design_options())  # every unknown key at once, not one per round trip
    if problems:
        raise SuiteError(f"{path}: {len(problems)} unknown key{'s' * (len(problems) > 1)} "
                         "(`ganbench suite-keys` lists them all):\n  " + "\n  ".join(problems))
    return data


def _name(path: Path, data: dict[str, Any]) -> str:
    if data.get("name") is not None and not isinstance(data["name"], str):
        raise fail(path, "name", f"expected text, got {type(data['name']).__name__}")
    name = data.get("name") or path.stem
    if name.strip(".") == "" or not name.replace("-", "_").replace(".", "_").lstrip("_").isidentifier():
        raise fail(path, "name", f"'{name}' must be letters, digits, '-', '_' or '.' (it names a directory)")
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
    name, description = _name(path, data), _description(path, data)
    try:  # first: every hack list below may name them
        define_hacks(data.get("define"))
    except DefineError as err:
        raise fail(path, err.where, str(err)) from None
    problems: list[str] = []  # the independent sections' problems, reported together

    def checked(section: Callable[..., Any], *args: Any) -> Any:
        try:
            return section(path, *args)
        except SuiteError as err:
            problems.append(str(err).removeprefix(f"{path}: "))
            return None

    budget = checked(_budget, data)
    base = checked(_base_knobs, data, budget or Budget("steps", 0))
    designs = checked(designs_of, data)
    seeds = checked(_seeds, data.get("seeds", 1))
    results_dir = checked(_results_dir, data, results_root, name)
    analysis = checked(_analysis, data)
    overrides = dict(overrides or {})
    if "seed" in overrides:
        problems.append("--set seed=…: a suite's seeds are its `seeds` list; choose among them with --seeds")
    raise_all(path, problems)
    n_runs = sum(len(d.arms) for d in designs) * len(seeds)
    if n_runs > MAX_RUNS:
        raise SuiteError(f"{path}: {n_runs:,} runs (arms × seeds); ganbench plans at most {MAX_RUNS:,} in one suite "
                         "(a plan of 100 000 takes ≈ 20 s and 0.5 GB): split it into several suites")
    planned = [b for b in (budget, *(d.budget for d in designs)) if b is not None and b.kind != "steps"]
    if planned and planner is None:
        raise SuiteError(f"{path}: budget: a {planned[0].kind} budget is planned into steps by "
                         "ganbench.execution.plan.load_planned_suite (the CLI does this)")
    suite_dir = SuiteDir(results_dir)
    steps_for = planner(budget, suite_dir) if budget.kind != "steps" else None
    part_steps = {d.name: planner(d.budget, suite_dir) if d.budget.kind != "steps" else _fixed(d.budget)
                  for d in designs if d.budget is not None}
    runs = _expand(path, designs, seeds, base, steps_for, part_steps, overrides)
    suite = Suite(name, path, description, designs, seeds, results_dir, tuple(runs),
                  dataclasses.replace(budget, amount=budget.amount or runs[0].config.steps), analysis, overrides)
    _check_analysis_measured(suite)
    return suite


def _description(path: Path, data: dict[str, Any]) -> str:
    description = data.get("description", "")
    if not isinstance(description, str):  # never str() of a structure: it may be an alias bomb
        raise fail(path, "description", f"expected text, got {type(description).__name__}")
    return description


def _fixed(budget: Budget) -> StepsFor:
    return lambda arm, cfg: int(budget.amount)


def _expand(path: Path, designs: tuple[Design, ...], seeds: tuple[int, ...], base: dict[str, Any],
            steps_for: StepsFor | None, part_steps: dict[str, StepsFor], cli: dict[str, Any]) -> list[Run]:
    """arms × seeds → runs with resolved configs and run ids. A part's own budget plans its arms' steps
    after the suite's; under `{flops: reference}` its reference arm is planned first (the others follow it)."""
    runs, problems = [], {}
    for design in designs:
        arms = design.arms
        if design.budget is not None and design.budget.reference:
            arms = tuple(sorted(arms, key=lambda a: a.name != design.reference_arm))
        for arm in arms:
            # defaults < the arm's preset hacks < base < its other hacks < its `set` < the CLI's --set; the
            # seed changes nothing else, so an arm is resolved and planned once and copied per seed
            try:
                arm_cfg, _ = resolve_layers(arm.from_preset, arm.extra, base=base,
                                            overrides={**arm.overrides, **cli, "seed": seeds[0]})
                for planned in (steps_for, part_steps.get(design.name)):
                    if planned is not None and "steps" not in cli:
                        arm_cfg = arm_cfg.replace(steps=planned(arm.name, arm_cfg))
                configs = [arm_cfg.with_seed(seed) for seed in seeds]
            except ConfigError as err:
                problems[arm.name] = str(err)  # one message per arm, not one per seed
                continue
            runs += [Run(run_id(cfg), arm.name, cfg.seed, cfg, arm.hacks, design.preset) for cfg in configs]
    raise_all(path, _by_message(problems, sum(len(d.arms) for d in designs)))
    return runs


def _by_message(problems: dict[str, str], n_arms: int) -> list[str]:
    """One line per distinct problem, naming the arms it hits ('every arm' for a mistake in `base` or
    `evaluation`, once — not once per arm)."""
    arms_of: dict[str, list[str]] = {}
    for arm, message in problems.items():
        arms_of.setdefault(message, []).append(arm)
    return [(f"every arm ({len(arms)})" if len(arms) == n_arms > 1 else
             ", ".join(f"arm '{a}'" for a in arms)) + f": {message}" for message, arms in arms_of.items()]


def _check_analysis_measured(suite: Suite) -> None:
    """The pre-declared primary and verdict metrics must be values some run measures: caught now,
    not after the sweep."""
    from ganbench.metrics.registry import measured_values

    measured = {name for run in suite.runs for name in measured_values(run.config)}
    declared = [("primary", suite.analysis["primary"])] if "primary" in suite.analysis else []
    declared += [("verdicts", name) for name in suite.analysis.get("verdicts", [])]
    for key, name in declared:
        if name not in measured:
            raise fail(suite.path, f"analysis.{key}", f"'{name}' is not measured by any run of this suite "
                                                      f"(its metrics give {', '.join(sorted(measured)) or 'nothing'})")


def _budget(path: Path, data: dict) -> Budget:
    if "budget" not in data:
        return Budget("steps", 0)
    if "steps" in data:
        raise fail(path, "budget", "give either `steps` or `budget`, not both")
    try:
        budget = parse_budget(data["budget"])
    except ConfigError as err:
        raise SuiteError(f"{path}: {err}") from None
    return budget


def _analysis(path: Path, data: dict) -> dict[str, Any]:
    """`analysis: {primary, verdicts}`, checked against the metric registry's value names."""
    from ganbench.metrics.registry import all_values

    spec = check_keys(path, "analysis", data.get("analysis") or {}, ANALYSIS_KEYS)
    if "verdicts" in spec and (not isinstance(spec["verdicts"], list) or not spec["verdicts"]):
        raise fail(path, "analysis.verdicts", f"expected a list of metric values, e.g. [fid_fmnist, kid_fmnist], "
                                               f"got {spec['verdicts']!r}")
    if "primary" in spec and not isinstance(spec["primary"], str):
        raise fail(path, "analysis.primary", f"expected one metric value such as fid_fmnist, got {spec['primary']!r}")
    known = {name for name, direction in all_values().items() if direction is not None}
    names = ([spec["primary"]] if "primary" in spec else []) + list(spec.get("verdicts") or [])
    for name in names:
        if not isinstance(name, str) or name not in known:
            raise fail(path, "analysis", f"'{name}' is not a scored metric value{did_you_mean(str(name), known)}")
    return {k: spec[k] for k in ANALYSIS_KEYS if k in spec}


def _base_knobs(path: Path, data: dict, budget: Budget) -> dict[str, Any]:
    """Suite-wide knobs: `base`, then the `dataset`, `steps` (or a `budget: {steps: N}`) and `evaluation` shortcuts."""
    base = dict(check_keys(path, "base", data.get("base") or {}, TrainConfig.__dataclass_fields__))
    for key, knob in (("dataset", "dataset"), ("steps", "steps")):
        if key in data:
            base[knob] = data[key]
    if "budget" in data and budget.kind == "steps" and budget.amount:  # 0: the budget itself was refused
        base["steps"] = int(budget.amount)  # the steps knob, as if given at the top
    evaluation = check_keys(path, "evaluation", data.get("evaluation") or {}, tuple(EVAL_KEYS))
    for key, value in evaluation.items():
        if key == "metrics" and isinstance(value, list):
            if not all(isinstance(m, str) for m in value):
                raise fail(path, "evaluation.metrics", f"expected metric names (e.g. [fid_fmnist, kid_fmnist]), got "
                                                        f"{value!r}")
            value = ",".join(value)
        base[EVAL_KEYS[key]] = value
    if "protocol" in evaluation:  # a literature protocol sets its knobs; what the suite sets must agree with them
        from ganbench.metrics.protocols import get_protocol

        try:
            knobs = get_protocol(str(evaluation["protocol"])).knobs
        except ConfigError as err:
            raise fail(path, "evaluation.protocol", str(err)) from None
        explicit = {knob: key for key, knob in EVAL_KEYS.items() if key in evaluation}
        for knob, value in knobs.items():
            if knob in base and base[knob] != value and knob != "eval_protocol":
                where = f"evaluation.{explicit[knob]}" if knob in explicit else f"base.{knob}"
                raise fail(path, where, f"{base[knob]!r} conflicts with evaluation.protocol "
                                         f"'{evaluation['protocol']}', which sets {knob}={value!r}; remove one of them")
        base.update(knobs)
    try:  # checked as a run would see it: the dataset's network defaults under the suite's own knobs
        dataset = str(base.get("dataset", TrainConfig.dataset))
        TrainConfig().replace(**{**dataset_defaults(dataset, base), **base})
    except ConfigError as err:
        raise fail(path, "base", str(err)) from None
    return base


def _results_dir(path: Path, data: dict, results_root: str | Path, name: str) -> Path:
    """results/<name>, or the suite's `results`, which must stay inside the results root."""
    root = Path(results_root).resolve()
    key, value = ("results", data["results"]) if "results" in data else ("name", name)
    target = (root / str(value)).resolve()
    if target == root or root not in target.parents:
        raise fail(path, key, f"'{value}' must name a directory inside the results root {root}")
    if len(str(target.name).encode()) > MAX_NAME_BYTES:
        raise fail(path, key, f"'{str(value)[:40]}…' is {len(str(target.name).encode())} bytes; a directory name "
                              f"is at most {MAX_NAME_BYTES} (file systems refuse longer ones)")
    for above in target.parents:  # never inside another suite's results (its runs, its own files)
        if (above / MANIFEST).is_file():
            raise fail(path, key, f"'{value}' lies inside {above}, the results directory of another suite "
                                  "(it holds suite.json); choose another name or --results-root")
    return target
