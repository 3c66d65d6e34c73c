"""The report's prose sections: setup and provenance, the inference statement, findings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ganbench import rundir
from ganbench.analysis import inference
from ganbench.suitedir import SuiteDir
from ganbench.analysis.report.analysis import Analysis, PartResult
from ganbench.analysis.report.tables import interval_text, number_text


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
    for extractor, group in rows.groupby("extractor"):
        first = group.iloc[0]
        lines.append(f"- metrics with the `{extractor}` extractor (`{first['feature_extractor']}`, layer "
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


def finding_numbers(row: Any, metric: str, family: int) -> str:
    return (f"{row.basis}, Δ {metric} = {interval_text(row)} (simultaneous CI), n = {row.n:.0f} vs {row.n_reference:.0f}, "
            f"{row.test}" + (f", Holm p = {number_text(row.p_holm, '.3g')} in a family of {family}"
                             if np.isfinite(row.p_holm) else
                             f", not tested (exploratory; Bonferroni interval over {row.family_rows} comparisons)"))


def findings(result: Analysis) -> list[str]:
    """One line per arm on the primary metric, at equal steps and equal FLOPs, with the other
    verdict metrics' verdicts where they say something; every line gives basis, n, CI, family."""
    metric, lines = result.primary, []
    for part in result.parts:
        steps = part.comparisons.get(metric, pd.DataFrame())
        if steps.empty:
            continue
        compute = part.equal_compute
        flops = {r.arm: r for r in compute[compute["basis"] == "equal FLOPs"].itertuples()} if len(compute) else {}
        if result.exploratory:
            lines += exploratory_findings(part, steps, flops, metric)
            steps = steps.iloc[0:0]
        verdicts = {m: dict(zip(part.comparisons[m]["arm"], part.comparisons[m]["verdict"]))
                    for m in result.verdict_metrics if m != metric and not part.comparisons[m].empty}
        for row in steps.itertuples():
            at_steps = finding_numbers(row, metric, result.family_size)
            crow = flops.get(row.arm)
            compute_verdict = crow.verdict if crow is not None and np.isfinite(crow.estimate) else None
            if compute_verdict is not None:
                at_compute = f"{finding_numbers(crow, metric, result.family_size)}; {crow.note}"
            else:
                at_compute = crow.note if crow is not None and isinstance(crow.note, str) else "no equal-compute reading"
            if row.verdict in ("better", "worse") and compute_verdict not in (None, row.verdict):
                head = (f"- **{row.arm}** is {row.verdict} than `{part.reference}` at equal steps but "
                        f"*{compute_verdict}* at equal compute: both readings hold under their conditions")
            elif row.verdict in ("better", "worse"):
                head = f"- **{row.arm}** is {row.verdict} than `{part.reference}` at equal steps"
                if compute_verdict == row.verdict:
                    head += " and at equal compute"
            elif compute_verdict in ("better", "worse"):
                head = (f"- **{row.arm}**: {row.verdict} from `{part.reference}` at equal steps, "
                        f"{compute_verdict} at equal compute")
            else:
                head = f"- {row.arm}: {row.verdict} (equal steps)" + (
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


def exploratory_findings(part: PartResult, steps: pd.DataFrame, flops: dict[str, Any], metric: str) -> list[str]:
    """No verdicts: each arm's estimate at equal steps and at equal FLOPs, with n and the intervals."""
    lines = []
    for row in steps.itertuples():
        text = f"- {row.arm} vs `{part.reference}` on {metric}: equal steps {interval_text(row)}"
        crow = flops.get(row.arm)
        if crow is not None:
            text += (f"; equal FLOPs {interval_text(crow)} ({crow.note})" if np.isfinite(crow.estimate)
                     else f"; equal FLOPs {crow.note}")
        lines.append(f"{text}; n = {row.n:.0f} vs {row.n_reference:.0f}; not tested (exploratory), simultaneous "
                     f"Bonferroni intervals over the {row.family_rows} comparisons shown.")
    return lines


def inference_lines(result: Analysis, manifest: dict[str, Any]) -> list[str]:
    budget = (manifest.get("budget") or {}).get("text", "equal steps")
    if result.exploratory:
        mode = (f"**Exploratory study**: fewer than {inference.MIN_SEEDS} usable runs per arm, so no comparison is "
                "tested and there are no better/worse verdicts; the tables give estimates with simultaneous "
                "intervals (Bonferroni over every comparison shown). Run at least "
                f"{inference.MIN_SEEDS} seeds per arm for verdicts.")
    else:
        mode = (f"Verdicts: at equal steps from the pooled-variance model (Dunnett and Welch p beside it), at "
                f"equal FLOPs from Welch's t; one Holm correction over a family of {result.family_size} "
                "comparisons (every verdict in this report), with simultaneous intervals that agree with it.")
    return [mode, "", f"- primary metric: `{result.primary}`; verdict metrics: "
            f"{', '.join(f'`{m}`' for m in result.verdict_metrics)}",
            f"- budget: {budget}", f"- {inference.INTERPOLATION}"]
