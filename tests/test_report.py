"""`ganbench report` on a real (tiny, fake-data) sweep with one diverging arm."""

import shutil
import subprocess
import textwrap

import pandas as pd
import pytest
from typer.testing import CliRunner

from ganbench.cli import app
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


def test_tidy_results_keep_every_run(report):
    frame = load_results(report / "results" / "rep")
    assert set(frame["arm"]) == {"plain", "smooth", "exploding"}
    assert (frame.loc[frame["arm"] == "exploding", "status"] == "diverged").all()
    assert frame["hack_label_smoothing"].any() and "knob_lr_d" in frame and "weights_sha256" in frame
    on_disk = pd.read_parquet(report / "results" / "rep" / "results.parquet")
    assert len(on_disk) == len(frame)
    assert (report / "results" / "rep" / "results.csv").exists()


def test_report_files_and_diverged_arm(report):
    out = report / "report"
    readme = (out / "README.md").read_text()
    for figure in ("main_forest", "main_fid_fmnist_curves", "main_losses", "main_samples"):
        assert (out / "figures" / f"{figure}.png").stat().st_size > 5000
        assert (out / "figures" / f"{figure}.pdf").exists()
        assert f"](figures/{figure}.png)" in readme
    assert (out / "tables" / "main.md").exists() and (out / "tables" / "main.tex").exists()
    summary = pd.read_csv(out / "summary.csv")
    exploding = summary[(summary["arm"] == "exploding") & (summary["metric"] == "fid_fmnist")]
    assert set(exploding["aggregate"]) == {"final", "best", "last_k"} and (exploding["diverged"] == 1.0).all()
    assert "exploding: 100% of its 3 runs diverged" in readme
    assert "| exploding | — | — |" in readme and "| 100% |" in readme
    assert "Student-t" in readme and "Welch" in readme and "weights sha256" in readme


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


def test_tex_table_compiles(report, tmp_path):
    table = (report / "report" / "tables" / "main.tex").read_text()
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n" + table + "\\end{document}\n")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]


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
