"""Precision and recall (Kynkäänniemi et al. 2019) as torch-fidelity computes them, with the
reference set's k-NN radii computed once per process instead of at every evaluation.

torch-fidelity's `calculate_precision_recall_part` finds every point's distance to its k-th
nearest neighbour within its own set, for the generated and the reference set alike, every
call. The reference radii depend only on the reference features, and their 10 000 × 10 000
distances were half of an fmnist evaluation's time on the CPU: `reference_radii` computes them
and the process keeps them; the rest is torch-fidelity's procedure step for step, with its
distances (`torch.cdist` over the same blocks), so the numbers are the same. Unlike
torch-fidelity's `calc_cdist_part`, the distance blocks stay on the features' device: on a GPU
the whole procedure runs there (`on_device.py`).
"""

from __future__ import annotations

import torch
from torch_fidelity.metric_prc import KEY_METRIC_F_SCORE, KEY_METRIC_PRECISION, KEY_METRIC_RECALL


def calc_cdist_part(features_1: torch.Tensor, features_2: torch.Tensor, batch_size: int) -> torch.Tensor:
    """torch-fidelity's `calc_cdist_part` (distances of `features_1` to `features_2`, in blocks of
    `batch_size` columns), left on the features' device instead of copied to the CPU."""
    return torch.cat([torch.cdist(features_1, part) for part in features_2.split(batch_size)], dim=1)


def reference_radii(features: torch.Tensor, neighborhood: int, batch_size: int) -> torch.Tensor:
    """Each point's distance to its `neighborhood`-th nearest neighbour in its own set (itself excluded)."""
    return torch.cat([calc_cdist_part(batch, features, batch_size).kthvalue(neighborhood + 1).values
                      for batch in features.split(batch_size)])


def _covered(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, batch_size: int) -> float:
    """The share of `points` inside at least one ball (centre, radius)."""
    hits = [(calc_cdist_part(batch, centres, batch_size) <= radii).any(dim=1).float() for batch in points.split(batch_size)]
    return torch.cat(hits).mean().item()


def precision_recall(generated: torch.Tensor, reference: torch.Tensor, radii_reference: torch.Tensor,
                     neighborhood: int, batch_size: int) -> dict[str, float]:
    """torch-fidelity's precision, recall and F-score keys, given the reference radii."""
    radii_generated = reference_radii(generated, neighborhood, batch_size)
    recall = _covered(reference, generated, radii_generated, batch_size)
    precision = _covered(generated, reference, radii_reference, batch_size)
    return {KEY_METRIC_PRECISION: precision, KEY_METRIC_RECALL: recall,
            KEY_METRIC_F_SCORE: 2 * precision * recall / max(1e-5, precision + recall)}
