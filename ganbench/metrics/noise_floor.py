"""The noise floor: FID of uniform pixel noise against the reference set (a generator at or above it learned nothing)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch_fidelity

from ganbench.data.datasets import cache_dir
from ganbench.files import read_json, write_json
from ganbench.metrics.backend import cache_key, content_hash
from ganbench.metrics.extractors import ARRANGEMENTS
from ganbench.metrics.feature_store import FeatureCacheWarning
from ganbench.metrics.fidelity import checked_weights, evaluate
from ganbench.metrics.reference import Reference
from ganbench.metrics.registry import value_name
from ganbench.process_cache import PROCESS


def uniform_noise_fid(extractor: str, reference: Reference, reference_data: tuple[torch.Tensor, torch.Tensor],
                      samples: int, device: torch.device, inception_weights: str | None) -> float:
    """FID of uniform pixel noise (images of the reference's shape, every pixel U{0…255}) against
    the reference set, with the run's extractor and sample count: a generator at or above it has
    not learned anything. Measured once and cached on disk (a JSON file per setting)."""
    real_images = reference_data[0]
    fidelity_name, weights = checked_weights(extractor, False, inception_weights)
    key = cache_key({"reference": content_hash(real_images), "extractor": extractor, "samples": samples,
                     "arrangement": ARRANGEMENTS[fidelity_name], "weights": weights.sha256,
                     "torch_fidelity": torch_fidelity.__version__})
    return PROCESS.get("noise_floor", key, lambda: _measured_noise_fid(key, extractor, reference, reference_data,
                                                                         samples, device, inception_weights), keep=16)


def _measured_noise_fid(key: str, extractor: str, reference: Reference,
                        reference_data: tuple[torch.Tensor, torch.Tensor], samples: int, device: torch.device,
                        inception_weights: str | None) -> float:
    path = cache_dir() / "noise_floor" / f"{key}.json"
    if path.exists():
        try:
            value = float(read_json(path, "a cached noise floor {fid, …}")["fid"])
            if math.isfinite(value) and value >= 0:
                return value
            raise ValueError(f"fid {value}")
        except (ValueError, KeyError, TypeError) as err:  # damaged: measured again (and rewritten), said
            warnings.warn(f"{path}: not a cached noise floor ({err}); measuring it again", FeatureCacheWarning)
    real_images = reference_data[0]
    rng = np.random.RandomState(0)
    shape = (samples, real_images.shape[1], *real_images.shape[2:])
    noise = torch.from_numpy(rng.randint(0, 256, size=shape, dtype=np.uint8))
    metric = value_name("fid", extractor)
    rows = evaluate(noise, [metric], reference, samples=samples, device=device, inception_weights=inception_weights,
                    reference_data=reference_data)
    value = next(r["value"] for r in rows if r["metric"] == metric)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"fid": value, "metric": metric, "samples": samples, "what": "uniform pixel noise"})
    except OSError as err:  # a read-only or full cache: measured again by the next process, never an error
        warnings.warn(f"{path}: could not cache the noise floor ({err})", FeatureCacheWarning)
    return value
