"""The evaluator the training loop calls: metric rows at an evaluation step, with the run's provenance.

A fused group's runs reach their evaluation steps together; `evaluate_together` evaluates all
of them at once when their evaluation settings agree (`RunEvaluator.together_key`): one pass of
the feature extractor over every run's images, then each run's metrics as alone
(`fidelity.evaluate_many`), so a group of K costs one large extraction instead of K small ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Hashable, Sequence

import torch

from ganbench.config import TrainConfig
from ganbench.metrics.backend import FidelityGenerator
from ganbench.metrics.fidelity import checked_weights, draw_seed, evaluate_many
from ganbench.metrics.noise_floor import uniform_noise_fid
from ganbench.metrics.protocols import get_protocol
from ganbench.metrics.reference import Reference, load_reference
from ganbench.metrics.registry import KINDS, METRICS, parse_metrics, value_name


SampleProgress = Callable[[int, int], None]  # (images generated so far, images this evaluation generates)


class RunEvaluator:
    """One run's evaluation: `evaluator(net_g, step, on_samples)` → metric rows (the draws of the
    final step, the protocol, the uniform-noise FID floor beside each FID)."""

    def __init__(self, cfg: TrainConfig, device: torch.device, names: tuple[str, ...], data_root: str | Path | None):
        self.cfg, self.device, self.names = cfg, device, names
        self.reference = Reference.for_config(cfg, data_root)
        self.reference_data = load_reference(self.reference)
        for extractor in {METRICS[n].extractor for n in names}:
            needs_logits = any(KINDS[METRICS[n].kind].needs_logits for n in names if METRICS[n].extractor == extractor)
            checked_weights(extractor, needs_logits, cfg.inception_weights or None)
        self.noise_floors: dict[str, float] = {}  # extractor → uniform-noise FID

    def draws(self, step: int) -> int:
        return self.cfg.eval_draws if step == self.cfg.steps else 1

    def together_key(self, step: int) -> Hashable:
        """Runs whose keys agree at `step` can be evaluated in one call."""
        cfg = self.cfg
        return (self.names, cfg.eval_samples, self.draws(step), step == cfg.steps and cfg.fid_infinity,
                self.reference, cfg.inception_weights, str(self.device))

    def __call__(self, net_g: torch.nn.Module, step: int, on_samples: SampleProgress | None = None) -> list[dict[str, Any]]:
        return evaluate_together([self], [net_g], step, [on_samples])[0]

    @staticmethod
    def together(evaluators: Sequence[RunEvaluator], net_gs: Sequence[torch.nn.Module], step: int,
                 on_samples: Sequence[SampleProgress | None]) -> list[list[dict[str, Any]]]:
        """`evaluate_together`, for the training loop: it holds evaluators but imports this module only
        for a run that asks for metrics (so a `metrics: none` run never loads torch-fidelity)."""
        return evaluate_together(evaluators, net_gs, step, on_samples)

    def finish(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The run's own additions to its rows: protocol provenance, the noise floor beside each FID."""
        cfg = self.cfg
        for row in rows:
            if cfg.eval_protocol:  # provenance: which published protocol this number follows
                row["protocol"] = f"{cfg.eval_protocol}: {get_protocol(cfg.eval_protocol).description}"
            if row["metric"] == value_name("fid", row["extractor"]):  # the noise floor beside each FID
                if row["extractor"] not in self.noise_floors:  # hashing the reference once, not at every evaluation
                    self.noise_floors[row["extractor"]] = uniform_noise_fid(
                        row["extractor"], self.reference, self.reference_data, cfg.eval_samples, self.device,
                        cfg.inception_weights or None)
                row["uniform_noise_fid"] = self.noise_floors[row["extractor"]]
        return rows


def _progress(on_samples: SampleProgress | None, total: int) -> Callable[[int], None]:
    done = [0]

    def on_batch(n: int) -> None:
        done[0] += n
        if on_samples:
            on_samples(min(done[0], total), total)
    return on_batch


def evaluate_together(evaluators: Sequence[RunEvaluator], net_gs: Sequence[torch.nn.Module], step: int,
                      on_samples: Sequence[SampleProgress | None]) -> list[list[dict[str, Any]]]:
    """The rows of each run at `step`, every draw of all runs in one `evaluate_many` call."""
    first = evaluators[0]
    if any(e.together_key(step) != first.together_key(step) for e in evaluators):
        raise ValueError("runs evaluated together must agree on every evaluation setting (RunEvaluator.together_key)")
    cfg, draws = first.cfg, first.draws(step)
    total = cfg.eval_samples * draws
    sources = [FidelityGenerator(net_g, e.cfg, _progress(report, total))
               for e, net_g, report in zip(evaluators, net_gs, on_samples, strict=True)]
    rows: list[list[dict[str, Any]]] = [[] for _ in evaluators]
    for draw in range(draws):
        drawn = evaluate_many(sources, first.names, first.reference, samples=cfg.eval_samples,
                              seeds=[draw_seed(e.cfg.seed, draw) for e in evaluators], device=first.device,
                              inception_weights=cfg.inception_weights or None, reference_data=first.reference_data,
                              fid_infinity=step == cfg.steps and cfg.fid_infinity)
        for run_rows, run_drawn in zip(rows, drawn):
            run_rows += [{"step": step, "draw": draw, "draws": draws, **row} for row in run_drawn]
    return [e.finish(run_rows) for e, run_rows in zip(evaluators, rows)]


def make_evaluator(cfg: TrainConfig, device: torch.device, data_root: str | Path | None = None) -> RunEvaluator | None:
    """The run's evaluator for the training loop, or None when no metric is asked.

    Metric names, weights and the reference set are checked and loaded here, once, so a
    bad request fails before training starts.
    """
    names = parse_metrics(cfg.metrics, cfg.dataset)
    return RunEvaluator(cfg, device, names, data_root) if names else None
