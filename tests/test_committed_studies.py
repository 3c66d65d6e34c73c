"""The committed studies (results/quick, results/loo-cpu and their reports): read-only commands leave the
checkout clean, `run` trains nothing on them, and each report regenerates byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import cli, digest


def said(result) -> str:
    """What a command printed, with the terminal's line wrapping undone."""
    return result.output.replace("\n", "")


REPO = Path(__file__).resolve().parent.parent


@pytest.mark.integration
def test_read_only_commands_leave_the_checkout_clean_and_the_quick_study_regenerates_identically(tmp_path):
    # Acceptance of issue 21: `git status` is clean after plan/status/report/compare/tensorboard on the
    # committed results; the quick study's report regenerates byte for byte; `run` trains nothing.
    import subprocess

    if not (REPO / ".git").exists() or not (REPO / "results" / "quick" / "suite.json").exists():
        pytest.skip("needs the repository checkout with its committed results")

    def porcelain() -> str:
        return subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout

    pytest.importorskip("tensorboard")
    before = porcelain()
    commands = [("plan", "suites/quick.yaml", "--device", "cpu", "--no-estimate"),
                ("status", "suites/quick.yaml"),
                ("report", "suites/quick.yaml", "--out", tmp_path / "quick"),
                ("compare", "--suite", "suites/quick.yaml", "--", "-label_smoothing", "all"),
                ("compare", "results/quick/runs/d5a0d9247cf7", "results/quick/runs/92591174d270"),
                ("run", "suites/quick.yaml", "--device", "cpu"),
                ("tensorboard", "suites/quick.yaml", "--logdir", tmp_path / "tb")]
    for args in commands:
        result = cli(*args, cwd=REPO)
        assert result.exit_code == 0, (args, result.output)
        if args[0] == "run":
            assert "42 already finished, 0 to train" in said(result)
    assert porcelain() == before
    assert digest(tmp_path / "quick") == digest(REPO / "reports" / "quick")


@pytest.mark.integration
def test_the_leave_one_out_study_is_committed_trains_nothing_and_regenerates_identically(tmp_path):
    """Acceptance of issue 26: results/loo-cpu and reports/loo-cpu are committed; `run` trains nothing on
    them; the report regenerates byte for byte, has verdicts (5 seeds per arm), states its family and its
    budget's convergence, and each finding names basis, n, interval and test."""
    if not (REPO / ".git").exists():
        pytest.skip("needs the repository checkout with its committed results")
    result = cli("run", "suites/loo-cpu.yaml", "--device", "cpu", cwd=REPO)
    assert result.exit_code == 0 and "60 already finished, 0 to train" in said(result), result.output
    result = cli("report", "suites/loo-cpu.yaml", "--out", tmp_path / "loo-cpu", cwd=REPO)
    assert result.exit_code == 0, result.output
    assert digest(tmp_path / "loo-cpu") == digest(REPO / "reports" / "loo-cpu")
    readme = (REPO / "reports" / "loo-cpu" / "README.md").read_text()
    assert readme.index("## Headline") < readme.index("## Results: steps") < readme.index("## Limitations")
    assert "comparisons, one family" in readme and "Verdicts: the same Bonferroni level" in readme
    assert "Exploratory study" not in readme and "equal FLOPs (trained)" in readme
    assert "onverged" in readme.split("## Findings")[1].split("## Limitations")[0]  # (Not) converged, said
    findings = [line for line in readme.split("## Findings")[1].split("## Limitations")[0].splitlines()
                if "Δ fid_fmnist" in line]
    assert len(findings) == 11  # 9 arms at equal steps + 2 trained at equal FLOPs
    for line in findings:  # two arms failed to learn in some seeds: their quality is on their learned runs
        learned = "n = 2 vs 5" if "-nonsaturating_loss" in line else "n = 0 vs 5" if "-separate_batches" in line \
            else "n = 5 vs 5"
        assert learned in line and "Welch's t" in line and "simultaneous CI over" in line, line
        assert "equal steps" in line or "equal FLOPs (trained)" in line, line
