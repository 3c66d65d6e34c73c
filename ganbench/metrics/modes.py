"""Mode coverage (`modes_fmnist`): the class histogram of generated images by ganbench's classifier.

A metric ganbench computes itself, declared and computed in this one module (torch loads only
when it is computed, so the torch-free registry can list it); `ganbench/metrics/__init__.py`
imports it, which registers it.
"""

from __future__ import annotations

from typing import Any

from ganbench.metrics.registry import Kind, MetricInputs, Output, register_kind, register_metric, value_name

MIN_SHARE = 0.01  # a class "is covered" when it holds at least 1 % of the generated images
CLASSES = 10


def mode_coverage_from_logits(logits: Any, real_labels: Any, min_share: float = MIN_SHARE) -> dict[str, float]:
    """Classes of the generated images by the fmnist classifier's logits.

    modes_covered_fmnist: classes holding at least `min_share` (1 %) of the samples;
    modes_kl_fmnist: KL(generated class histogram ‖ real class histogram), in nats.
    """
    import torch

    preds = logits.argmax(1).cpu()
    p_gen = torch.bincount(preds, minlength=CLASSES).double() / len(preds)
    p_real = torch.bincount(real_labels, minlength=CLASSES).double() / len(real_labels)
    support = p_gen > 0
    kl = float((p_gen[support] * (p_gen[support] / p_real[support]).log()).sum())
    return {value_name("modes_covered", "fmnist"): float((p_gen >= min_share).sum()), value_name("modes_kl", "fmnist"): kl}


def _compute(inputs: MetricInputs) -> dict[str, float]:
    # the classifier's logits of the images the other metrics saw: no second pass over them
    return mode_coverage_from_logits(inputs.generated_features["logits"], inputs.real_labels)


register_kind(Kind("modes", (Output("modes_covered", True, 0.0, float(CLASSES)), Output("modes_kl", False, 0.0)),
                   extractors=("fmnist",), compute=_compute, layers=("logits",)))
register_metric("modes", "fmnist")
