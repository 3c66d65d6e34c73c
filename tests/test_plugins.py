"""A researcher's own hacks: plugins (-p, $GANBENCH_PLUGINS, entry points) loaded by the driver and by every
worker, named when they fail to import or exit; knob-only hacks declared in the suite (`define:`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import OWN_SUITE

PLUGIN = '''
import os
from ganbench import Hack, register_hack
register_hack(Hack("ttur_sagan_plugin", "D 4e-4, G 1e-4", "Zhang et al. 2019 (SAGAN), section 5",
                   {"lr_d": 4e-4, "lr_g": 1e-4}))
if os.environ.get("PLUGIN_MARKER"):  # which processes imported this plugin
    with open(os.environ["PLUGIN_MARKER"], "a") as f:
        f.write(f"{os.getpid()}\\n")
'''


def ganbench(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, timeout=600)


@pytest.fixture()
def project(tmp_path):
    (tmp_path / "myhacks.py").write_text(PLUGIN)
    (tmp_path / "own.yaml").write_text(textwrap.dedent(OWN_SUITE))
    return tmp_path


@pytest.mark.integration
def test_a_plugin_hack_trains_in_the_workers_and_every_suite_command_sees_it(project):
    marker = project / "imported.txt"
    env = {"PLUGIN_MARKER": str(marker)}
    unknown = ganbench("plan", "own.yaml", "--no-estimate", cwd=project, env=env)
    assert unknown.returncode == 2 and "unknown hack 'ttur_sagan_plugin'" in unknown.stderr
    run = ganbench("-p", "myhacks", "run", "own.yaml", "--device", "cpu", "--workers", "1", cwd=project, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    pids = set(marker.read_text().split())
    assert len(pids) >= 2  # the driver and its worker process both imported it
    # suite.json records the plugin; a command without it says which -p loads it (it never imports it itself).
    assert json.loads((project / "results" / "own" / "suite.json").read_text())["plugins"] == ["myhacks"]
    forgot = ganbench("report", "own.yaml", "--out", "rep", cwd=project, env=env)
    assert forgot.returncode == 2 and "load them again with -p myhacks" in forgot.stderr, forgot.stderr
    for command in (["status", "own.yaml"], ["plan", "own.yaml", "--no-estimate"], ["report", "own.yaml", "--out", "rep"]):
        result = ganbench(*command, cwd=project, env={**env, "GANBENCH_PLUGINS": str(project / "myhacks.py")})
        assert result.returncode == 0, (command, result.stderr)
    configs = [json.loads(p.read_text())["config"] for p in (project / "results" / "own" / "runs").glob("*/config.json")]
    assert sorted((c.get("lr_d"), c.get("lr_g")) for c in configs) == [(0.0002, 0.0002)] * 2 + [(0.0004, 0.0001)] * 2
    readme = (project / "rep" / "README.md").read_text()
    assert "reference arm `base`" in readme and "`sagan` against `base`" in readme, readme[:2000]
    assert "No arm could be compared" not in readme


@pytest.mark.integration
def test_a_plugin_file_whose_path_holds_a_comma_trains_in_the_workers(tmp_path):
    # L01 (issue 36): $GANBENCH_PLUGINS was joined and split on commas: every run failed as "worker
    # process died (exit code 1)". The list ganbench hands its children is JSON now.
    folder = tmp_path / "my,plugins"
    folder.mkdir()
    (folder / "myhacks.py").write_text(PLUGIN)
    (tmp_path / "own.yaml").write_text(textwrap.dedent(OWN_SUITE).replace("seeds: 2", "seeds: 1"))
    marker = tmp_path / "imported.txt"
    run = ganbench("-p", str(folder / "myhacks.py"), "run", "own.yaml", "--device", "cpu", "--workers", "1",
                   cwd=tmp_path, env={"PLUGIN_MARKER": str(marker)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(set(marker.read_text().split())) >= 2  # the driver and its worker both imported it


def test_a_plugin_that_exits_while_imported_is_named(tmp_path):
    # L02b (issue 36): a plugin calling sys.exit(3) made `ganbench hacks` exit 3 with no message.
    (tmp_path / "quits.py").write_text("import sys\nsys.exit(3)\n")
    result = ganbench("-p", "quits.py", "hacks", cwd=tmp_path)
    assert result.returncode == 2 and "plugin 'quits.py' (from --plugin) called sys.exit(3)" in result.stderr


def test_plugins_from_an_installed_package_load_through_the_entry_point_group(tmp_path):
    site = tmp_path / "site"
    (site / "myplugin-1.0.dist-info").mkdir(parents=True)
    (site / "myplugin-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
    (site / "myplugin-1.0.dist-info" / "entry_points.txt").write_text("[ganbench.plugins]\nmine = myplugin_hacks\n")
    (site / "myplugin_hacks.py").write_text(PLUGIN)
    result = ganbench("hacks", "ttur_sagan_plugin", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert result.returncode == 0 and "lr_d=0.0004" in result.stdout, result.stderr


def test_a_plugin_that_cannot_be_imported_is_named_with_what_was_expected(tmp_path):
    result = ganbench("-p", "no_such_plugin", "hacks", cwd=tmp_path)
    assert result.returncode == 2 and "plugin 'no_such_plugin' (from --plugin)" in result.stderr
    (tmp_path / "broken.py").write_text("raise RuntimeError('oops')\n")
    result = ganbench("hacks", cwd=tmp_path, env={"GANBENCH_PLUGINS": "broken.py"})
    assert result.returncode == 2 and "broken.py" in result.stderr and "RuntimeError: oops" in result.stderr


def test_a_knob_only_hack_declared_in_the_suite_is_checked_like_a_registered_one(tmp_path):
    from ganbench.hacks import HACKS
    from ganbench.study.suite import SuiteError, load_suite

    def suite(define: str, arms: str = "{base: {}, mine: {hacks: [suite_ttur]}}") -> Path:
        path = tmp_path / "d.yaml"
        path.write_text(f"name: d\ndataset: fake\npreset: dcgan\ndefine: {define}\narms: {arms}\nreference: base\n"
                        "seeds: 1\nsteps: 2\nevaluation: {metrics: none}\n")
        return path

    try:
        ok = load_suite(suite('{suite_ttur: {summary: "D 4e-4, G 1e-4", source: "SAGAN", sets: {lr_d: 4.0e-4, '
                              'lr_g: 1.0e-4}}}'), tmp_path / "r")
        assert {r.config.lr_d for r in ok.runs} == {2e-4, 4e-4} and ok.designs[0].reference_arm == "base"
        load_suite(suite('{suite_ttur: {summary: "same knobs", source: "again", sets: {lr_d: 4.0e-4, lr_g: 1.0e-4}}}'),
                   tmp_path / "r")  # the same knobs again: fine
        cases = {'{suite_ttur: {summary: "x", source: "y", sets: {lr_d: 1.0e-3}}}': "already registered",
                 '{other: {summary: "x", source: "y", sets: {lr_dd: 1.0e-3}}}': "did you mean 'lr_d'",
                 '{other: {summary: "x", source: "", sets: {lr_d: 1.0e-3}}}': "needs a non-empty source",
                 '{other: {summary: "x", source: "y", sets: {lr_d: 1.0e-3}, seeds: 3}}': "define.other.seeds"}
        for define, message in cases.items():
            with pytest.raises(SuiteError, match=message):
                load_suite(suite(define, "{base: {}}"), tmp_path / "r")
    finally:
        for name in ("suite_ttur", "other"):
            if name in HACKS:
                HACKS.unregister(name)
