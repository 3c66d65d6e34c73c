"""The analysis behind a report (no matplotlib): per part, every metric's summaries, comparisons, failures, compute."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

from ganbench.analysis import failures, inference, stats
from ganbench.analysis.convergence import convergence_table
from ganbench.analysis.results import metric_directions
from ganbench.metrics.registry import METRICS, optional_values, value_range


PREFERRED = ("fid_fmnist", "kid_fmnist", "isc_fmnist", "precision_fmnist", "recall_fmnist", "modes_covered_fmnist",
             "modes_kl_fmnist", "fid", "kid", "isc", "precision", "recall")


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
    convergence: pd.DataFrame = field(default_factory=pd.DataFrame)  # primary metric over the last two evaluations
    basis: str = "equal steps"  # what its arms share at the final evaluation (`inference.part_basis`)
    compared_elsewhere: list[str] = field(default_factory=list)  # arms whose runs an earlier part compares already


@dataclass
class Analysis:
    """Every part, and the choices that shape the whole report's inference."""

    parts: list[PartResult]
    primary: str
    verdict_metrics: list[str]
    family_size: int  # comparisons in the family (every one the report shows): Bonferroni intervals over them
    family_tested: int  # of them, those with ≥ MIN_SEEDS usable runs on both sides: Holm verdicts over them
    exploratory: bool  # no row could be tested (every comparison has < MIN_SEEDS runs on a side)


def reported_metrics(frame: pd.DataFrame, requested: Sequence[str] | None) -> list[str]:
    present = [m for m in frame["metric"].dropna().unique()]
    if requested:
        missing = [m for m in requested if m not in present]
        if missing:
            raise ValueError(f"metric(s) {missing} not in these results; present: {sorted(present)}")
        return list(requested)
    directions = metric_directions(frame)
    # FID∞ only when asked (--metric): at these sample sizes it adds nothing to FID (it differs from it by
    # less than one generator's evaluation noise) and doubles the main table
    optional = {value for metric in METRICS.values() for value in optional_values(metric)}
    scored = [m for m in present if directions.get(m) is not None and m not in optional]
    return sorted(scored, key=lambda m: (PREFERRED.index(m) if m in PREFERRED else len(PREFERRED), m))


def choose_metrics(chosen: list[str], analysis: dict[str, Any]) -> tuple[str, list[str]]:
    """(primary metric, verdict metrics): the suite's `analysis` section, else the dataset's FID
    (the fmnist one where present) and the next three scored metrics reported."""
    primary = analysis.get("primary") or next((m for m in ("fid_fmnist", "fid") if m in chosen), chosen[0])
    if primary not in chosen:
        raise ValueError(f"the suite's primary metric '{primary}' is not in these results; present: {chosen}")
    verdicts = list(analysis.get("verdicts") or [primary, *[m for m in chosen if m != primary][:3]])
    if primary not in verdicts:
        verdicts.insert(0, primary)
    return primary, [m for m in verdicts if m in chosen]


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


def analyse(frame: pd.DataFrame, training: pd.DataFrame, manifest: dict[str, Any], metrics: list[str],
            costs: dict[str, Any] | None = None) -> Analysis:
    directions = metric_directions(frame)
    primary, verdict_metrics = choose_metrics(metrics, manifest.get("analysis") or {})
    labels = failures.failure_labels(frame, training)
    parts, rows = [], []
    # a part trained to equal FLOPs answers the equal-compute question itself: no reading off curves then
    trained_flops = any(inference.part_basis(d) == inference.TRAINED_FLOPS for d in manifest["designs"])
    compared = set()  # (arm's runs, reference's runs): one comparison is one member of the family, once
    for design in manifest["designs"]:
        arms = [a["name"] for a in design["arms"]]
        part_frame = frame[frame["arm"].isin(arms)]
        reference = design["reference_arm"]
        others, basis = _new_comparisons(part_frame, reference, arms, compared), inference.part_basis(design)
        elsewhere = [a for a in arms if a != reference and a not in others]  # their runs: an earlier part's
        summaries = {}
        for metric in metrics:
            values = stats.run_values(part_frame, metric, directions.get(metric))
            summaries[metric] = stats.arm_summary(values, value_range(metric))
            if reference and others and metric in verdict_metrics:
                rows.append(inference.compare_to_reference(values, reference, metric, directions.get(metric), others,
                                                           basis).assign(part=design["part"]))
        compute = compute_frame(frame, arms, costs or {})
        if reference and others and not trained_flops:
            flops = compute.set_index("arm")["flops_per_step"].dropna().to_dict()
            # (equal seconds is not compared: step times of arms with one network differ by the timing's noise)
            rows.append(inference.compare_at_equal_compute(part_frame, reference, primary, directions.get(primary),
                                                           flops, others, "FLOPs").assign(part=design["part"]))
        factorial, interactions = {}, False
        if design["kind"] in ("full_factorial", "fractional_factorial"):
            interactions = design["kind"] == "full_factorial" or (design["resolution"] or 0) >= 5
            factors = {a["name"]: a["factors"] for a in design["arms"]}
            for metric in metrics:
                values = stats.run_values(part_frame, metric, directions.get(metric))
                try:
                    factorial[metric] = stats.factorial_effects(values, factors, interactions)
                except ValueError:  # too few runs for the model: say so in the report, not crash
                    factorial[metric] = pd.DataFrame()
        parts.append(PartResult(design["part"], design["kind"], reference, arms, summaries, {}, pd.DataFrame(),
                                failures.failure_rates(labels[labels["arm"].isin(arms)]), factorial, interactions,
                                compute, directions,
                                convergence_table(part_frame, primary, directions.get(primary),
                                                  [a for a in arms if a not in elsewhere], reference),
                                basis, elsewhere))
    family = inference.apply_family(pd.concat(rows, ignore_index=True)) if rows else pd.DataFrame()
    for part in parts:
        mine = family[family["part"] == part.name] if not family.empty else family
        for metric in verdict_metrics:
            part.comparisons[metric] = (mine[(mine["metric"] == metric) & (mine["basis"] == part.basis)]
                                        if not mine.empty else pd.DataFrame())
        part.equal_compute = mine[mine["basis"] != part.basis] if not mine.empty else pd.DataFrame()
    size = int(family["family_size"].iloc[0]) if not family.empty else 0
    tested = int(family["family_tested"].iloc[0]) if not family.empty else 0
    return Analysis(parts, primary, verdict_metrics, size, tested, tested == 0)
