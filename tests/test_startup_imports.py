"""Commands import only what they use: each case runs in a fresh interpreter and reads `sys.modules`
afterwards (the only honest way to see an import: an earlier test in this process already holds them).

What is kept out, and why: numpy and torch cost several times a bare `import typer`, which is all
`--help` and the registry listings need; `plan --no-estimate` prints a plan from the suite, the
registries and the layer plan alone (torch is asked only where a GPU driver exists); a run with
`metrics: none` evaluates nothing, so torch-fidelity stays unloaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "torch", "pandas", "scipy", "torch_fidelity", "torchvision")


def loaded_after(code: str, tmp_path: Path, watched: tuple[str, ...] = HEAVY) -> list[str]:
    """The `watched` modules a fresh interpreter holds after running `code` (no GPU visible)."""
    probe = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        print("LOADED=" + json.dumps([m for m in {watched!r} if m in sys.modules]))
    """)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("LOADED=")][-1]
    return json.loads(line.removeprefix("LOADED="))


def cli(*words: str) -> str:
    return f"""
        import sys
        sys.argv = ["ganbench", *{list(words)!r}]
        from ganbench.cli import main
        try:
            main()
        except SystemExit as stop:
            assert stop.code in (0, None), stop.code
    """


@pytest.mark.parametrize("words", [("--help",), ("hacks",), ("knobs",), ("suite-keys",), ("hacks", "kernel_4")])
def test_help_and_registry_listings_import_neither_numpy_nor_torch(words, tmp_path):
    assert loaded_after(cli(*words), tmp_path) == []


def test_root_help_imports_no_registry_and_no_rich(tmp_path):
    """`ganbench --help` lists commands through click: the knob and hack registries, the dataset and run-file
    modules and rich (its console, markup and markdown) load only when a command runs."""
    watched = ("ganbench.config", "ganbench.hacks", "ganbench.data.datasets", "ganbench.rundir", "rich.console",
               "rich.markup", "rich.markdown", "markdown_it")
    assert loaded_after(cli("--help"), tmp_path, watched) == []


@pytest.mark.integration
def test_plan_without_estimate_imports_no_torch(tmp_path):
    """The device check asks torch only where a GPU driver exists; checkpoint sizes come from the layer plan."""
    loaded = loaded_after(cli("plan", str(ROOT / "suites" / "quick.yaml"), "--no-estimate",
                              "--results-root", str(tmp_path / "results")), tmp_path)
    assert not {"torch", "torch_fidelity", "torchvision"} & set(loaded)


@pytest.mark.integration
def test_a_run_without_metrics_imports_no_torch_fidelity(tmp_path):
    """torchvision still comes, for the last step's sample grid (`torchvision.utils.save_image`)."""
    loaded = loaded_after(f"""
        from ganbench.config import TrainConfig
        from ganbench.training.loop import train
        cfg = TrainConfig().replace(dataset="fake", device="cpu", batch_size=8, steps=2, log_every=1, sample_every=0,
                                    sample_grid=4, checkpoint_every=0, metrics="none")
        assert train(cfg, {str(tmp_path / "run")!r})["status"] == "completed"
    """, tmp_path)
    assert "torch" in loaded and "torch_fidelity" not in loaded


def test_a_gpu_driver_on_the_machine_means_torch_is_asked(monkeypatch):
    """No driver files (NVIDIA, ROCm, WSL) or CUDA_VISIBLE_DEVICES empty: no GPU, without torch; any driver
    file present: torch decides (the check never answers 'no GPU' where one could be)."""
    import pathlib

    from ganbench import devices

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(pathlib.Path, "exists", lambda self: False)
    monkeypatch.setattr(pathlib.Path, "glob", lambda self, pattern: iter(()))
    assert devices._no_gpu_driver() is (sys.platform.startswith("linux"))
    for driver in ("/proc/driver/nvidia", "/dev/kfd", "/dev/dxg"):
        monkeypatch.setattr(pathlib.Path, "exists", lambda self, d=driver: str(self) == d)
        assert devices._no_gpu_driver() is False
    monkeypatch.setattr(pathlib.Path, "exists", lambda self: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert devices._no_gpu_driver() is True
