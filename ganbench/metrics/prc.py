"""Precision and recall (Kynkäänniemi et al. 2019) as torch-fidelity computes them, from one pass over
the reference-to-generated distances, with the reference set's k-NN radii computed once per process.

torch-fidelity's default (`calculate_precision_recall_part`) finds every point's distance to its
k-th nearest neighbour within its own set, for the generated and the reference set alike, every
call, then computes the reference-to-generated distances for recall and the generated-to-reference
ones for precision: the same matrix twice. Here the reference radii are computed once per process
(`reference_radii`: they depend only on the reference features), and each reference-to-generated
distance is made once and serves both — as torch-fidelity's own `calculate_precision_recall_full`
does (`dist_1_2 = dist_2_1.T`). The distances are `torch.cdist`'s own arithmetic (ATen's
`_euclidean_dist`: one matmul of [−2x, |x|², 1] by [y, 1, |y|²], clamped at 0, square-rooted), made
in cache-sized tiles whose operands are built once per set; a tile's entries are bit for bit those of
the whole `cdist` matrix (tested), and each comparison with a radius is made on the squared distance
against the largest square whose root is within the radius (`_squared_bounds`: the same outcome, without
the clamp and square root of every entry), so the numbers are the full mode's bit for bit. Its part mode
differs only where a generated-to-reference distance lies within float32 rounding (≤ 3e-6 on
fmnist features) of a reference radius: `cdist(a, b)` and `cdist(b, a).T` are not bit-equal
(1.9 % of the entries differ in the last bits). Tiles stay on the features' device: on a GPU the
whole procedure runs there (`on_device.py`).
"""

from __future__ import annotations

import torch
from torch_fidelity.metric_prc import KEY_METRIC_F_SCORE, KEY_METRIC_PRECISION, KEY_METRIC_RECALL

# Distance tiles: 512 × 1 024 float32 = 2 MB, in a core's cache while both comparisons read it (the whole
# 10 000 × 5 000 matrix, as torch-fidelity makes it, is 200 MB of memory traffic per orientation).
TILE_ROWS, TILE_COLUMNS = 512, 1024


def _operands(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`features` as the left and the right operand of ATen's `_euclidean_dist` (torch.cdist's matmul path)."""
    norm = features.pow(2).sum(-1, keepdim=True)
    ones = torch.ones_like(norm)
    return torch.cat([features.mul(-2), norm, ones], -1), torch.cat([features, ones, norm], -1)


def _squared_distances(left: torch.Tensor, right: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """`_distances` before its clamp and square root (both monotone: the order of the values is theirs)."""
    return torch.mm(left, right.T, out=out)


def _distances(left: torch.Tensor, right: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The distances of the rows of `left` to those of `right` (`_operands`), into `out`."""
    return _squared_distances(left, right, out).clamp_min_(0).sqrt_()


def _squared_bounds(radii: torch.Tensor) -> torch.Tensor:
    """For each radius r, the largest float v with sqrt(max(v, 0)) ≤ r in the device's own arithmetic, so that
    `squared ≤ bound` decides `distance ≤ r` exactly for every squared distance (square roots are monotone)
    without taking 50 M square roots. r² rounded is within a few units in the last place of it; the steps
    below move it there and the check proves it."""
    bound = radii.double().square().to(radii.dtype)
    up, down = torch.full_like(bound, float("inf")), torch.full_like(bound, float("-inf"))
    for _ in range(8):
        above = torch.nextafter(bound, up)
        moved = torch.where(bound.clamp_min(0).sqrt() > radii, torch.nextafter(bound, down),
                            torch.where(above.clamp_min(0).sqrt() <= radii, above, bound))
        if torch.equal(moved, bound):
            return bound
        bound = moved
    raise ArithmeticError("no squared bound found for some radius: square roots are not monotone on this device")


def reference_radii(features: torch.Tensor, neighborhood: int, batch_size: int | None = None) -> torch.Tensor:
    """Each point's distance to its `neighborhood`-th nearest neighbour in its own set (itself excluded):
    torch-fidelity's `kthvalue(neighborhood + 1)` of its `cdist` rows, read from `topk` (the same element,
    9× faster on a CPU) of the squared distances, whose clamp and square root are then taken of that element
    alone (both monotone, so the same value), `TILE_ROWS` rows at a time. `batch_size` (torch-fidelity's
    `prc_batch_size`) is accepted for its signature; the tiles bound memory instead."""
    left, right = _operands(features)
    buffer = torch.empty(min(TILE_ROWS, len(features)), len(features), device=features.device)
    return torch.cat([_squared_distances(rows, right, buffer[: len(rows)]).topk(
        neighborhood + 1, dim=1, largest=False).values[:, -1] for rows in left.split(TILE_ROWS)]).clamp_min_(0).sqrt_()


def precision_recall(generated: torch.Tensor, reference: torch.Tensor, radii_reference: torch.Tensor,
                     neighborhood: int, batch_size: int | None = None) -> dict[str, float]:
    """torch-fidelity's precision, recall and F-score keys, given the reference radii. Each tile of the
    reference-to-generated distances is made once: recall reads its rows (a real point inside some
    generated ball), precision its columns (a generated point inside some real ball)."""
    bounds_generated = _squared_bounds(reference_radii(generated, neighborhood))
    bounds_reference = _squared_bounds(radii_reference)
    left, _ = _operands(reference)
    _, right = _operands(generated)
    recalled = torch.zeros(len(reference), dtype=torch.bool, device=generated.device)
    precise = torch.zeros(len(generated), dtype=torch.bool, device=generated.device)
    tile = torch.empty(min(TILE_ROWS, len(reference)), min(TILE_COLUMNS, len(generated)), device=generated.device)
    inside = torch.empty(tile.shape, dtype=torch.bool, device=generated.device)
    for first_column in range(0, len(generated), TILE_COLUMNS):
        columns = slice(first_column, first_column + TILE_COLUMNS)
        for first_row in range(0, len(reference), TILE_ROWS):
            rows = slice(first_row, first_row + TILE_ROWS)
            squared = _squared_distances(left[rows], right[columns], tile[: len(left[rows]), : len(right[columns])])
            within = inside[: squared.shape[0], : squared.shape[1]]
            recalled[rows] |= torch.le(squared, bounds_generated[None, columns], out=within).any(dim=1)
            precise[columns] |= torch.le(squared, bounds_reference[rows, None], out=within).any(dim=0)
    recall = recalled.float().mean().item()
    precision = precise.float().mean().item()
    return {KEY_METRIC_PRECISION: precision, KEY_METRIC_RECALL: recall,
            KEY_METRIC_F_SCORE: 2 * precision * recall / max(1e-5, precision + recall)}
