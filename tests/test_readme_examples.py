"""The README's "Your own hack" example, run as a newcomer would: its files written from the README's
blocks, its commands run from the README's bash block (nothing here is copied by hand)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"### {title}\n")
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
