"""The one module that touches torch-fidelity's internals.

torch-fidelity's `calculate_metrics` rebuilds its feature extractor and re-reads the reference
features on every call; `fidelity_metrics` runs the same functions in the same order but keeps
the extractor, the reference features, the reference set's precision/recall radii and KID's
reference sums in the process cache (`process_cache.PROCESS`), so a worker that evaluates
many runs builds and reads them once. The inputs torch-fidelity takes (`ImageTensorDataset`,
`FidelityGenerator`) and ganbench's uniform latent source live here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

import numpy as np
import torch
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.generative_model_base import GenerativeModelBase

from ganbench.config import TrainConfig
from ganbench.metrics.feature_store import cached_features
from ganbench.metrics.kid import KidSettings, kid, reference_sums
from ganbench.metrics.on_device import fid_statistics, full_float32, reference_on_device
from ganbench.metrics.prc import precision_recall, reference_radii
from ganbench.process_cache import PROCESS

UNIFORM_NOISE = "ganbench_uniform_m1_1"


def _uniform_m1_1(rng: np.random.RandomState, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.from_numpy(rng.rand(*shape) * 2 - 1).float()


if UNIFORM_NOISE not in torch_fidelity.registry.NOISE_SOURCE_REGISTRY:
    torch_fidelity.register_noise_source(UNIFORM_NOISE, _uniform_m1_1)


# torch-fidelity's result key of each base value name the registry declares for its kinds.
FIDELITY_KEYS = {
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


# --- torch-fidelity's orchestration, with what a process keeps between evaluations ----------

def _extractor(kwargs: dict[str, Any], extra_layers: tuple[str, ...]) -> tuple[Any, tuple, dict[str, str]]:
    """(torch-fidelity's feature extractor for `kwargs`, kept per process; its cache key; the
    feature layer of each torch-fidelity metric asked)."""
    from torch_fidelity.helpers import get_kwarg
    from torch_fidelity.utils import create_feature_extractor, resolve_feature_extractor, resolve_feature_layer_for_metric

    kinds = [kind for kind in ("isc", "fid", "kid", "prc") if get_kwarg(kind, kwargs)]
    layers = {kind: resolve_feature_layer_for_metric(kind, **kwargs) for kind in kinds}
    requested = tuple(sorted(set(layers.values()) | set(extra_layers)))
    cuda = get_kwarg("cuda", kwargs)
    extractor_key = (resolve_feature_extractor(**kwargs), requested, kwargs.get("feature_extractor_weights_path"),
                     torch.cuda.current_device() if cuda else None)
    feat_extractor = PROCESS.get("extractor", extractor_key, lambda: create_feature_extractor(
        extractor_key[0], list(requested), cuda=cuda, feature_extractor_weights_path=extractor_key[2], verbose=False))
    return feat_extractor, extractor_key, layers


@torch.no_grad()
def generated_features(sources: list[GenerativeModelBase], seeds: list[int], samples: int, kwargs: dict[str, Any],
                       extra_layers: tuple[str, ...] = ()) -> list[dict[str, torch.Tensor]]:
    """The features torch-fidelity extracts from each source (`extract_featuresdict_from_input_id(1, …)`
    with `rng_seed` = its seed): its latents drawn from `RandomState(seed)` in its noise source, batch
    after batch as torch-fidelity draws them (one stream: the batch size does not change them), its
    images made by itself — but the extractor runs once over the images of all sources together,
    in batches of `kwargs['batch_size']`, so K runs of a group cost one pass, not K."""
    from torch_fidelity.helpers import get_kwarg
    from torch_fidelity.registry import NOISE_SOURCE_REGISTRY

    feat_extractor, _, _ = _extractor(kwargs, extra_layers)
    batch = get_kwarg("batch_size", kwargs)
    images = []
    for source, seed in zip(sources, seeds, strict=True):
        rng = np.random.RandomState(seed)
        device = next(source.parameters()).device
        for start in range(0, samples, batch):
            noise = NOISE_SOURCE_REGISTRY[source.z_type](rng, (min(batch, samples - start), source.z_size))
            images.append(source(noise.to(device)))
    # Gray images come as 3-channel views of one channel: concatenate that one and expand again (a third of
    # the copy, and the extractor converts one channel).
    gray = all(image.stride(1) == 0 for image in images)
    images_all = torch.cat([image[:, :1] for image in images]).expand(-1, 3, -1, -1) if gray else torch.cat(images)
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(images_all), batch):
        features = feat_extractor.convert_features_tuple_to_dict(feat_extractor(images_all[start:start + batch]))
        for name, value in features.items():
            parts.setdefault(name, []).append(value.cpu())
    whole = {name: torch.cat(values) for name, values in parts.items()}
    return [{name: value[k * samples:(k + 1) * samples] for name, value in whole.items()} for k in range(len(sources))]


def fidelity_metrics(kwargs: dict[str, Any], extra_layers: tuple[str, ...] = (),
                     features_1: dict[str, torch.Tensor] | None = None) -> tuple[dict[str, float], dict, dict | None]:
    """What `torch_fidelity.calculate_metrics(**kwargs)` returns, computed by torch-fidelity's own
    functions in its own order, plus the generated images' features (`extra_layers` too) and the
    reference set's (None when no metric needed them). The
    extractor and the reference set's features are kept for the life of the process, so a
    worker that evaluates many runs builds and reads them once. `features_1`: the generated
    features already extracted (`generated_features`, for a group of runs)."""
    from torch_fidelity.helpers import get_kwarg
    from torch_fidelity.metric_fid import fid_featuresdict_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_featuresdict_to_metric
    from torch_fidelity.utils import extract_featuresdict_from_input_id, get_cacheable_input_name

    feat_extractor, extractor_key, layers = _extractor(kwargs, extra_layers)
    kinds = list(layers)
    cuda = get_kwarg("cuda", kwargs)
    # On a GPU every metric is computed there (`on_device.py`): a worker's one CPU thread made precision/recall
    # alone cost more than a group's training step. KID and precision/recall run ganbench's code on every
    # device; FID's statistics on the CPU are torch-fidelity's own (the reference's kept per process).
    # torch-fidelity is never given a cache (its files are unpickled): the reference features are
    # ganbench's plain arrays (`feature_store.py`).
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    if features_1 is None:
        features_1 = extract_featuresdict_from_input_id(1, feat_extractor, **kwargs)
    metrics: dict[str, float] = {}
    if not kinds:
        return metrics, features_1, None
    name_2 = f"{get_cacheable_input_name(2, **kwargs)}-{feat_extractor.get_name()}"
    features_2 = PROCESS.get("reference_features", (name_2, extractor_key), lambda: cached_features(
        name_2, feat_extractor.get_requested_features_list(), len(kwargs["input2"]),
        lambda: extract_featuresdict_from_input_id(2, feat_extractor, **kwargs)))
    with full_float32():  # no TF32 or bf16 matmul passes in a metric, whatever training allowed
        if "isc" in layers:
            metrics.update(isc_featuresdict_to_metric(features_1, layers["isc"], **kwargs))
        if "fid" in layers:
            stats_1 = fid_statistics(features_1[layers["fid"]], device) if cuda else fid_featuresdict_to_statistics(
                features_1, layers["fid"])
            stats_2 = PROCESS.get("reference_fid_statistics", (name_2, extractor_key, layers["fid"]),
                                  lambda: fid_featuresdict_to_statistics(features_2, layers["fid"]))
            metrics.update(fid_statistics_to_metric(stats_1, stats_2, get_kwarg("verbose", kwargs)))
        if "kid" in layers:  # from Gram blocks on the features' device (`kid.py`), the reference's sums once per seed
            settings, generated = KidSettings.from_fidelity(kwargs), features_1[layers["kid"]]
            key = (name_2, extractor_key, layers["kid"])
            reference = reference_on_device(PROCESS, key, features_2[layers["kid"]], device)
            real_sums = PROCESS.get("kid_reference_sums", (*key, str(device), settings, len(generated)),
                                    lambda: reference_sums(reference, len(generated), settings), keep=256)
            metrics.update(kid(generated, reference, settings, real_sums))
        if "prc" in layers:  # torch-fidelity's procedure from one distance matrix, the reference radii once per process
            neighborhood, batch = get_kwarg("prc_neighborhood", kwargs), get_kwarg("prc_batch_size", kwargs)
            key = (name_2, extractor_key, layers["prc"])
            reference = reference_on_device(PROCESS, key, features_2[layers["prc"]], device)
            radii = PROCESS.get("reference_radii", (*key, neighborhood, batch, str(device)),
                                lambda: reference_radii(reference, neighborhood, batch))
            metrics.update(precision_recall(features_1[layers["prc"]].to(device), reference, radii, neighborhood, batch))
    return metrics, features_1, features_2


def cache_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def content_hash(images: torch.Tensor) -> str:
    return hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()
