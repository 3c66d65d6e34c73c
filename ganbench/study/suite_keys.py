"""Every key a suite file may hold, with its type, default and meaning: the one owner of the suite
grammar's names (`study.suite` checks against these tables, `ganbench suite-keys` prints them; a design's
own options are declared with the design, `study.design.register_design`, and given in by the caller), and the
first check of a suite, which reports every unknown key at once instead of one per round trip."""

from __future__ import annotations

from typing import Any, Mapping

from ganbench.errors import did_you_mean

# key → (type, default, meaning)
TOP: dict[str, tuple[str, str, str]] = {
    "name": ("string", "the file name", "the suite's name; results go to results/<name>/"),
    "description": ("string", "''", "one line for reports and `plan`"),
    "define": ("mapping", "none", "hacks declared as data: name → {summary, source, sets: {knob: value}, tags}"),
    "dataset": ("string", "fashion-mnist", "the dataset of every arm (`ganbench data list`)"),
    "preset": ("string", "vanilla", "the recipe arms start from (`ganbench hacks` lists presets)"),
    "base": ("mapping", "none", "knob → value for every arm, below the hacks (`ganbench knobs`)"),
    "hacks": ("list", "none", "the hacks under study (designs that need them)"),
    "design": ("string or mapping", "arms when `arms` is given", "leave_one_out | add_one_in | full_factorial | "
               "fractional_factorial | arms (or a plugin's), or {type, reference, the design's options}"),
    "designs": ("mapping", "none", "several parts instead of `design`: part → {type, preset, hacks, reference, "
                "arms, budget, the design's options}; arms are named part:arm"),
    "arms": ("mapping", "none", "explicit arms: name → {hacks: [...], set: {knob: value}}"),
    "reference": ("string", "none", "the explicit arms' reference arm (shorthand for design.reference)"),
    "seeds": ("int or list", "1", "a count (seeds 0…n−1) or the seeds themselves"),
    "steps": ("int", "1500", "training iterations per run (equal steps)"),
    "budget": ("mapping", "none", "instead of steps: {steps: N}, {flops: F} or {seconds: S, device: D}"),
    "evaluation": ("mapping", "the knobs' defaults", "{every, samples, reference_samples, split, metrics, protocol}"),
    "analysis": ("mapping", "the first metric", "{primary: metric, verdicts: [metrics]}: the report's family"),
    "results": ("string", "the name", "the results directory under the results root"),
}
ARM = {"hacks": ("list", "none", "hacks this arm turns on"), "set": ("mapping", "none", "knob → value, above the hacks")}
PART_OWN = {"preset": ("string", "the suite's", "this part's recipe"),
            "hacks": ("list", "the suite's", "this part's hacks under study"),
            "arms": ("mapping", "none", "a part of type arms: its arms"),
            "budget": ("mapping", "the suite's", "this part's own: {steps: N}, {flops: F} or {flops: reference} (each "
                       "arm trained to the FLOPs the part's reference arm spends in the suite's steps)")}


DesignOptions = Mapping[str, tuple[str, str]]  # the registered designs' options: `study.design.design_options()`


def design_keys(options: DesignOptions) -> dict[str, tuple[str, str, str]]:
    """`design:`'s keys: its type, the options the registered designs declare (a plugin's too), its reference."""
    declared = {key: (kind, "-", meaning) for key, (kind, meaning) in options.items()}
    return {"type": ("string", "-", "the design"), **declared,
            "reference": ("string", "the design's own", "the arm the others are compared with")}


def part_keys(options: DesignOptions) -> dict[str, tuple[str, str, str]]:
    """A `designs:` part's keys: a design's, and the part's own preset, hacks, arms and budget."""
    return {**design_keys(options), **PART_OWN}
EVALUATION = {"every": ("int", "500", "steps per evaluation (and the last step); knob eval_every"),
              "samples": ("int", "5000", "generated images per evaluation; knob eval_samples"),
              "reference_samples": ("int", "0 (whole split)", "real images; knob eval_reference_samples"),
              "split": ("string", "test", "the reference split; knob eval_split"),
              "metrics": ("string or list", "auto", "metric names, auto or none; knob metrics"),
              "protocol": ("string", "none", "a literature protocol (sets its knobs); knob eval_protocol")}
ANALYSIS = {"primary": ("string", "the first measured metric", "the metric headlines and equal-FLOPs readings use"),
            "verdicts": ("list", "the primary", "the metrics tested (the family)")}
DEFINE = {"summary": ("string", "-", "one line: what turning it on changes"),
          "source": ("string", "-", "where it comes from (paper, tip, notebook)"),
          "sets": ("mapping", "-", "knob → value when on"), "tags": ("list", "none", "words to group it by")}
BUDGET = {"steps": ("int", "-", "equal steps: every arm trains N steps"),
          "flops": ("number or 'reference'", "-", "equal compute: each arm trains until it has spent F FLOPs"),
          "seconds": ("number", "-", "equal time: steps from each structure's step time, timed on `device`"),
          "device": ("string", "cpu", "where a seconds budget is timed (cpu, cuda, cuda:N); seconds only")}
EVAL_KNOBS = {"every": "eval_every", "samples": "eval_samples", "reference_samples": "eval_reference_samples",
              "split": "eval_split", "metrics": "metrics", "protocol": "eval_protocol"}



def sections(options: DesignOptions) -> dict[str, dict[str, tuple[str, str, str]]]:
    """Every section of a suite file → its keys (what `ganbench suite-keys` prints)."""
    return {"(top)": TOP, "arms.NAME": ARM, "design": design_keys(options), "designs.PART": part_keys(options),
            "evaluation": EVALUATION, "analysis": ANALYSIS, "define.NAME": DEFINE, "budget": BUDGET}


def unknown_keys(data: Any, options: DesignOptions) -> list[str]:
    """'where: unknown key (did you mean …)' for every unknown key of the suite's sections (knob names in
    `base` and `set` are checked with the knobs; `options`: the registered designs')."""
    if not isinstance(data, dict):
        return []
    problems = _unknown("", data, TOP)
    for section, allowed in (("design", design_keys(options)), ("evaluation", EVALUATION), ("analysis", ANALYSIS)):
        if isinstance(data.get(section), dict):
            problems += _unknown(f"{section}.", data[section], allowed)
    for section, allowed in (("arms", ARM), ("designs", part_keys(options)), ("define", DEFINE)):
        entries = data.get(section)
        for name, spec in (entries.items() if isinstance(entries, dict) else ()):
            if isinstance(spec, dict):
                problems += _unknown(f"{section}.{name}.", spec, allowed)
                if section == "designs" and isinstance(spec.get("arms"), dict):
                    for arm, arm_spec in spec["arms"].items():
                        problems += _unknown(f"designs.{name}.arms.{arm}.", arm_spec, ARM) if isinstance(
                            arm_spec, dict) else []
    return problems


def _unknown(prefix: str, mapping: dict, allowed: dict[str, Any]) -> list[str]:
    return [f"{prefix}{key}: unknown key{did_you_mean(str(key), allowed)}" for key in mapping if key not in allowed]
