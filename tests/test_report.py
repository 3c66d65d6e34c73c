"""`ganbench report` on a real (tiny, fake-data) sweep with one diverging arm."""

import shutil
import subprocess
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.analysis.report.tables import P_FAMILY
from ganbench.analysis.results import load_results

SUITE = """
    name: rep
    dataset: fake
    preset: dcgan
    design: {type: arms, reference: plain}
    arms:
      plain: {}
      smooth: {hacks: [label_smoothing]}
      exploding: {set: {lr_d: 1.0e+30, lr_g: 1.0e+30}}
    seeds: 3
    steps: 6
    base: {batch_size: 16, log_every: 2, sample_every: 3, checkpoint_every: 3, threads: 1}
    evaluation: {every: 3, samples: 64, reference_samples: 0, metrics: "fid_fmnist,modes_fmnist"}
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    suite = tmp / "rep.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(suite), "--workers", "2", "--device", "cpu",
                                 "--results-root", str(tmp / "results")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report", str(suite), "--results-root", str(tmp / "results"),
                                 "--out", str(tmp / "report")])
    assert result.exit_code == 0, result.output
    return tmp


@pytest.mark.integration
def test_tidy_results_keep_every_run(report):
    frame = load_results(report / "results" / "rep")
    assert set(frame["arm"]) == {"plain", "smooth", "exploding"}
    assert (frame.loc[frame["arm"] == "exploding", "status"] == "diverged").all()
    assert frame["hack_label_smoothing"].any() and "knob_lr_d" in frame and "weights_sha256" in frame
    on_disk = pd.read_parquet(report / "report" / "results.parquet")  # beside the report, not in the results
    assert len(on_disk) == len(frame)
    assert (report / "report" / "results.csv").exists() and not (report / "results" / "rep" / "results.csv").exists()


def test_report_files_and_diverged_arm(report):
    out = report / "report"
    readme = (out / "README.md").read_text()
    for figure in ("main_forest", "main_fid_fmnist_curves", "main_losses", "main_samples"):
        assert (out / "figures" / f"{figure}.png").stat().st_size > 5000
        assert (out / "figures" / f"{figure}.pdf").exists()
        assert f"](figures/{figure}.png)" in readme
    assert (out / "tables" / "main.md").exists()  # every column in Markdown; LaTeX one metric a table
    assert all((out / "tables" / f"main_{name}.tex").exists() for name in ("fid_fmnist", "modes_covered_fmnist",
                                                                            "failures"))
    summary = pd.read_csv(out / "summary.csv")
    exploding = summary[(summary["arm"] == "exploding") & (summary["metric"] == "fid_fmnist")]
    assert set(exploding["aggregate"]) == {"final", "best", "last_k"} and (exploding["diverged"] == 1.0).all()
    assert "exploding: 100% of its 3 runs diverged" in readme
    assert "| exploding | — | — |" in readme and "| 100% |" in readme
    assert "Student-t" in readme and "Welch" in readme and "weights sha256" in readme


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no TeX engine (apt-get install texlive-latex-recommended)")
def test_a_damaged_log_line_is_reported_and_drops_no_run(report, tmp_path):
    results = tmp_path / "rep"
    shutil.copytree(report / "results" / "rep", results)
    run_dir = next(p for p in sorted((results / "runs").iterdir())
                   if (p / "metrics.jsonl").exists() and "fid_fmnist" in (p / "metrics.jsonl").read_text())
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    lines[0] = lines[0][: len(lines[0]) // 2]  # the step-3 row cut in half, mid-file
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["report", str(results), "--out", str(tmp_path / "out")], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "metrics.jsonl:1: not a JSON row" in result.output.replace("\n", "")
    assert "## Data problems" in (tmp_path / "out" / "README.md").read_text()
    before = pd.read_csv(report / "report" / "summary.csv")
    after = pd.read_csv(tmp_path / "out" / "summary.csv")
    final = ["arm", "metric", "aggregate", "n"]
    assert after[final].equals(before[final])  # every run still counts in its arm


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no TeX engine (apt-get install texlive-latex-recommended)")
def test_every_tex_table_compiles_and_fits_the_page(report, tmp_path):
    """Every table of this report and of the committed quick report, in one article: no error, none too wide."""
    repo = Path(__file__).resolve().parent.parent
    tables = sorted((report / "report" / "tables").glob("*.tex")) + sorted((repo / "reports" / "quick" / "tables")
                                                                          .glob("*.tex"))
    body = "\n\\clearpage\n".join(t.read_text() for t in tables)
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage{graphicx}\\begin{document}\n" + body
                   + "\\end{document}\n")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "Overfull \\hbox" not in (tmp_path / "doc.log").read_text(errors="replace")


def test_compare_runs_and_arms(report):
    from ganbench.study.suite import load_suite

    suite = load_suite(report / "rep.yaml", report / "results")
    dirs = {r.arm: suite.run_dirs()[r.run_id] for r in suite.runs if r.seed == 0}
    runner = CliRunner()
    result = runner.invoke(app, ["compare", str(dirs["smooth"]), str(dirs["plain"])], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "knob label_smoothing" in result.output and "label_smoothing" in result.output
    result = runner.invoke(app, ["compare", "smooth", "plain", "--suite", str(report / "rep.yaml"),
                                 "--results-root", str(report / "results")], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "smooth" in result.output and "verdict" in result.output
    bad = runner.invoke(app, ["compare", "smoth", "plain", "--suite", str(report / "rep.yaml"),
                              "--results-root", str(report / "results")], env={"COLUMNS": "250"})
    assert bad.exit_code != 0 and "no arm 'smoth'" in bad.output


def _tables_are_well_formed(markdown: str) -> None:
    """Every Markdown table row has as many cells as its header (what a renderer needs)."""
    blocks, current = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    assert blocks
    for block in blocks:
        widths = {line.count("|") for line in block}
        assert len(widths) == 1, block[:3]
        assert set(block[1].replace("|", "")) <= {"-"}


def test_markdown_renders(report):
    _tables_are_well_formed((report / "report" / "README.md").read_text())


@pytest.mark.integration
def test_factorial_report_has_effects_and_interactions(tmp_path):
    suite = tmp_path / "fac.yaml"
    suite.write_text(textwrap.dedent("""
        name: fac
        dataset: fake
        preset: dcgan
        hacks: [label_smoothing, gaussian_latent]
        design: full_factorial
        seeds: 2
        steps: 4
        base: {batch_size: 16, log_every: 2, sample_every: 4, checkpoint_every: 4, threads: 1}
        evaluation: {every: 4, samples: 64, reference_samples: 0, metrics: "fid_fmnist"}
    """))
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(suite), "--workers", "2", "--device", "cpu",
                               "--results-root", str(tmp_path / "results")]).exit_code == 0
    result = runner.invoke(app, ["report", str(suite), "--results-root", str(tmp_path / "results"),
                                 "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "main effects and two-way interactions" in readme and "gaussian_latent×label_smoothing" in readme
    assert (tmp_path / "report" / "figures" / "main_interactions.png").exists()
    assert (tmp_path / "report" / "figures" / "main_main_effects.png").exists()
    _tables_are_well_formed(readme)


def test_from_five_seeds_the_family_gives_verdicts():
    """analyse() on a synthetic 6-seed study: pooled-model verdicts, one family over metrics and
    equal compute, and findings that name basis, n, interval and family size."""
    import numpy as np

    from ganbench.analysis.report import analysis as rep, sections, tables

    rng = np.random.default_rng(0)
    rows = []
    for arm, shift, flops in (("ref", 0.0, 1e9), ("good", -6.0, 1e9), ("costly", -6.0, 4e9)):
        for seed in range(6):
            for step in (200, 400, 600, 800):
                noise = rng.normal(0, 0.3)
                for metric, value in (("fid_fmnist", 40 - step / 40 + shift + noise), ("kid_fmnist", 0.2 + shift / 100)):
                    rows.append({"part": "", "arm": arm, "seed": seed, "run_id": f"{arm}{seed}", "status": "completed",
                                 "step": step, "metric": metric, "value": value + rng.normal(0, 0.005),
                                 "higher_is_better": False, "knob_steps": 800, "flops_per_step": flops,
                                 "params_g": 1000, "params_d": 1000, "draw_sd": 0.1})
    frame = pd.DataFrame(rows)
    manifest = {"designs": [{"part": "", "kind": "arms", "reference_arm": "ref", "resolution": None,
                             "arms": [{"name": a, "factors": {}} for a in ("ref", "good", "costly")]}],
                "analysis": {"primary": "fid_fmnist", "verdicts": ["fid_fmnist", "kid_fmnist"]}}
    result = rep.analyse(frame, pd.DataFrame(), manifest, ["fid_fmnist", "kid_fmnist"])
    # arms × metrics + equal FLOPs for `costly` only: `good` has the reference's FLOPs per step, so its
    # equal-FLOPs comparison would be the equal-steps one again (not a second member of the family)
    assert not result.exploratory and result.family_size == 2 * 2 + 1
    steps = result.parts[0].comparisons["fid_fmnist"].set_index("arm")
    assert steps.loc["good", "verdict"] == "better" and steps.loc["good", "test"] == "Welch's t (log scale)"
    assert list(result.parts[0].equal_compute["arm"]) == ["costly"]
    flops = result.parts[0].equal_compute.set_index(["basis", "arm"]).loc["equal FLOPs"]
    # `costly` spends 4× the FLOPs: read at step 200 of its curve it is worse than `ref` at 800.
    assert flops.loc["costly", "verdict"] == "worse" and flops.loc["costly", "step_read"] == 200
    findings = "\n".join(sections.findings(result))
    assert "**costly** is better than `ref` at equal steps but *worse* at equal compute" in findings
    assert "simultaneous CI over 5" in findings and "n = 6 vs 6" in findings
    table = tables.effects_table(result.parts[0], ["fid_fmnist", "kid_fmnist"])
    assert len(table) == 4 and {"p (exact permutation, same scale)", P_FAMILY} <= set(table.columns)


def test_plan_and_report_give_a_suite_without_analysis_the_same_verdict_family(tmp_path):
    """One rule picks the verdict metrics (`analysis.verdict_metrics.choose_metrics`): a suite with no
    `analysis:` section and four metric kinds gets the same verdict metrics and the same family size from
    `ganbench plan` (from its configs, before any run) as from its report (from its rows)."""
    import numpy as np

    from ganbench.analysis.report import analysis as rep
    from ganbench.execution.plan import family_size, suite_power, verdict_metrics
    from ganbench.execution.sweep import write_manifest
    from ganbench.metrics.registry import metric_values
    from ganbench.study.suite import load_suite
    from ganbench.training.compute import step_compute

    path = tmp_path / "noanalysis.yaml"
    path.write_text(textwrap.dedent("""
        name: noanalysis
        dataset: fake
        preset: dcgan
        hacks: [label_smoothing, kernel_4]
        design: leave_one_out
        seeds: 5
        steps: 20
        evaluation: {every: 1, samples: 64, reference_samples: 0, metrics: "fid_fmnist,kid_fmnist,prc_fmnist,modes_fmnist"}
    """))
    suite = load_suite(path, tmp_path / "results")
    planned = verdict_metrics(suite)
    assert len(planned) == 4 and planned[0] == "fid_fmnist"  # the primary and the next three scored metrics
    assert [row["metric"] for row in suite_power(suite)] == planned

    write_manifest(suite)
    manifest = suite.dir.read_manifest().data
    rng = np.random.default_rng(0)
    values = {name: direction for metric in ("fid_fmnist", "kid_fmnist", "prc_fmnist", "modes_fmnist")
              for name, direction in metric_values(metric).items()}
    # -kernel_4's FLOPs per step are 1.54× the others': its equal-FLOPs reading falls at step 12.96 of 20,
    # 0.04 of an evaluation interval from one (a reading that falls far from every evaluation is refused:
    # the plan warns of it apart, and counts it in the family as the most the report can hold)
    flops = {run.arm: step_compute(run.config)["flops_per_step"] for run in suite.runs}
    rows = [{"part": "", "arm": run.arm, "seed": run.seed, "run_id": run.run_id, "status": "completed", "step": step,
             "metric": name, "value": float(rng.uniform(0.1, 1.0)), "higher_is_better": direction, "knob_steps": 20,
             "flops_per_step": flops[run.arm], "params_g": 1000, "params_d": 1000, "draw_sd": 0.01}
            for run in suite.runs for step in range(1, 21) for name, direction in values.items()]
    frame = pd.DataFrame(rows)
    reported = rep.analyse(frame, pd.DataFrame(), manifest, rep.reported_metrics(frame, None))
    assert reported.verdict_metrics == planned
    assert reported.family_size == family_size(suite, planned)
