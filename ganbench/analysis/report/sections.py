"""The report's prose sections: setup and provenance, the inference statement, findings."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ganbench import rundir
from ganbench.analysis import inference
from ganbench.analysis.convergence import convergence_counts
from ganbench.analysis.results import SETTING
from ganbench.suitedir import SuiteDir
from ganbench.analysis.report.analysis import Analysis, PartResult
from ganbench.analysis.report.tables import capacity_text, interval_text, number_text


def first_config(results_dir: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """config.json of the first run that has started and whose record reads (a report of a partly
    trained suite, `run --only`, must not need the rest; a damaged one is said by load_results)."""
    suite_dir = SuiteDir(results_dir)
    for entry in manifest["runs"]:
        try:
            config = suite_dir.run_dir(entry["run_id"]).read_config()
        except rundir.RunDirError:
            continue
        if config and isinstance(config.get("provenance"), dict):
            return config
    return None


def provenance_lines(frame: pd.DataFrame, results_dir: Path, manifest: dict[str, Any]) -> list[str]:
    rows = frame.dropna(subset=["metric"])
    lines = []
    columns = [c for c in SETTING if c in rows]
    for _, group in rows.groupby(columns, dropna=False, sort=False) if columns else []:  # one line per setting
        first, extractor = group.iloc[0], group.iloc[0]["extractor"]
        names = ", ".join(f"`{m}`" for m in dict.fromkeys(group["metric"]))
        lines.append(f"- {names} with the `{extractor}` extractor (`{first['feature_extractor']}`, layer "
                     f"`{first.get('feature_layer', '-')}`, weights sha256 `{str(first['weights_sha256'])[:16]}…`, "
                     f"{first['weights_source']}): {int(first['samples_generated'])} generated vs "
                     f"{int(first['reference_samples'])} real `{first['reference_split']}` images, resize: "
                     f"{first['resize_mode']}, torch-fidelity {first['torch_fidelity_version']}")
    # The first run that has started: a report of a partly trained suite (`run --only`) must not need the rest.
    config = first_config(results_dir, manifest)
    if config:
        prov, cfg = config["provenance"], config["config"]
        versions = ", ".join(f"{k} {v}" for k, v in prov["versions"].items())
        equal_steps = (manifest.get("budget") or {}).get("kind", "steps") == "steps"
        steps = f"{cfg['steps']} steps" if equal_steps else "the steps of the compute table"
        lines.append(f"- training: {steps} of batch {cfg['batch_size']} on `{cfg['dataset']}` "
                     f"(`{cfg['data_split']}` split), precision {cfg['precision']}, evaluation every "
                     f"{cfg['eval_every']} steps")
        lines.append(f"- machine: {prov['machine'].get('host_cpu')} ({prov['machine'].get('cpu_count')} cores), "
                     f"device `{prov['machine'].get('device')}`; {versions}; ganbench commit `{prov['git_commit']}`")
    return lines


def finding_numbers(row: Any, metric: str, result: Analysis) -> str:
    return (f"{row.basis}, Δ {metric} = {interval_text(row)} (simultaneous CI over {result.family_size}), n = "
            f"{row.n:.0f} vs {row.n_reference:.0f}, {row.test}" + (
                f", p = {number_text(row.p_family, '.3g')} after Bonferroni over the {result.family_size}"
                if np.isfinite(row.p_family) else f", not tested ({row.verdict})"))


def failure_findings(part: PartResult, result: Analysis) -> list[str]:
    """The failure-share rows of a part in words: called, or why not and how many seeds would decide it —
    "no clear difference" in failure share must not read as "fails as rarely as the reference"."""
    rows = part.comparisons.get(inference.FAILURE, pd.DataFrame())
    lines = []
    for row in rows.itertuples() if not rows.empty else ():
        shares = interval_text(row)
        if row.verdict in ("better", "worse"):
            lines.append(f"- **{row.arm}** fails to learn {'more' if row.verdict == 'worse' else 'less'} often than "
                         f"`{part.reference}` ({shares}, Fisher p = {number_text(row.p, '.2g')}, "
                         f"{number_text(row.p_family, '.2g')} over the family).")
            continue
        level = 0.05 / max(result.family_size, 1)
        needed = inference.seeds_to_decide(int(row.failed), int(row.n), int(row.failed_reference),
                                           int(row.n_reference), level)
        lines.append(f"- {row.arm}: failed to learn in {row.failed:.0f} of {row.n:.0f} runs against "
                     f"{row.failed_reference:.0f} of {row.n_reference:.0f} for `{part.reference}` ({shares}); Fisher "
                     f"p = {number_text(row.p, '.2g')} cannot decide at these seeds (the family's level is "
                     f"{level:.2g})" + (f"; the same shares would need ≈ {needed} seeds per arm" if needed else "")
                     + ". Not deciding is not \"fails as rarely\".")
    quality = [r for m in result.verdict_metrics for r in part.comparisons.get(m, pd.DataFrame()).itertuples()
               if r.verdict == "withheld"]
    for arm in dict.fromkeys(r.arm for r in quality):
        row = next(r for r in quality if r.arm == arm)
        lines.append(f"- {arm}: quality not compared — {row.failed:.0f} of {row.runs:.0f} runs failed to learn, "
                     f"{row.n:.0f} learned (a verdict needs {inference.MIN_SEEDS}); its intervals use those runs only.")
    return lines


def findings(result: Analysis) -> list[str]:
    """One line per arm on the primary metric, at equal steps and equal FLOPs, with the other
    verdict metrics' verdicts where they say something; every line gives basis, n, CI, family."""
    metric, lines = result.primary, []
    trained = any(p.basis == inference.TRAINED_FLOPS for p in result.parts)
    for part in result.parts:
        lines += convergence_findings(part, metric) + failure_findings(part, result)
        steps = part.comparisons.get(metric, pd.DataFrame())
        if steps.empty:
            continue
        compute = part.equal_compute
        flops = {r.arm: r for r in compute[compute["basis"] == inference.EQUAL_FLOPS].itertuples()} if len(compute) else {}
        if result.exploratory:
            lines += exploratory_findings(part, steps, flops, metric)
            steps = steps.iloc[0:0]
        verdicts = {m: dict(zip(part.comparisons[m]["arm"], part.comparisons[m]["verdict"]))
                    for m in result.verdict_metrics if m != metric and not part.comparisons[m].empty}
        for row in steps.itertuples():
            at_steps = finding_numbers(row, metric, result)
            crow = flops.get(row.arm)
            compute_verdict = crow.verdict if crow is not None and np.isfinite(crow.estimate) else None
            if compute_verdict is not None:
                at_compute = f"{finding_numbers(crow, metric, result)}; {crow.note}"
            elif crow is not None and isinstance(crow.note, str):
                at_compute = crow.note
            elif part.basis == inference.TRAINED_FLOPS:  # no curve is read when a part is trained to it
                at_compute = "its arms trained to equal FLOPs"
            else:
                at_compute = "equal compute: trained in its own part" if trained else "no equal-compute reading"
            basis = part.basis
            if row.verdict in ("better", "worse") and compute_verdict not in (None, row.verdict):
                head = (f"- **{row.arm}** is {row.verdict} than `{part.reference}` at {basis} but "
                        f"*{compute_verdict}* at equal compute: both readings hold under their conditions")
            elif row.verdict in ("better", "worse"):
                head = f"- **{row.arm}** is {row.verdict} than `{part.reference}` at {basis}"
                if compute_verdict == row.verdict:
                    head += " and at equal compute"
            elif compute_verdict in ("better", "worse"):
                head = (f"- **{row.arm}**: {row.verdict} from `{part.reference}` at {basis}, "
                        f"{compute_verdict} at equal compute")
            else:
                head = f"- {row.arm}: {row.verdict} ({basis})" + (
                    f", {compute_verdict} (equal compute)" if compute_verdict else "")
            others = [f"{m}: {v[row.arm]}" for m, v in verdicts.items() if v.get(row.arm) in ("better", "worse")]
            lines.append(f"{head} ({at_steps}; {at_compute})." + (
                f" Other metrics: {', '.join(others)}." if others else ""))
        summary = part.summaries[metric]
        for row in summary.itertuples():
            if row.diverged > 0 or row.failed > 0:
                lines.append(f"- {row.arm}: {row.diverged:.0%} of its {row.runs} runs diverged and "
                             f"{row.failed:.0%} failed; they are excluded from its mean and counted here.")
            if row.unfinished > 0:
                lines.append(f"- {row.arm}: {row.unfinished:.0%} of its {row.runs} runs have not finished; "
                             "its numbers are provisional.")
    return lines or ["- No arm could be compared with a reference arm."]


def _millions(value: float) -> str:
    return f"{value / 1e6:.3g} M" if np.isfinite(value) else "?"


def hack_source_lines(manifest: dict[str, Any]) -> list[str]:
    """Every hack an arm of the suite holds, with what it does and the source it cites (the paper, the
    ganhacks item or the seed tutorial), so a reader can check where each piece of folklore comes from."""
    from ganbench.hacks import HACKS

    named = dict.fromkeys(h for design in manifest["designs"] for arm in design["arms"] for h in arm["hacks"])
    return [f"- `{name}`: {HACKS[name].summary.rstrip('.')}. Source: {HACKS[name].source}." if name in HACKS else
            f"- `{name}`: not registered in this process (a plugin's hack: load it with -p to cite its source)."
            for name in named]


def arm_lines(result: Analysis, manifest: dict[str, Any]) -> list[str]:
    """Each arm in words: which hacks it adds or removes against its reference (with what they do), and
    how its networks' size and FLOPs per step differ."""
    from ganbench.hacks import HACKS

    lines = []
    for design, part in zip(manifest["designs"], result.parts):
        arms = {a["name"]: a for a in design["arms"]}
        reference = arms.get(part.reference or "")
        compute = part.compute.set_index("arm") if not part.compute.empty else pd.DataFrame()
        for name, arm in arms.items():
            if reference is None or name == part.reference:
                continue
            said = []
            for verb, hacks in (("without", [h for h in reference["hacks"] if h not in arm["hacks"]]),
                                ("with", [h for h in arm["hacks"] if h not in reference["hacks"]])):
                for hack in hacks:
                    what = HACKS[hack].summary.rstrip(".") if hack in HACKS else "not a registered hack"
                    said.append(f"{verb} `{hack}` ({what})")
            said += [f"`{k}={v}`" for k, v in (arm.get("set") or {}).items()]
            if name in compute.index and part.reference in compute.index:
                mine, ref = compute.loc[name], compute.loc[part.reference]
                for net in ("g", "d"):
                    a, b = ref[f"params_{net}"], mine[f"params_{net}"]
                    if np.isfinite(a) and np.isfinite(b) and a != b:
                        said.append(f"{net.upper()} {_millions(a)} → {_millions(b)} parameters")
                a, b = ref["flops_per_step"], mine["flops_per_step"]
                if np.isfinite(a) and np.isfinite(b) and a > 0 and not math.isclose(a, b, rel_tol=1e-9):
                    said.append(f"×{b / a:.2g} the FLOPs per step")
            lines.append(f"- `{name}` against `{part.reference}`: " + ("; ".join(said) or "the same hacks") + ".")
    return lines


def called_rows(part: PartResult, metrics: list[str]) -> pd.DataFrame:
    """Every row of a part called better or worse, on every verdict metric and the failure share."""
    frames = [c for m in [*metrics, inference.FAILURE] if not (c := part.comparisons.get(m, pd.DataFrame())).empty]
    frames += [part.equal_compute] if not part.equal_compute.empty else []
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return rows[rows["verdict"].isin(["better", "worse"])] if not rows.empty else rows


def headline(result: Analysis, manifest: dict[str, Any]) -> list[str]:
    """What the study can say, at which budget, with what confidence: a paragraph, then (with verdicts)
    one line per part naming every arm the family calls different from its reference, on any verdict
    metric or in its failure share."""
    metric = result.primary
    arms, distinct = sum(len(p.arms) for p in result.parts), len({r["run_id"] for r in manifest["runs"]})
    shared = f" ({distinct} distinct runs: arms with equal configs share them)" if distinct < len(manifest["runs"]) else ""
    sentences = [f"{arms} arms × {len(manifest['seeds'])} seeds{shared} at "
                 f"{budget_text(manifest)}, compared with each part's reference on {len(result.verdict_metrics)} "
                 f"metrics and the share of runs that failed to learn ({result.family_size} comparisons, one family)."]
    if result.exploratory:
        sentences.append(f"With fewer than {inference.MIN_SEEDS} seeds per arm it is exploratory: no quality difference "
                         "is tested (failure shares are, exactly), and the simultaneous intervals are wide.")
    else:
        called = sum(len(called_rows(p, result.verdict_metrics)) for p in result.parts)
        sentences.append(f"{called} of the {result.family_tested} tested comparisons are called better or worse "
                         "(Bonferroni, family-wise error ≤ 5 %).")
    improving, assessed = convergence_counts([p.convergence for p in result.parts])
    if improving:
        sentences.append(f"The budget has not converged: {improving} of {assessed} arms still improve on `{metric}` "
                         "over the last quarter of their training, so the ranking is that of this budget.")
    effects = []
    for part in result.parts:
        rows = part.comparisons.get(metric, pd.DataFrame())
        rows = rows[np.isfinite(rows["estimate"].astype(float))] if not rows.empty else rows
        if rows.empty:
            continue
        if result.exploratory:
            better = rows.sort_values("estimate", ascending=bool(part.directions.get(metric))).iloc[-1]
            sentences.append(f"The largest estimated improvement on `{metric}` over `{part.reference}` is "
                             f"{better['arm']}: {interval_text(better)} (simultaneous CI).")
        else:
            effects.append(part_effects(part, result, len(rows)))
    return [" ".join(sentences[:5]), *(["", *effects] if effects else [])]


def part_effects(part: PartResult, result: Analysis, compared: int) -> str:
    """One line: every arm of a part the family calls different from its reference — its strongest verdict
    with change, simultaneous CI and family p, then the metrics of its other verdicts — and how many arms
    show no difference the family can detect."""
    called = called_rows(part, result.verdict_metrics).sort_values("p_family") if compared else pd.DataFrame()
    said = []
    for arm, rows in (called.groupby("arm", sort=False) if not called.empty else ()):
        top = rows.iloc[0]
        where = "failure share" if top["metric"] == inference.FAILURE else f"`{top['metric']}`"
        text = (f"`{arm}`{capacity_text(part, arm)} {top['verdict']} on {where}"
                + (" at equal FLOPs" if top["basis"] == inference.EQUAL_FLOPS else "")
                + f" ({interval_text(top)}, p = {number_text(top['p_family'], '.2g')})")
        more = [f"{r.verdict} on {'failure share' if r.metric == inference.FAILURE else r.metric}"
                for r in rows.iloc[1:].itertuples()]
        said.append(text + (f" and {len(more)} more ({', '.join(more)})" if more else ""))
    primary = part.comparisons.get(result.primary, pd.DataFrame())
    withheld = list(primary.loc[primary["verdict"] == "withheld", "arm"]) if not primary.empty else []
    quiet = len(set(primary["arm"]) - set(called["arm"] if not called.empty else []) - set(withheld)) \
        if not primary.empty else 0
    basis = (f"{part.basis}, at this budget" if part.basis == inference.TRAINED_FLOPS else part.basis)
    return (f"- **{part.name or 'design'}**, {basis}, against `{part.reference}`: "
            + ("; ".join(said) if said else "no arm differs detectably on any verdict metric")
            + (f"; {quiet} other arm{'s show' if quiet != 1 else ' shows'} no difference the family can detect at "
               "these seeds (not the same as no effect)" if said and quiet > 0 else "")
            + (f"; {', '.join(f'`{a}`' for a in withheld)} not compared on quality (too few runs that learned)"
               if withheld else "") + ".")


def limitations(result: Analysis, manifest: dict[str, Any], frame: pd.DataFrame, results_dir: Path) -> list[str]:
    """What the numbers do not say: one dataset, one architecture family, this budget and its convergence,
    the extractor behind the metrics, and the seeds' resolution."""
    machine = ((first_config(results_dir, manifest) or {}).get("provenance") or {}).get("machine") or {}
    datasets = sorted(frame["knob_dataset"].dropna().unique()) if "knob_dataset" in frame else []
    presets = sorted({d["preset"] for d in manifest["designs"] if d.get("preset")})
    extractors = sorted(frame["extractor"].dropna().unique()) if "extractor" in frame else []
    devices = [machine["device"]] if machine.get("device") else []
    improving, arms = convergence_counts([p.convergence for p in result.parts])
    lines = [f"- **Dataset**: {', '.join(f'`{d}`' for d in datasets) or 'one dataset'} only; a hack's effect on "
             "other data (colour, higher resolution, more classes) is not measured here.",
             f"- **Architecture**: one family, the DCGAN-style networks of the "
             f"{', '.join(f'`{p}`' for p in presets)} recipe{'s' * (len(presets) > 1)} and the variants its arms "
             "make; other families (ResNet GANs, StyleGAN) may respond differently.",
             f"- **Budget**: {budget_text(manifest)}" + (f" on {', '.join(f'`{d}`' for d in devices)}" if devices else "")
             + (f"; {improving} of {arms} arms still improve on `{result.primary}` over the last quarter of their "
                "training, so the ranking is that of this budget, not of converged models" if improving else
                f"; no arm still improves on `{result.primary}` over the last quarter of its training (2 standard "
                "errors)" if arms else "") + "."]
    if any(e != "inception" for e in extractors):
        lines.append(f"- **Metrics**: computed with the {', '.join(f'`{e}`' for e in extractors)} feature "
                     "extractor; an extractor other than Inception gives numbers that are not comparable with "
                     "published (Inception) FIDs, only with each other.")
    lines.append(f"- **Seeds**: {len(manifest['seeds'])} per arm, {result.family_size} comparisons in one family: an "
                 "arm without a verdict may still differ by less than these seeds resolve (`ganbench plan --pilot` "
                 "gives the smallest change they detect).")
    return lines


def convergence_findings(part: PartResult, metric: str) -> list[str]:
    """Whether the budget has converged on `metric`, and which comparisons flip over the last evaluations."""
    c = part.convergence
    if c.empty:
        return []
    unit = " %" if (c["scale"] == "log").any() else ""
    improving = c[c["still_improving"]]
    if len(improving):
        named = ", ".join(f"{r.arm} ({number_text(r.change, '+.3g')}{unit}, steps {r.previous_step} → {r.last_step})"
                          for r in improving.itertuples())
        lines = [f"- **Not converged**: {len(improving)} of {len(c)} arms of {part.name or 'the design'} are still "
                 f"improving on `{metric}` over the last quarter of their own training by more than 2 standard "
                 f"errors: {named}. Their rankings are provisional; a longer budget may order the arms differently."]
    else:
        lines = [f"- Converged on `{metric}` as far as 2 standard errors tell: no arm of {part.name or 'the design'} "
                 "still improves over the last quarter of its training."]
    if "flips" in c:
        flipped = c[c["flips"].fillna(False).astype(bool)]
        if len(flipped):
            named = ", ".join(f"{r.arm} ({number_text(r.vs_reference_previous, '+.3g')}{unit} at step "
                              f"{r.previous_step} → {number_text(r.vs_reference_last, '+.3g')}{unit} at {r.last_step})"
                              for r in flipped.itertuples())
            lines.append(f"- The difference from `{part.reference}` changes sign over the last stretch for {named}: "
                         "these comparisons depend on the budget.")
    return lines


def exploratory_findings(part: PartResult, steps: pd.DataFrame, flops: dict[str, Any], metric: str) -> list[str]:
    """No verdicts: each arm's estimate at equal steps and at equal FLOPs, with n and the intervals."""
    lines = []
    for row in steps.itertuples():
        text = f"- {row.arm} vs `{part.reference}` on {metric}: {part.basis} {interval_text(row)}"
        crow = flops.get(row.arm)
        if crow is not None:
            text += (f"; equal FLOPs {interval_text(crow)} ({crow.note})" if np.isfinite(crow.estimate)
                     else f"; equal FLOPs {crow.note}")
        lines.append(f"{text}; n = {row.n:.0f} vs {row.n_reference:.0f}; not tested (exploratory), simultaneous "
                     f"Bonferroni intervals over the {row.family_size} comparisons shown.")
    return lines


def inference_lines(result: Analysis, manifest: dict[str, Any]) -> list[str]:
    budget = budget_text(manifest)
    trained = any(p.basis == inference.TRAINED_FLOPS for p in result.parts)
    members = ("every verdict metric at its part's basis: equal steps, or equal FLOPs where a part is trained to "
               "them; an arm whose runs an earlier part compares already is compared there, once" if trained else
               "every verdict metric at equal steps, and the primary metric at equal FLOPs where the arms' FLOPs per "
               "step differ")
    family = (f"The family is the {result.family_size} comparisons the tables below show ({members}, and the share "
              "of runs that failed to learn where either arm has a failure); each quality difference is Welch's t "
              "(each arm its own variance) on the runs that learned, each failure share Fisher's exact test, and every "
              f"interval is simultaneous: Bonferroni over all {result.family_size}, so together they cover the true "
              "values with probability ≥ 95 %.")
    conditions = ("Each t test's p and interval are read at the least favourable ratio of the two arms' variances "
                  "(Welch's statistic, its tail computed exactly for every ratio and the worst taken): Welch's own "
                  "tails are too thin at this level with few runs. So " + inference.GUARANTEE + ".")
    exact = (f" At {len(manifest.get('seeds') or [])} seeds per arm no exact (permutation) test can give a p below "
             f"{result.smallest_exact_p:.2g}, above the family's level {0.05 / max(result.family_size, 1):.2g}: every "
             "quality verdict here rests on the t test's normal tails." if np.isfinite(result.smallest_exact_p) and
             result.smallest_exact_p >= 0.05 / max(result.family_size, 1) else "")
    if result.exploratory:
        mode = (f"**Exploratory study**: fewer than {inference.MIN_SEEDS} usable runs per arm, so no comparison is "
                f"tested and there are no better/worse verdicts. {family} Run at least {inference.MIN_SEEDS} seeds "
                "per arm for verdicts (`ganbench plan` says how many a given effect needs).")
    else:
        mode = (f"{family} Verdicts: the same Bonferroni level over the {result.family_tested} comparisons that can "
                f"be tested (≥ {inference.MIN_SEEDS} learned runs on both sides, or an exact test): p < 5 %/"
                f"{result.family_size}, which for a difference is exactly when its interval excludes 0 (family-wise "
                f"error ≤ 5 %). {conditions}{exact}")
    return [mode, "", f"- primary metric: `{result.primary}`; verdict metrics: "
            f"{', '.join(f'`{m}`' for m in result.verdict_metrics)}",
            f"- budget: {budget}", *([] if trained else [f"- {inference.INTERPOLATION}"])]


def budget_text(manifest: dict[str, Any]) -> str:
    """The suite's budget, and each part's own where it has one."""
    text = (manifest.get("budget") or {}).get("text", inference.EQUAL_STEPS)
    own = [f"part `{d['part']}`: {d['budget']['text']}" for d in manifest["designs"] if d.get("budget")]
    return text + (f" ({'; '.join(own)})" if own else "")
