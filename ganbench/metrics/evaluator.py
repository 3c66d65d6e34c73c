"""The evaluator the training loop calls: metric rows at an evaluation step, with the run's provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from ganbench.config import TrainConfig
from ganbench.metrics.backend import FidelityGenerator
from ganbench.metrics.fidelity import checked_weights, draw_seed, evaluate
from ganbench.metrics.noise_floor import uniform_noise_fid
from ganbench.metrics.protocols import get_protocol
from ganbench.metrics.reference import Reference, load_reference
from ganbench.metrics.registry import KINDS, METRICS, parse_metrics, value_name


SampleProgress = Callable[[int, int], None]  # (images generated so far, images this evaluation generates)
Evaluator = Callable[..., list[dict[str, Any]]]  # (net_g, step, on_samples: SampleProgress | None) → rows


def make_evaluator(cfg: TrainConfig, device: torch.device, data_root: str | Path | None = None) -> Evaluator | None:
    """A function (net_g, step) → metric rows for the training loop, or None when no metric is asked.

    Metric names, weights and the reference set are checked and loaded here, once, so a
    bad request fails before training starts.
    """
    names = parse_metrics(cfg.metrics, cfg.dataset)
    if not names:
        return None
    reference = Reference.for_config(cfg, data_root)
    reference_data = load_reference(reference)
    for extractor in {METRICS[n].extractor for n in names}:
        needs_logits = any(KINDS[METRICS[n].kind].needs_logits for n in names if METRICS[n].extractor == extractor)
        checked_weights(extractor, needs_logits, cfg.inception_weights or None)

    noise_floors: dict[str, float] = {}  # extractor → uniform-noise FID

    def evaluator(net_g: torch.nn.Module, step: int, on_samples: SampleProgress | None = None) -> list[dict[str, Any]]:
        final = step == cfg.steps
        draws = cfg.eval_draws if final else 1
        total, done = cfg.eval_samples * draws, [0]

        def on_batch(n: int) -> None:
            done[0] += n
            if on_samples:
                on_samples(min(done[0], total), total)

        gen = FidelityGenerator(net_g, cfg, on_batch)
        rows = []
        for draw in range(draws):
            drawn = evaluate(gen, names, reference, samples=cfg.eval_samples, seed=draw_seed(cfg.seed, draw),
                             device=device, inception_weights=cfg.inception_weights or None,
                             reference_data=reference_data, fid_infinity=final and cfg.fid_infinity)
            rows += [{"step": step, "draw": draw, "draws": draws, **row} for row in drawn]
        for row in rows:
            if cfg.eval_protocol:  # provenance: which published protocol this number follows
                row["protocol"] = f"{cfg.eval_protocol}: {get_protocol(cfg.eval_protocol).description}"
            if row["metric"] == value_name("fid", row["extractor"]):  # the noise floor beside each FID
                if row["extractor"] not in noise_floors:  # hashing the reference once, not at every evaluation
                    noise_floors[row["extractor"]] = uniform_noise_fid(
                        row["extractor"], reference, reference_data, cfg.eval_samples, device,
                        cfg.inception_weights or None)
                row["uniform_noise_fid"] = noise_floors[row["extractor"]]
        return rows

    return evaluator
