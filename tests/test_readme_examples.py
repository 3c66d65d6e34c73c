"""The README's "Your own hack" example, run as a newcomer would: its files written from the README's
blocks, its commands run from the README's bash block (nothing here is copied by hand)."""

from __future__ import annotations

import pytest
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

pytestmark = pytest.mark.integration  # real worker processes / long runs: `pytest -m integration`

README = Path(__file__).resolve().parents[1] / "README.md"


def section(title: str) -> str:
    """The README's `## title` section, up to the next `## ` heading."""
    text = README.read_text()
    start = text.index(f"\n## {title}\n") + 1
    return text[start:text.index("\n## ", start)]


def blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"```(\w+)\n(.*?)```", text, flags=re.S)


def test_your_own_hack_example_runs_as_written(tmp_path):
    found = blocks(section("Your own hack"))
    for language, body in found:
        if language in ("python", "yaml"):  # the first line names the file: "# myhacks.py"
            name = body.splitlines()[0].lstrip("# ").strip()
            (tmp_path / name).write_text(body)
    commands = [line.split("  #")[0].strip() for language, body in found if language == "bash"
                for line in body.splitlines() if line.strip()]
    assert len(commands) == 3 and all(c.startswith("ganbench ") for c in commands)
    for command in commands:
        args = shlex.split(command)[1:]
        result = subprocess.run([sys.executable, "-m", "ganbench.cli", *args], cwd=tmp_path, capture_output=True,
                                text=True, env={**os.environ, "COLUMNS": "200"}, timeout=900)
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
    report = (tmp_path / "mine-report" / "README.md").read_text()
    assert "reference arm `dcgan`" in report and "`adam_beta2_099` against `dcgan`" in report
    assert "`slow_d` against `dcgan`" in report


# A README command that is not run here says why in the README itself, in brackets in its comment
# (on its line, or on its block's first line): [needs a GPU], [needs a cluster], [long: …], [installs: …].
MARK = re.compile(r"\[(needs|long|installs)\b[^\]]*\]")


def readme_commands() -> tuple[list[str], list[str]]:
    """(commands to run, commands the README marks as not run here), from every bash block outside the
    "Your own hack" section (its own test above runs that)."""
    text = README.read_text()
    own = section("Your own hack")
    run, marked = [], []
    for language, body in blocks(text.replace(own, "")):
        if language != "bash":
            continue
        lines = body.replace("\\\n", " ").splitlines()
        block_marked = bool(lines) and lines[0].startswith("#") and MARK.search(lines[0])
        for line in lines:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            (marked if block_marked or MARK.search(line) else run).append(line.split("  #")[0].strip())
    return run, marked


# README commands another default test runs already on the committed quick study (only the output
# folder differs): not run twice.
RUN_ELSEWHERE = {
    "ganbench report suites/quick.yaml": "test_committed_studies.py::test_read_only_commands_leave_the_checkout_clean…",
    "ganbench tensorboard suites/quick.yaml": "test_committed_studies.py::test_read_only_commands_leave_the_checkout_clean…",
    "ganbench compare --suite suites/quick.yaml -- -label_smoothing all": "test_committed_studies.py (the same test)",
    "ganbench compare results/quick/runs/d5a0d9247cf7 results/quick/runs/92591174d270": "test_committed_studies.py (the same)",
    "ganbench status suites/quick.yaml": "test_committed_studies.py (the same test)",
}


def test_the_commands_run_elsewhere_are_run_there():
    source = (README.parent / "tests" / "test_committed_studies.py").read_text()
    run, _ = readme_commands()
    for command in RUN_ELSEWHERE:
        assert command in run, command  # still in the README as written
        args = shlex.split(command)[1:]
        assert ", ".join(f'"{a}"' for a in args) in source, command


def test_every_readme_command_runs_or_says_why_not(tmp_path, monkeypatch):
    """Every command of the README's bash blocks runs here as written, from a folder holding the suites and
    the committed quick study, or the README marks it ([needs a GPU], [needs a cluster], [long: …], …)."""
    import shutil
    from typer.testing import CliRunner

    from ganbench.cli import app

    run, marked = readme_commands()
    assert len(run) >= 20 and all(c.startswith("ganbench ") for c in run), run  # all others are marked
    assert any("gpu_window" in c for c in marked) and any("--executor ray" in c for c in marked)
    repo = README.parent
    shutil.copytree(repo / "suites", tmp_path / "suites")
    shutil.copytree(repo / "results" / "quick", tmp_path / "results" / "quick",
                    ignore=shutil.ignore_patterns("checkpoint.pt"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    for command in (c for c in run if c not in RUN_ELSEWHERE):
        result = CliRunner().invoke(app, shlex.split(command)[1:], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (command, result.output[-3000:], repr(result.exception))
