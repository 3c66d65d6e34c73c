"""Evaluate a finished run's generator again, outside the training loop (`ganbench eval`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ganbench import runio
from ganbench.config import TrainConfig
from ganbench.metrics import FidelityGenerator, Reference, evaluate, parse_metrics
from ganbench.models import Generator
from ganbench.train import resolve_device


def load_run_generator(run_dir: Path, device: torch.device) -> tuple[TrainConfig, Generator, int]:
    """(config, G with its last checkpointed weights, that checkpoint's step)."""
    config_path, ckpt_path = run_dir / "config.json", run_dir / "checkpoint.pt"
    for path in (config_path, ckpt_path):
        if not path.exists():
            raise FileNotFoundError(f"{path} missing: is {run_dir} a ganbench run directory?")
    cfg = TrainConfig().replace(**runio.read_json(config_path)["config"])
    state = torch.load(ckpt_path, map_location=device, weights_only=True)
    net_g = Generator(cfg).to(device)
    net_g.load_state_dict(state["net_g"])
    return cfg, net_g, int(state["step"])


def evaluate_run(run_dir: str | Path, metrics: str | None = None, samples: int | None = None,
                 reference_samples: int | None = None, device: str = "auto",
                 data_root: str | Path | None = None) -> list[dict[str, Any]]:
    """Evaluate the run's last checkpointed G; rows are appended to its metrics.jsonl and returned."""
    run_dir = Path(run_dir)
    dev = resolve_device(device)
    cfg, net_g, step = load_run_generator(run_dir, dev)
    if reference_samples is not None:
        cfg = cfg.replace(eval_reference_samples=reference_samples)
    names = parse_metrics(metrics if metrics is not None else cfg.metrics, cfg.dataset)
    if not names:
        raise ValueError("no metric to compute: pass --metrics")
    rows = evaluate(FidelityGenerator(net_g, cfg), names, Reference.for_config(cfg, data_root),
                    samples=samples or cfg.eval_samples, seed=cfg.seed, device=dev,
                    inception_weights=cfg.inception_weights or None)
    rows = [{"step": step, "source": "ganbench eval", **row} for row in rows]
    for row in rows:
        runio.append_jsonl(run_dir / "metrics.jsonl", row)
    return rows
