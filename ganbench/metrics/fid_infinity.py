"""FID∞ (Chong & Forsyth 2020): FID extrapolated to infinitely many generated images."""

from __future__ import annotations

import numpy as np
import torch
import torch_fidelity


FID_INFINITY_POINTS = 10


def extrapolated_fid(generated: torch.Tensor, reference: torch.Tensor, seed: int) -> float:
    """FID∞ (Chong & Forsyth 2020): FID is biased upwards by a term linear in 1/N; the FID of
    random subsets of N = n/5 … n generated images, fitted by least squares in 1/N, read at 1/N = 0."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    stats_ref = fid_features_to_statistics(reference)
    rng = np.random.default_rng(seed)
    sizes = np.linspace(len(generated) // 5, len(generated), FID_INFINITY_POINTS).astype(int)
    fids = []
    for size in sizes:
        subset = generated[torch.from_numpy(rng.choice(len(generated), size, replace=False))]
        stats = fid_features_to_statistics(subset)
        fids.append(fid_statistics_to_metric(stats, stats_ref, False)[torch_fidelity.KEY_METRIC_FID])
    slope, intercept = np.polyfit(1.0 / sizes, np.asarray(fids), 1)
    return float(intercept)
