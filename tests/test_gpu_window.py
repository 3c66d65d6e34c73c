"""`benchmarks/gpu_window.py --dry-run`: the one-command GPU measurement runs end to end on the CPU at
toy sizes, so the script a lent GPU gets is known to work before the GPU is there."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_gpu_window_dry_run_measures_every_part(tmp_path, monkeypatch):
    monkeypatch.chdir(BENCHMARKS.parent)  # reads suites/hacks.yaml
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    sys.modules.pop("gpu_window", None)
    import gpu_window

    assert gpu_window.main(["--dry-run", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "gpu_window.json").read_text())
    parts = result["parts"]
    assert set(parts) == {"engine", "sweep", "slice", "evaluator"} and not any(isinstance(v, str) for v in parts.values())
    assert all(isinstance(r["stacked"], float) and isinstance(r["vmap"], float) and r["dense_ceiling"] > 0
               for r in parts["engine"])
    assert parts["slice"]["completed"] == parts["slice"]["runs"] == 3
    assert parts["slice"]["projection"].endswith("a dry run: not a figure")
    # ganbench's evaluation path and torch_fidelity.calculate_metrics on the same generator
    assert max(parts["evaluator"]["relative_difference_from_torch_fidelity"].values()) < 1e-4
    assert "| K |" in (tmp_path / "gpu_window.md").read_text()
