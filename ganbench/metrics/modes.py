"""Mode coverage (`modes_fmnist`): the class histogram of generated images by ganbench's classifier."""

from __future__ import annotations

import torch

from ganbench.metrics.registry import value_name


def mode_coverage_from_logits(logits: torch.Tensor, real_labels: torch.Tensor,
                              min_share: float = 0.01) -> dict[str, float]:
    """Classes of the generated images by the fmnist classifier's logits.

    modes_covered_fmnist: classes holding at least `min_share` (1 %) of the samples;
    modes_kl_fmnist: KL(generated class histogram ‖ real class histogram), in nats.
    """
    preds = logits.argmax(1).cpu()
    classes = 10
    p_gen = torch.bincount(preds, minlength=classes).double() / len(preds)
    p_real = torch.bincount(real_labels, minlength=classes).double() / len(real_labels)
    support = p_gen > 0
    kl = float((p_gen[support] * (p_gen[support] / p_real[support]).log()).sum())
    return {value_name("modes_covered", "fmnist"): float((p_gen >= min_share).sum()), value_name("modes_kl", "fmnist"): kl}
