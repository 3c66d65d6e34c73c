"""Executors are registry entries (`ganbench.execution.executors`): `ganbench run --executor NAME` builds
whichever is registered, a plugin's included, and an unknown name is refused before anything is read."""

from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.errors import ConfigError
from ganbench.execution.executors import EXECUTORS, ExecutorOptions


def _suite(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ndataset: fake\npreset: dcgan\ndesign: {type: arms}\narms: {a: {}, b: {set: {lr_d: 0.001}}}\n"
                     "steps: 2\nevaluation: {metrics: none}\n")
    return suite


def test_a_plugins_executor_receives_the_sweeps_runs(tmp_path):
    plugin = tmp_path / "echo_executor.py"
    plugin.write_text(textwrap.dedent("""
        from ganbench.execution.executors import ExecutorSpec, register_executor

        class Echo:
            def execute(self, states, on_update=None):
                print("echo executor:", sorted(s.run.arm for s in states))

        register_executor(ExecutorSpec("echo", "prints the runs it is given", lambda options, results_dir: Echo()))
    """))
    try:
        result = CliRunner().invoke(app, ["-p", str(plugin), "run", str(_suite(tmp_path)), "--executor", "echo",
                                          "--device", "cpu", "--results-root", str(tmp_path / "results")])
    finally:
        EXECUTORS.unregister("echo") if "echo" in EXECUTORS else None
    assert "echo executor: ['a', 'b']" in result.output, result.output
    assert "pending: 2" in result.output  # it trained nothing, and the sweep says so


def test_an_unknown_executor_is_refused_with_the_closest_name_before_the_suite_is_read(tmp_path):
    result = CliRunner().invoke(app, ["run", str(tmp_path / "missing.yaml"), "--executor", "rey"])
    assert result.exit_code == 2 and "unknown executor 'rey' (did you mean 'ray'?)" in result.output
    assert "missing.yaml" not in result.output


@pytest.mark.parametrize("cpus, gpus", [(1.5, 0.0), (1.0, 0.5), (0.0, 0.0)])
def test_slurm_refuses_fractions_of_a_unit(cpus, gpus):
    with pytest.raises(ConfigError, match="whole numbers"):
        ExecutorOptions(kind="slurm", cpus_per_task=cpus, gpus_per_task=gpus).check()
    ExecutorOptions(kind="ray", cpus_per_task=cpus or 1.0, gpus_per_task=gpus).check()  # Ray takes fractions


def test_every_registered_executor_says_where_runs_train():
    for name in EXECUTORS:
        assert ExecutorOptions(kind=name).where(["cpu"])
