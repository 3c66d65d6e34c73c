"""The analysis behind a report (no matplotlib): per part, every metric's summaries, comparisons, failures, compute."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

from ganbench.analysis import failures, inference, stats
from ganbench.analysis.convergence import convergence_table
from ganbench.analysis.results import metric_directions
from ganbench.analysis.verdict_metrics import choose_metrics, scored_in_order
from ganbench.metrics.registry import value_range


@dataclass
class PartResult:
    """The numbers of one design part for every reported metric."""

    name: str
    kind: str
    reference: str | None
    arms: list[str]
    summaries: dict[str, pd.DataFrame]  # metric → arm_summary
    comparisons: dict[str, pd.DataFrame]  # metric → comparison rows at equal steps, after the family correction
    equal_compute: pd.DataFrame  # primary metric at equal FLOPs, where FLOPs per step differ (in the family)
    failures: pd.DataFrame  # arm → shares of failed to learn / mode collapse / D wins
    factorial: dict[str, pd.DataFrame]  # metric → factorial_effects (factorial designs only)
    interactions: bool  # two-way interactions estimable (full factorial, or resolution ≥ V)
    compute: pd.DataFrame  # arm → parameters, FLOPs per step, seconds per step timed alone
    directions: dict[str, bool | None]  # metric → higher is better (True/False) or neither (None), from its rows
    convergence: pd.DataFrame = field(default_factory=pd.DataFrame)  # primary metric over each arm's last stretch
    basis: str = inference.EQUAL_STEPS  # what its arms share at the final evaluation (`inference.part_basis`)
    compared_elsewhere: list[str] = field(default_factory=list)  # arms whose runs an earlier part compares already
    same_runs: dict[str, str] = field(default_factory=dict)  # arm → the earlier part's arm with its very runs


@dataclass
class Analysis:
    """Every part, and the choices that shape the whole report's inference."""

    parts: list[PartResult]
    primary: str
    verdict_metrics: list[str]
    family_size: int  # comparisons in the family (every one the report shows): Bonferroni intervals over them
    family_tested: int  # of them, those that can be tested (≥ MIN_SEEDS learned runs on both sides, or exact)
    exploratory: bool  # no quality row could be tested (each has < MIN_SEEDS learned runs on a side)
    smallest_exact_p: float = math.nan  # the smallest p an exact test could give at these seeds (`inference`)


def reported_metrics(frame: pd.DataFrame, requested: Sequence[str] | None) -> list[str]:
    present = [m for m in frame["metric"].dropna().unique()]
    if requested:
        missing = [m for m in requested if m not in present]
        if missing:
            raise ValueError(f"metric(s) {missing} not in these results; present: {sorted(present)}")
        return list(requested)
    return scored_in_order(present, metric_directions(frame))  # FID∞ only when asked (--metric)


def compute_frame(frame: pd.DataFrame, arms: list[str], costs: dict[str, Any]) -> pd.DataFrame:
    runs = frame[frame["arm"].isin(arms)].drop_duplicates(["arm", "run_id"])
    timed = costs.get("arms", {})
    rows = []
    for arm in arms:
        first = runs[runs["arm"] == arm].head(1)
        value = (lambda col: first[col].iloc[0] if len(first) and col in first and pd.notna(first[col].iloc[0])
                 else math.nan)
        rows.append({"arm": arm, "params_g": value("params_g"), "params_d": value("params_d"),
                     "flops_per_step": value("flops_per_step"), "steps": value("knob_steps"),
                     "step_seconds": timed.get(arm, {}).get("step_seconds", math.nan)})
    return pd.DataFrame(rows)


def _new_comparisons(part_frame: pd.DataFrame, reference: str | None, arms: list[str], compared: set) -> list[str]:
    """The arms (not the reference) whose runs, against the reference's runs, no earlier part has compared;
    each is added to `compared`. An arm of a FLOPs-trained part that trains the reference's steps has the
    equal-steps part's very runs: its comparison is that part's, not a second one."""
    runs = part_frame.groupby("arm")["run_id"].agg(frozenset).to_dict() if len(part_frame) else {}
    fresh = []
    for arm in arms:
        if arm == reference:
            continue
        key = (runs.get(arm), runs.get(reference))
        if key[0] is None or key not in compared:
            fresh.append(arm)
            compared.add(key)
    return fresh


def _same_runs(part_frame: pd.DataFrame, arms: list[str], first_label: dict[frozenset, str]) -> dict[str, str]:
    """The arms of this part whose runs an earlier part's arm holds (arm → that arm); every run set seen here
    is remembered in `first_label`."""
    runs = part_frame.groupby("arm")["run_id"].agg(frozenset).to_dict() if len(part_frame) else {}
    same = {}
    for arm in arms:
        key = runs.get(arm)
        if key is None:
            continue
        earlier = first_label.setdefault(key, arm)
        if earlier != arm:
            same[arm] = earlier
    return same


def _unassessed(part_frame: pd.DataFrame, arms: list[str], assessed: set) -> list[str]:
    """The arms whose run sets no earlier part has assessed for convergence (each is added to `assessed`):
    a reference shared by two parts, or an arm trained to the reference's steps, is counted once."""
    runs = part_frame.groupby("arm")["run_id"].agg(frozenset).to_dict() if len(part_frame) else {}
    fresh = []
    for arm in arms:
        key = runs.get(arm)
        if key is not None and key not in assessed:
            assessed.add(key)
            fresh.append(arm)
    return fresh


def analyse(frame: pd.DataFrame, training: pd.DataFrame, manifest: dict[str, Any], metrics: list[str],
            costs: dict[str, Any] | None = None) -> Analysis:
    directions = metric_directions(frame)
    primary, verdict_metrics = choose_metrics(metrics, manifest.get("analysis") or {})
    labels = failures.failure_labels(frame, training)
    failed = frozenset(labels.loc[labels[inference.FAILURE] == 1.0, "run_id"])  # compared as their own outcome
    parts, rows = [], []
    assessed: set = set()  # run sets whose convergence a part reports already: each is assessed once
    # a part trained to equal FLOPs answers the equal-compute question itself: no reading off curves then
    trained_flops = any(inference.part_basis(d) == inference.TRAINED_FLOPS for d in manifest["designs"])
    compared = set()  # (arm's runs, reference's runs): one comparison is one member of the family, once
    first_label: dict[frozenset, str] = {}  # a run set → the first arm (in part order) that holds it
    for design in manifest["designs"]:
        arms = [a["name"] for a in design["arms"]]
        part_frame = frame[frame["arm"].isin(arms)]
        reference = design["reference_arm"]
        others, basis = _new_comparisons(part_frame, reference, arms, compared), inference.part_basis(design)
        elsewhere = [a for a in arms if a != reference and a not in others]  # their runs: an earlier part's
        same_runs = _same_runs(part_frame, arms, first_label)
        summaries = {}
        for metric in metrics:
            values = stats.run_values(part_frame, metric, directions.get(metric))
            learned = values.assign(value=values["value"].where(~values["run_id"].isin(failed)))
            summaries[metric] = stats.arm_summary(learned, value_range(metric))  # how well, when it learned
            if reference and others and metric in verdict_metrics:
                rows.append(inference.compare_to_reference(values, reference, metric, directions.get(metric), others,
                                                           basis, failed).assign(part=design["part"]))
        if reference and others:
            rows.append(inference.compare_failures(labels[labels["arm"].isin(arms)], reference, others,
                                                   basis).assign(part=design["part"]))
        compute = compute_frame(frame, arms, costs or {})
        if reference and others and not trained_flops:
            flops = compute.set_index("arm")["flops_per_step"].dropna().to_dict()
            # (equal seconds is not compared: step times of arms with one network differ by the timing's noise)
            rows.append(inference.compare_at_equal_compute(part_frame, reference, primary, directions.get(primary),
                                                           flops, others, failed).assign(part=design["part"]))
        factorial, interactions = _factorial(design, part_frame, metrics, directions)
        parts.append(PartResult(design["part"], design["kind"], reference, arms, summaries, {}, pd.DataFrame(),
                                failures.failure_rates(labels[labels["arm"].isin(arms)]), factorial, interactions,
                                compute, directions,
                                convergence_table(part_frame[~part_frame["run_id"].isin(failed)], primary,
                                                  directions.get(primary), _unassessed(part_frame, arms, assessed),
                                                  reference),  # how the runs that learned still move
                                basis, elsewhere, same_runs))
    family = inference.apply_family(pd.concat(rows, ignore_index=True)) if rows else pd.DataFrame()
    for part in parts:
        mine = family[family["part"] == part.name] if not family.empty else family
        for metric in [*verdict_metrics, inference.FAILURE]:
            part.comparisons[metric] = (mine[(mine["metric"] == metric) & (mine["basis"] == part.basis)]
                                        if not mine.empty else pd.DataFrame())
        part.equal_compute = mine[mine["basis"] != part.basis] if not mine.empty else pd.DataFrame()
    return _whole(parts, family, primary, verdict_metrics, len(manifest.get("seeds") or []) or 1)


def _whole(parts: list[PartResult], family: pd.DataFrame, primary: str, verdict_metrics: list[str],
           seeds: int) -> Analysis:
    """The study's analysis from its parts and its one family."""
    size = int(family["family_size"].iloc[0]) if not family.empty else 0
    tested = int(family["family_tested"].iloc[0]) if not family.empty else 0
    # exploratory: no quality comparison could be tested (an exact failure-share test can be at any n)
    quality = family[family["metric"] != inference.FAILURE] if not family.empty else family
    exploratory = quality.empty or not quality["verdict"].isin(["better", "worse", "no clear difference"]).any()
    return Analysis(parts, primary, verdict_metrics, size, tested, exploratory, inference.smallest_exact_p(seeds, seeds))


def _factorial(design: dict[str, Any], part_frame: pd.DataFrame, metrics: list[str],
               directions: dict[str, bool | None]) -> tuple[dict[str, pd.DataFrame], bool]:
    """A factorial part's effects per metric, and whether its two-way interactions are estimable."""
    factorial: dict[str, pd.DataFrame] = {}
    if design["kind"] not in ("full_factorial", "fractional_factorial"):
        return factorial, False
    interactions = design["kind"] == "full_factorial" or (design["resolution"] or 0) >= 5
    factors = {a["name"]: a["factors"] for a in design["arms"]}
    for metric in metrics:
        values = stats.run_values(part_frame, metric, directions.get(metric))
        try:
            factorial[metric] = stats.factorial_effects(values, factors, interactions)
        except ValueError:  # too few runs for the model: say so in the report, not crash
            factorial[metric] = pd.DataFrame()
    return factorial, interactions
