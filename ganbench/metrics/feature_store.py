"""The reference set's features on disk, as plain arrays: a cache that can be read without running code.

torch-fidelity's own cache is `torch.load(weights_only=False)` of `.pt` files, so anyone who can write
the cache directory could run code in every later evaluation; ganbench therefore never hands it a cache
(`cache=False`) and keeps the features itself, one `.npy` per feature layer under
`$XDG_CACHE_HOME/ganbench/features/`, read with `allow_pickle=False`. A file that is missing, damaged,
of the wrong shape or not floating point is a cache miss: the features are extracted again and the
file rewritten (said once, as a warning naming it). A cache that cannot be written (read-only, full)
costs the next process the extraction again, never the evaluation.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ganbench.data.datasets import cache_dir
from ganbench.files import atomic_write

Features = dict[str, torch.Tensor]


class FeatureCacheWarning(UserWarning):
    """A reference-feature cache file was unusable (re-extracted) or could not be written."""


def features_dir() -> Path:
    return cache_dir() / "features"


def _read(path: Path, rows: int) -> torch.Tensor | None:
    """The array at `path` if it is a float matrix of `rows` rows, else None (a miss; said if the file was there)."""
    try:
        array = np.load(path, allow_pickle=False, mmap_mode=None)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError) as err:  # torn, truncated, pickled or not an .npy at all
        warnings.warn(FeatureCacheWarning(f"{path}: unreadable reference features ({err}); extracting them again"))
        return None
    if array.dtype.kind != "f" or array.ndim != 2 or array.shape[0] != rows:
        warnings.warn(FeatureCacheWarning(f"{path}: holds a {array.dtype} array of shape {array.shape}, not "
                                          f"{rows} rows of features; extracting them again"))
        return None
    return torch.from_numpy(np.ascontiguousarray(array))


def _write(path: Path, values: torch.Tensor) -> None:
    def save(tmp: str) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.save would add ".npy" to the temp name
            np.save(fh, values.detach().cpu().numpy(), allow_pickle=False)

    try:
        atomic_write(path, save)
    except OSError as err:  # read-only or full cache: this process keeps its features in memory
        warnings.warn(FeatureCacheWarning(f"{path}: could not cache the reference features ({err})"))


def cached_features(name: str, layers: Sequence[str], rows: int, extract: Callable[[], Features]) -> Features:
    """The features of layers `layers` of the reference set called `name` (its content key and the
    extractor), `rows` images: from the cache when every layer's file is sound, else `extract()`ed and
    stored."""
    paths = {layer: features_dir() / f"{name}-{layer}.npy" for layer in layers}
    found = {layer: _read(path, rows) for layer, path in paths.items()}
    if all(value is not None for value in found.values()):
        return {layer: value for layer, value in found.items() if value is not None}
    features = extract()
    for layer, path in paths.items():
        _write(path, features[layer])
    return features
