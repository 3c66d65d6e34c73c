"""`benchmarks/gpu_window.py --dry-run`: the one-command GPU measurement runs end to end on the CPU at
toy sizes (the selftest's parts, a `ganbench run` sweep, the projection of hacks.yaml from its real
jobs), so the script a lent GPU gets is known to work before the GPU is there."""

from __future__ import annotations

import pytest
import json
import os
import subprocess
import sys
from pathlib import Path

pytestmark = pytest.mark.integration  # real worker processes / long runs: `pytest -m integration`

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_the_gpu_kit_fits_a_device_and_its_command_runs_the_window_from_a_copy(tmp_path):
    """`benchmarks/gpu_kit.sh DIR` builds the folder a GPU machine without internet needs (≤ 64 MiB); its
    device command, run from an empty folder (so on the kit's own copy of the project), installs the wheels
    offline and runs `gpu_window.py`, here with --dry-run: the selftest's parts, a `ganbench run` sweep and
    the projection of hacks.yaml from its real jobs."""
    kit, out, elsewhere = tmp_path / "kit", tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    built = subprocess.run(["bash", str(BENCHMARKS / "gpu_kit.sh"), str(kit)], capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stderr
    assert sum(f.stat().st_size for f in kit.rglob("*") if f.is_file()) <= 64 * 2**20
    assert {p.name.split("-")[0] for p in (kit / "wheels").glob("*.whl")} == {"torch_fidelity", "tqdm"}
    assert "bash" in built.stdout and "run.sh" in built.stdout  # it prints the device command
    env = {**os.environ, "OUT": str(out), "WINDOW_ARGS": "--dry-run"}
    env.pop("PYTHONPATH", None)
    ran = subprocess.run(["bash", str(kit / "run.sh")], cwd=elsewhere, env=env, capture_output=True, text=True,
                         timeout=600)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert (kit / "src" / "ganbench" / "__init__.py").exists() and not (kit / "src" / "results").exists()
    result = json.loads((out / "window" / "gpu_window.json").read_text())
    parts = result["selftest"]["parts"]
    assert list(parts) == ["env", "smoke", "structures", "engine", "eval"]
    assert all(p["status"] == "passed" for p in parts.values()), {k: p["failed_checks"] for k, p in parts.items()}
    assert parts["env"]["checks"]["Fashion-MNIST found"]["value"].startswith(str(kit))  # the kit's own files
    assert result["sweep"]["completed"] == result["sweep"]["runs"] and result["sweep"]["exit_code"] == 0
    projection = result["projection"]
    # hacks.yaml as `ganbench run` would group it on one GPU: 4 workers, groups of up to 32, no eager slice
    assert projection["runs"] == 1472 and projection["workers"] == 4 and projection["max_fused"] == 32
    assert sum(int(k) * n for k, n in projection["jobs"].items()) == 1472
    assert projection["train_h"] > 0 and projection["eval_h"] > 0 and "not a figure" in projection["note"]
    report = (out / "window" / "gpu_window.md").read_text()
    assert "## projection" in report and "| smoke | passed |" in report


def test_the_window_caps_fit_one_device_call(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    sys.modules.pop("gpu_window", None)
    import gpu_window

    assert sum(gpu_window.CAPS.values()) <= 480  # leaves a 600-s device call room for start-up and copies


def test_the_projection_interpolates_step_rates_between_measured_group_sizes(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    sys.modules.pop("gpu_window", None)
    import gpu_window

    rates = {16: 1000.0, 64: 2000.0}
    assert gpu_window._rate_at(16, rates) == 1000.0
    assert gpu_window._rate_at(32, rates) == 1500.0  # halfway in log K
    assert gpu_window._rate_at(8, rates) == 1000.0 and gpu_window._rate_at(128, rates) == 2000.0
