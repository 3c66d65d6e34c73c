"""KID (Bińkowski et al. 2018) as torch-fidelity defines it — the unbiased MMD² of a polynomial
kernel, averaged over random subsets — computed from Gram blocks made once per evaluation.

torch-fidelity draws `kid_subsets` pairs of subsets (generated, then reference indices, from one
`RandomState(rng_seed)`) and, for each, builds three m × m kernel matrices in numpy float32 and
sums them in float32: 72 % of its time is numpy's element-wise `(K·γ + c)³`, and near KID = 0 its
float32 sums are ~2e-4 relative from the exact value (and change with the BLAS thread count).

Here the same subsets are drawn, but the kernel of every generated–generated and generated–reference
pair is made once, block by block, and each subset's block sum is read off by 0/1 indicator
matmuls, `((S @ K) * T).sum(1)` (each pair enters about twice over 100 subsets, where torch-fidelity
computes it for each subset it falls in; indexing gathers were slower than the matmuls). The
reference–reference sums depend only on the reference features and the draw, so a process keeps
them (`reference_sums`). For accuracy the kernel is split by powers of t = γ x·y: the constant
term's sums cancel exactly in the unbiased MMD², the linear term's block sums are products of
feature sums taken in float64, and only the rest, t²·(…), small beside the kernel, goes through
float32 blocks, with x·y made from centred features — so the result stays within about 1e-6 relative of
a float64 computation even at KID ≈ 0 (1.2e-6 on real fmnist features at −5.5e-5, where the three
sums cancel to 3e-5 of their size; torch-fidelity's loop: 2.1e-4). What is left is the float32 Gram
blocks' accumulation over the features (measured: t from an exact product of the same float32 operands
gives 5.8e-7, all of t in float64 2e-7); a float64 Gram made KID 1.65× slower on a 2-core AMD EPYC, for
6e-11 of KID, and is not used. The same code runs on any device;
tiles (`TILE_ROWS` × `TILE_COLUMNS`) keep memory bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Any

import numpy as np
import torch

from ganbench.metrics.registry import MetricError
from ganbench.process_cache import PROCESS

KID_SUBSET_SIZE = 1000  # torch-fidelity's default subset size (lowered to the sample count when fewer)
# Kernel tiles: 512 × 1 024 float32 = 2 MB (512 × 512 along a set's own diagonal). On a 2-core AMD EPYC
# (1 MB L2 per core) a warm KID took 0.37 s with these, 0.51 s with 256-row tiles. The tile shape sets the
# float32 summation order: real fmnist features at KID ≈ −5.5e-5 come out 0.9–1.6e-6 relative from float64
# over the shapes tried (these: 1.2e-6); far from 0 (KID 3.7) 3.5e-8 relative whatever the shape.
TILE_ROWS, TILE_COLUMNS = 512, 1024
# A generated set whose mean is farther than this share of the reference's RMS radius from the reference
# mean is centred on its own mean for its own pairs (`_generated_centre`). Real fmnist features: a train
# sample (KID ≈ 0) lies at 0.014, an untrained G's images (KID 3.7) at 1.08.
OWN_CENTRE_FROM = 0.25


@dataclass(frozen=True)
class KidSettings:
    """torch-fidelity's KID arguments: `subsets` pairs of `size`-point subsets from `RandomState(seed)`,
    kernel (γ x·y + coef0)^degree with γ = 1/D when `gamma` is None."""

    subsets: int
    size: int
    seed: int
    degree: int = 3
    gamma: float | None = None
    coef0: float = 1.0

    @classmethod
    def from_fidelity(cls, kwargs: dict[str, Any]) -> "KidSettings":
        """The settings torch-fidelity's `kid_features_to_metric` would use for `kwargs`."""
        from torch_fidelity.helpers import get_kwarg

        if get_kwarg("kid_kernel", kwargs) != "poly":
            raise MetricError(f"KID is computed with torch-fidelity's polynomial kernel only, not "
                              f"{get_kwarg('kid_kernel', kwargs)!r}")
        degree = get_kwarg("kid_kernel_poly_degree", kwargs)
        if degree != int(degree) or degree < 1:
            raise MetricError(f"KID's polynomial degree must be a positive integer, not {degree!r}")
        return cls(get_kwarg("kid_subsets", kwargs), get_kwarg("kid_subset_size", kwargs), get_kwarg("rng_seed", kwargs),
                   int(degree), get_kwarg("kid_kernel_poly_gamma", kwargs), float(get_kwarg("kid_kernel_poly_coef0", kwargs)))


def subset_indicators(n_1: int, n_2: int, settings: KidSettings) -> tuple[np.ndarray, np.ndarray]:
    """0/1 float32 matrices (subsets × n_1, subsets × n_2): torch-fidelity's subsets, drawn as it draws
    them (generated then reference indices, subset after subset, from one RandomState)."""
    if n_1 < settings.size or n_2 < settings.size:
        raise MetricError(f"KID subset size {settings.size} exceeds the samples ({n_1} generated, {n_2} reference)")
    rng = np.random.RandomState(settings.seed)
    rows_1 = np.zeros((settings.subsets, n_1), np.float32)
    rows_2 = np.zeros((settings.subsets, n_2), np.float32)
    for i in range(settings.subsets):
        rows_1[i, rng.choice(n_1, settings.size, replace=False)] = 1
        rows_2[i, rng.choice(n_2, settings.size, replace=False)] = 1
    return rows_1, rows_2


def _indicators_on(device: torch.device, n_1: int, n_2: int, settings: KidSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """`subset_indicators` as tensors on `device`, drawn once per process per draw (a worker evaluates many
    runs with the same seed and sizes; never written to)."""
    return PROCESS.get("kid_subsets", (str(device), n_1, n_2, settings), lambda: tuple(
        torch.from_numpy(rows).to(device) for rows in subset_indicators(n_1, n_2, settings)), keep=8)


def _higher_terms(t: torch.Tensor, settings: KidSettings, out: torch.Tensor) -> torch.Tensor:
    """(t + c)^d − c^d − d·c^(d−1)·t into `out`: the kernel without its constant and linear terms, as
    t²·Σ_{e≥2} C(d, e) c^(d−e) t^(e−2) by Horner (no cancellation)."""
    d, c = settings.degree, settings.coef0
    if d < 2:
        return out.zero_()
    if d == 2:
        return torch.mul(t, t, out=out)
    torch.add(t, comb(d, d - 1) * c, out=out)  # Horner's first step: e = d and d − 1
    for e in range(d - 2, 1, -1):
        out.mul_(t).add_(comb(d, e) * c ** (d - e))
    return out.mul_(t).mul_(t)


def _block_sums(a: torch.Tensor, b: torch.Tensor, rows_a: torch.Tensor, rows_b: torch.Tensor, centre: torch.Tensor,
                gamma: float, settings: KidSettings, same: bool) -> torch.Tensor:
    """Per subset i, Σ_{j∈a_i, k∈b_i, j≠k if same} of the kernel's higher terms (float64, subsets).

    t = γ x·y is made as γ (x − c)·(y − c) in float32 plus the per-row and per-column rest in float64
    (rounded once), with one centre c for all three sums of an MMD² (see `kid`). The kernel is made in
    tiles of `TILE_ROWS` × `TILE_COLUMNS`, column tile by column tile, so a tile, its subset products and
    the column features it reads stay in a core's cache. When the pairs are a set with itself, the tiles
    are square and only those on and right of the diagonal are made, the others counted twice. The tile
    buffers are made once: fresh tensors per tile cost more in page faults than the arithmetic."""
    a64, b64 = a.double() - centre, b.double() - centre
    half = float(centre @ centre) / 2
    offset_a, offset_b = (gamma * (a64 @ centre + half)).float(), (gamma * (b64 @ centre + half)).float()
    scaled_a, centred_b = (gamma * a64).float(), b64.float()
    rows, columns = TILE_ROWS, TILE_ROWS if same else TILE_COLUMNS
    total = torch.zeros(len(rows_a), dtype=torch.float64, device=a.device)
    t_buffer, k_buffer = (torch.empty(rows, columns, device=a.device) for _ in range(2))
    p_buffer = torch.empty(len(rows_a), columns, device=a.device)
    for first_column in range(0, len(b), columns):
        end_column = min(first_column + columns, len(b))
        width = end_column - first_column
        for first_row in range(0, min(end_column, len(a)) if same else len(a), rows):  # same: on and above the diagonal
            end_row = min(first_row + rows, len(a))
            t = torch.addmm(offset_b[None, first_column:end_column], scaled_a[first_row:end_row],
                            centred_b[first_column:end_column].T, out=t_buffer[: end_row - first_row, :width])
            t.add_(offset_a[first_row:end_row, None])
            tile = _higher_terms(t, settings, k_buffer[: end_row - first_row, :width])
            on_diagonal = same and first_row == first_column
            if on_diagonal:  # the unbiased estimate leaves out each point's kernel with itself
                tile.diagonal().zero_()
            sums = torch.mm(rows_a[:, first_row:end_row], tile, out=p_buffer[:, :width]).mul_(
                rows_b[:, first_column:end_column]).sum(1, dtype=torch.float64)
            # A diagonal tile holds both (j, k) and (k, j); a tile right of it stands for its mirror image too.
            total += sums if on_diagonal or not same else 2 * sums
    return total


def _linear_sums(a: torch.Tensor, b: torch.Tensor, rows_a: torch.Tensor, rows_b: torch.Tensor,
                 same: bool) -> torch.Tensor:
    """Per subset, Σ x·y over its pairs, in float64: (Σ_a x)·(Σ_b y), less Σ |x|² when the pairs exclude j = k."""
    sum_a = rows_a.double() @ a.double()
    sum_b = sum_a if same else rows_b.double() @ b.double()
    total = (sum_a * sum_b).sum(1)
    if same:
        total -= rows_a.double() @ a.double().square().sum(1)
    return total


def _pair_sums(a: torch.Tensor, b: torch.Tensor, rows_a: torch.Tensor, rows_b: torch.Tensor, centre: torch.Tensor,
               settings: KidSettings, same: bool) -> torch.Tensor:
    """Per subset, Σ over its pairs of the kernel less its constant term (which cancels in the MMD²)."""
    gamma = 1.0 / a.shape[1] if settings.gamma is None else settings.gamma
    linear = settings.degree * settings.coef0 ** (settings.degree - 1) * gamma
    return (linear * _linear_sums(a, b, rows_a, rows_b, same)
            + _block_sums(a, b, rows_a, rows_b, centre, gamma, settings, same))


def reference_sums(reference: torch.Tensor, n_generated: int, settings: KidSettings) -> torch.Tensor:
    """The reference–reference part of every subset's MMD² (float64, subsets): it depends only on the
    reference features and the draw, so a process computes it once (`kid(..., real_sums=)`)."""
    _, rows = _indicators_on(reference.device, n_generated, len(reference), settings)
    y = reference.float()
    return _pair_sums(y, y, rows, rows, y.double().mean(0), settings, same=True)


def _generated_centre(x: torch.Tensor, y: torch.Tensor, reference_centre: torch.Tensor) -> torch.Tensor:
    """The centre for the generated–generated sum: the reference mean (shared with the other two sums, so
    their float32 rounding cancels where the sets are alike and the MMD² is a small difference of large
    sums), unless the generated mean lies farther than `OWN_CENTRE_FROM` of the reference's RMS radius
    from it. Then KID is far from 0 (in expectation its linear term alone is 3γ·|Δμ|²), nothing cancels, and the
    generated features centred on their own mean round less: on real fmnist features at KID 3.7 the
    result moved from 1.3e-7 to 1.4e-8 of float64 (torch-fidelity's loop: 2e-8)."""
    own = x.double().mean(0)
    radius_squared = (y.double() - reference_centre).square().sum(1).mean()
    apart = float((own - reference_centre).square().sum()) > OWN_CENTRE_FROM ** 2 * float(radius_squared)
    return own if apart else reference_centre


@torch.no_grad()
def kid(generated: torch.Tensor, reference: torch.Tensor, settings: KidSettings,
        real_sums: torch.Tensor | None = None) -> dict[str, float]:
    """torch-fidelity's KID mean and std keys for N × D features on one device (the reference's).
    `real_sums`: `reference_sums(reference, len(generated), settings)`, when the caller keeps it."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD

    if generated.shape[1] != reference.shape[1]:
        raise MetricError(f"KID features differ in size: {generated.shape[1]} generated, {reference.shape[1]} reference")
    rows_1, rows_2 = _indicators_on(reference.device, len(generated), len(reference), settings)
    x, y, m = generated.to(reference.device, torch.float32), reference.float(), settings.size
    # One centre for the three sums, the reference mean: their float32 rounding then largely cancels in
    # the MMD² where the sets are alike (a per-sum centre made KID ≈ 0 1e-4 off), and the reference's
    # sums stay independent of the generated set (cacheable). Sets far apart: see `_generated_centre`.
    centre = y.double().mean(0)
    if real_sums is None:
        real_sums = _pair_sums(y, y, rows_2, rows_2, centre, settings, same=True)
    fake_sums = _pair_sums(x, x, rows_1, rows_1, _generated_centre(x, y, centre), settings, same=True)
    cross_sums = _pair_sums(x, y, rows_1, rows_2, centre, settings, same=False)
    mmd = ((fake_sums + real_sums) / (m * (m - 1)) - 2 * cross_sums / (m * m)).cpu().numpy()
    return {KEY_METRIC_KID_MEAN: float(np.mean(mmd)), KEY_METRIC_KID_STD: float(np.std(mmd))}
