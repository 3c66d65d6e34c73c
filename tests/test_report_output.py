"""`report --out` and `--update-readme` write only what they own (issue 36: D1, D2, X09a, X12b–d)."""

from __future__ import annotations

import pytest
import json
from pathlib import Path

from conftest import cli, digest

from ganbench.analysis.report.out_dir import MARKER


def said(result) -> str:
    """What a command printed, the terminal's wrapping undone (every run of spaces and newlines one space)."""
    return " ".join(result.output.split())


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "docs").mkdir(parents=True)
    (root / "README.md").write_text("# my project\n")
    (root / "docs" / "notes.md").write_text("mine\n")
    return root


def test_d1_report_out_a_checkout_root_writes_nothing(study, tmp_path):
    """D1: `report --out .` in a checkout once replaced its README.md and added tables/ and figures/."""
    root = _checkout(tmp_path)
    before = digest(root)
    result = cli("report", study / "results" / "flt", "--out", ".", cwd=root)
    assert result.exit_code == 2 and "not a ganbench report" in said(result), result.output
    assert digest(root) == before and sorted(p.name for p in root.iterdir()) == ["README.md", "docs"]


@pytest.mark.integration
def test_d2_report_never_writes_through_a_symlinked_folder(study, tmp_path):
    """D2: a report directory whose tables/ is a symlink to a folder outside: the victim's file was
    overwritten. Now refused, victim bytes unchanged; and a symlink planted at a file's own path in a
    report's folder is replaced, not followed."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "flt_main.md").write_text("victim's own file\n")
    before = digest(victim)
    out = tmp_path / "rep"
    first = cli("report", study / "results" / "flt", "--out", out)
    assert first.exit_code == 0, first.output
    assert json.loads((out / MARKER).read_text())["suite"] == "flt"
    tables = sorted(p.name for p in (out / "tables").iterdir())
    moved = tmp_path / "tables-was"
    (out / "tables").rename(moved)
    (out / "tables").symlink_to(victim, target_is_directory=True)
    result = cli("report", study / "results" / "flt", "--out", out)
    assert result.exit_code == 2 and "tables is a symlink" in said(result), result.output
    assert digest(victim) == before
    (out / "tables").unlink()
    moved.rename(out / "tables")
    for name in tables:  # a link at each table's own path, and one at a figure's
        (out / "tables" / name).unlink()
        (out / "tables" / name).symlink_to(victim / "flt_main.md")
    figure = next((out / "figures").glob("*.png"))
    figure.unlink()
    figure.symlink_to(victim / "flt_main.md")
    again = cli("report", study / "results" / "flt", "--out", out)
    assert again.exit_code == 0, again.output
    assert digest(victim) == before
    assert not any(p.is_symlink() for p in (out / "tables").iterdir()) and not figure.is_symlink()


def test_x09a_report_out_an_existing_file_is_an_error(study, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("mine\n")
    result = cli("report", study / "results" / "flt", "--out", target)
    assert result.exit_code == 2 and "exists and is not a directory" in said(result), result.output
    assert target.read_text() == "mine\n"


@pytest.mark.integration
def test_x12_update_readme_refuses_unclear_markers_and_keeps_a_symlink(study, tmp_path):
    """X12c: the end marker before the start duplicated text; X12b: with two marker pairs the second
    stayed stale; X12d: a symlinked README became a regular file."""
    out = tmp_path / "rep"
    assert cli("report", study / "results" / "flt", "--out", out).exit_code == 0
    start, end = "<!-- ganbench:flt:start -->", "<!-- ganbench:flt:end -->"
    cases = {"reversed": f"a\n{end}\nb\n{start}\nc\n", "twice": f"{start}\nold\n{end}\nx\n{start}\nold\n{end}\n"}
    for name, text in cases.items():
        readme = tmp_path / f"{name}.md"
        readme.write_text(text)
        result = cli("report", study / "results" / "flt", "--out", out, "--update-readme", readme)
        assert result.exit_code == 2 and "nothing was changed" in said(result), (name, result.output)
        assert readme.read_text() == text
    real = tmp_path / "docs" / "README.md"
    real.parent.mkdir()
    real.write_text(f"intro\n{start}\nold\n{end}\noutro\n")
    link = tmp_path / "README.md"
    link.symlink_to(real)
    result = cli("report", study / "results" / "flt", "--out", out, "--update-readme", link)
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and "old" not in real.read_text() and real.read_text().startswith("intro\n")
    assert real.read_text().count(start) == 1 and real.read_text().endswith(f"{end}\noutro\n")
