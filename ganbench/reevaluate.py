"""Evaluate a finished run's generator again, outside the training loop (`ganbench eval`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ganbench import devices
from ganbench.config import TrainConfig
from ganbench.checks import check_resolved
from ganbench.metrics.backend import FidelityGenerator
from ganbench.metrics.fidelity import evaluate
from ganbench.metrics.reference import Reference
from ganbench.metrics.registry import parse_metrics
from ganbench.models import Generator
from ganbench.rundir import CHECKPOINT, CONFIG, REEVALUATION, RunDir


def load_run_generator(run_dir: Path, device: torch.device) -> tuple[TrainConfig, Generator, int]:
    """(config, G with its last checkpointed weights, that checkpoint's step). With g_ema on, G is
    the weight average (what the run's own samples and metrics used)."""
    run = RunDir(run_dir)
    for name in (CONFIG, CHECKPOINT):
        if not run.file(name).exists():
            raise FileNotFoundError(f"{run.file(name)} missing: is {run_dir} a ganbench run directory?")
    cfg = TrainConfig().replace(**run.read_config()["config"])
    state, why = run.load_checkpoint(set_aside=False)  # evaluating never moves a run's files
    if state is None:
        raise RuntimeError(f"{why}; not evaluated (re-run the suite to train it again)")
    net_g = Generator(cfg).to(device)
    net_g.load_state_dict(state.get("net_g_ema", state["net_g"]))
    return cfg, net_g, int(state["step"])


def evaluate_run(run_dir: str | Path, metrics: str | None = None, samples: int | None = None,
                 reference_samples: int | None = None, device: str = "auto",
                 data_root: str | Path | None = None) -> list[dict[str, Any]]:
    """Evaluate the run's last checkpointed G; rows are appended to its metrics.jsonl and returned."""
    run_dir = Path(run_dir)
    dev = devices.resolve(device)
    with RunDir(run_dir).locked("evaluating"):  # not while another process trains it
        return _evaluate_locked(run_dir, dev, metrics, samples, reference_samples, data_root)


def _evaluate_locked(run_dir: Path, dev: torch.device, metrics: str | None, samples: int | None,
                     reference_samples: int | None, data_root: str | Path | None) -> list[dict[str, Any]]:
    cfg, net_g, step = load_run_generator(run_dir, dev)
    if reference_samples is not None:
        cfg = cfg.replace(eval_reference_samples=reference_samples, eval_protocol="")  # rows say no protocol
    names = parse_metrics(metrics if metrics is not None else cfg.metrics, cfg.dataset)
    if not names:
        raise ValueError("no metric to compute: pass --metrics")
    if samples is not None:  # checked as a run's own count would be (ConfigError names the knob and the minimum)
        check_resolved(cfg.replace(metrics=",".join(names), eval_samples=samples, fid_infinity=False, eval_protocol=""))
    rows = evaluate(FidelityGenerator(net_g, cfg), names, Reference.for_config(cfg, data_root),
                    samples=samples or cfg.eval_samples, seed=cfg.seed, device=dev,
                    inception_weights=cfg.inception_weights or None)
    rows = [{"step": step, "source": REEVALUATION, **row} for row in rows]
    RunDir(run_dir).append_metrics(rows)
    return rows
