"""Scoring images ganbench did not train (`ganbench eval DIR` or `ganbench eval G.pt`), with the same
metrics, reference sets and provenance as a run's: what `fidelity --input1 DIR` does, plus the rows.

- an image folder: every .png/.jpg/.jpeg/.bmp/.webp file in it (sorted, not recursive), converted to
  the reference's channels and, when its size differs, resized to the reference's side (antialiased
  bilinear, as ganbench's photo datasets), then uint8;
- a generator file: TorchScript (`torch.jit.save`) or a `torch.export` program (`.pt2`) mapping z
  (N × latent_dim) to images N × C × H × W in `pixel_range`: torch-fidelity draws its latents as for
  a run. Loading it runs its program: score only generators you trust.

Each row says what was scored (`scored`: kind, path, images, sha256 of the file or of the images).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganbench.config import TrainConfig
from ganbench.metrics.backend import FidelityGenerator
from ganbench.metrics.fidelity import evaluate
from ganbench.metrics.reference import Reference
from ganbench.metrics.registry import MetricError, parse_metrics

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def folder_images(folder: Path, side: int, channels: int) -> torch.Tensor:
    """uint8 N × C × side × side from the folder's image files."""
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise MetricError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) to score")
    images = []
    for path in files:
        try:
            with Image.open(path) as image:
                image = image.convert("L" if channels == 1 else "RGB")
                if image.size != (side, side):
                    image = image.resize((side, side), Image.Resampling.BILINEAR, reducing_gap=None)
                array = np.asarray(image, dtype=np.uint8)
        except OSError as err:
            raise MetricError(f"{path}: not a readable image ({err})") from None
        images.append(array[None] if channels == 1 else array.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(images))


class ScriptedGenerator(torch.nn.Module):
    """A generator saved elsewhere as ganbench's G: z → images in `pixel_range`. A `.pt2` file is a
    `torch.export` program; anything else TorchScript (`torch.jit.save`; deprecated in torch 2.14, its
    warning silenced here: the file is the user's, not ours to change)."""

    def __init__(self, path: Path, device: torch.device) -> None:
        super().__init__()
        if path.suffix == ".pt2":
            self.net = torch.export.load(str(path)).module().to(device)
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            try:
                self.net = torch.jit.load(str(path), map_location=device)
            except RuntimeError as err:
                raise MetricError(f"{path}: not a TorchScript generator (torch.jit.load: {err}); a .pt2 file is read "
                                  "as a torch.export program") from None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def evaluate_external(path: str | Path, metrics: str, reference: Reference, cfg: TrainConfig, samples: int,
                      device: torch.device) -> list[dict[str, Any]]:
    """Rows for an image folder or a TorchScript generator at `path`, against `reference`; `cfg` gives
    the latent size and distribution and the pixel range of a generator."""
    path = Path(path)
    names = parse_metrics(metrics, reference.dataset)
    if not names:
        raise MetricError("no metric to compute: pass --metrics")
    if path.is_dir():
        images = folder_images(path, reference.side, reference.channels)
        rows = evaluate(images, names, reference, samples=len(images), device=device)
        scored = {"kind": "image folder", "path": str(path.resolve()), "images": len(images),
                  "sha256": hashlib.sha256(images.numpy().tobytes()).hexdigest()}
    elif path.is_file():
        source = FidelityGenerator(ScriptedGenerator(path, device).eval(), cfg)
        rows = evaluate(source, names, reference, samples=samples, seed=cfg.seed, device=device)
        scored = {"kind": "TorchScript generator", "path": str(path.resolve()), "images": samples,
                  "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "latent": cfg.latent_dist,
                  "latent_dim": cfg.latent_dim, "pixel_range": list(cfg.pixel_range)}
    else:
        raise FileNotFoundError(f"{path}: no such image folder or generator file")
    return [{"source": "ganbench eval", "scored": scored, **row} for row in rows]
