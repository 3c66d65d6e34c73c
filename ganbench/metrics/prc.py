"""Precision and recall (Kynkäänniemi et al. 2019) as torch-fidelity computes them, from one
reference-to-generated distance matrix, with the reference set's k-NN radii computed once per process.

torch-fidelity's default (`calculate_precision_recall_part`) finds every point's distance to its
k-th nearest neighbour within its own set, for the generated and the reference set alike, every
call, then computes the reference-to-generated distances for recall and the generated-to-reference
ones for precision: the same matrix twice. Here the reference radii are computed once per process
(`reference_radii`: they depend only on the reference features), and one distance matrix, in
reference-row blocks, serves both — as torch-fidelity's own `calculate_precision_recall_full`
does (`dist_1_2 = dist_2_1.T`), so the numbers are that function's bit for bit. Its part mode
differs only where a generated-to-reference distance lies within float32 rounding (≤ 3e-6 on
fmnist features) of a reference radius: `cdist(a, b)` and `cdist(b, a).T` are not bit-equal
(1.9 % of the entries differ in the last bits). Blocks stay on the features' device: on a GPU the
whole procedure runs there (`on_device.py`).
"""

from __future__ import annotations

import torch
from torch_fidelity.metric_prc import KEY_METRIC_F_SCORE, KEY_METRIC_PRECISION, KEY_METRIC_RECALL


def calc_cdist_part(features_1: torch.Tensor, features_2: torch.Tensor, batch_size: int) -> torch.Tensor:
    """torch-fidelity's `calc_cdist_part` (distances of `features_1` to `features_2`, in blocks of
    `batch_size` columns), left on the features' device instead of copied to the CPU."""
    parts = [torch.cdist(features_1, part) for part in features_2.split(batch_size)]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # one block: no copy of it


def reference_radii(features: torch.Tensor, neighborhood: int, batch_size: int) -> torch.Tensor:
    """Each point's distance to its `neighborhood`-th nearest neighbour in its own set (itself excluded):
    torch-fidelity's `kthvalue(neighborhood + 1)`, read from `topk` (the same element, 9× faster on a CPU)."""
    return torch.cat([calc_cdist_part(batch, features, batch_size).topk(neighborhood + 1, dim=1, largest=False).values[:, -1]
                      for batch in features.split(batch_size)])


def precision_recall(generated: torch.Tensor, reference: torch.Tensor, radii_reference: torch.Tensor,
                     neighborhood: int, batch_size: int) -> dict[str, float]:
    """torch-fidelity's precision, recall and F-score keys, given the reference radii. The
    reference-to-generated distances are made once, `batch_size` reference rows at a time (memory
    stays at one block): recall reads a block's rows, precision its columns."""
    radii_generated = reference_radii(generated, neighborhood, batch_size)
    recalled = []
    precise = torch.zeros(len(generated), dtype=torch.bool, device=generated.device)
    for rows, radii in zip(reference.split(batch_size), radii_reference.split(batch_size)):
        distances = calc_cdist_part(rows, generated, batch_size)
        recalled.append((distances <= radii_generated).any(dim=1))  # a real point inside some generated ball
        precise |= (distances <= radii[:, None]).any(dim=0)  # a generated point inside some real ball
    recall = torch.cat(recalled).float().mean().item()
    precision = precise.float().mean().item()
    return {KEY_METRIC_PRECISION: precision, KEY_METRIC_RECALL: recall,
            KEY_METRIC_F_SCORE: 2 * precision * recall / max(1e-5, precision + recall)}
