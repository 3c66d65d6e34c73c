"""Scoring images ganbench did not train (`ganbench eval DIR` or `ganbench eval G.pt`), with the same
metrics, reference sets and provenance as a run's: what `fidelity --input1 DIR` does, plus the rows.

- an image folder: every .png/.jpg/.jpeg/.bmp/.webp file in it (sorted, not recursive), converted to
  the reference's channels and, when its size differs, resized to the reference's side (antialiased
  bilinear, as ganbench's photo datasets), then uint8;
- a generator file: TorchScript (`torch.jit.save`) or a `torch.export` program (`.pt2`) mapping z
  (N × latent_dim) to images N × C × H × W in `pixel_range`: torch-fidelity draws its latents as for
  a run. A `.pt2` is loaded without unpickling anything (`export_archive.py`: one holding pickled or
  compiled parts is refused); a TorchScript file can run code when loaded: score only ones you trust.

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
from ganbench.rundir import REEVALUATION
from ganbench.metrics.export_archive import load_exported_program
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
    `torch.export` program (its train/eval mode fixed when it was exported: `.eval()` leaves it as
    it is); anything else TorchScript (`torch.jit.save`; deprecated in torch 2.14, its warning
    silenced here: the file is the user's, not ours to change)."""

    def __init__(self, path: Path, device: torch.device) -> None:
        super().__init__()
        self.exported = path.suffix == ".pt2"
        if self.exported:
            self.net = load_exported_program(path).to(device)
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            try:
                self.net = torch.jit.load(str(path), map_location=device)
            except RuntimeError as err:
                raise MetricError(f"{path}: not a TorchScript generator (torch.jit.load: {err}); a .pt2 file is read "
                                  "as a torch.export program") from None

    def train(self, mode: bool = True) -> "ScriptedGenerator":
        self.training = mode
        if not self.exported:  # an exported program refuses train()/eval(): its mode is the exported one
            self.net.train(mode)
        return self

    @property
    def kind(self) -> str:
        return "torch.export program" if self.exported else "TorchScript generator"

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


PROBE_IMAGES = 16  # the first batch a generator is checked on
RANGE_SLACK = 1e-3  # float rounding at a tanh's or sigmoid's ends


def _error_line(err: BaseException) -> str:
    """The line of a (TorchScript) traceback that says what went wrong: its last non-empty one."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def checked_generator(path: Path, net: torch.nn.Module, cfg: TrainConfig, reference: Reference,
                      device: torch.device, range_declared: bool) -> tuple[TrainConfig, str | None]:
    """Run the generator on a first batch before scoring it: a latent size it does not take, or images
    of another shape, are a two-line error naming the knob to set; images outside the declared pixel
    range are refused, except that when no range was declared (`range_declared` False: neither
    data_range nor output_activation set) images in [−1, 1] with negative values are taken as
    [−1, 1] (a tanh generator) and said. Returns the config to score with and that note, or None."""
    gen = torch.Generator().manual_seed(cfg.seed)  # a probe only: the scored latents are torch-fidelity's
    z = torch.randn(PROBE_IMAGES, cfg.latent_dim, generator=gen) if cfg.latent_dist == "gaussian" else \
        torch.rand(PROBE_IMAGES, cfg.latent_dim, generator=gen).mul_(2).sub_(1)
    try:
        with torch.no_grad():
            images = net(z.to(device)).float()
    except Exception as err:  # TorchScript raises its interpreter's errors: say the one line that matters
        raise MetricError(f"{path}: the generator does not take z of {PROBE_IMAGES} × {cfg.latent_dim} "
                          f"({_error_line(err)});\nset its latent size with --set latent_dim=N (and "
                          "--set latent_dist=gaussian|uniform as it was trained)") from None
    want = (PROBE_IMAGES, reference.channels, reference.side, reference.side)
    if tuple(images.shape) != want:
        raise MetricError(f"{path}: the generator made images of shape {tuple(images.shape)}, the reference "
                          f"({reference.dataset}) needs N × {want[1]} × {want[2]} × {want[3]};\nchoose the dataset "
                          "with --set dataset=NAME (and its size with --set image_size=N)")
    low, high = float(images.min()), float(images.max())
    declared_low, declared_high = cfg.pixel_range
    if declared_low - RANGE_SLACK <= low and high <= declared_high + RANGE_SLACK:
        return cfg, None
    if not range_declared and -1 - RANGE_SLACK <= low and high <= 1 + RANGE_SLACK:
        return cfg.replace(data_range="-1_1"), (f"{path}: its first {PROBE_IMAGES} images lie in [{low:.3g}, "
                                                f"{high:.3g}]: scored as pixels in [-1, 1] (--set data_range=0_1 "
                                                "to refuse instead)")
    raise MetricError(f"{path}: its first {PROBE_IMAGES} images lie in [{low:.3g}, {high:.3g}], outside the "
                      f"declared pixel range [{declared_low:g}, {declared_high:g}];\ndeclare the generator's range "
                      "with --set data_range=0_1 or --set data_range=-1_1")


def evaluate_external(path: str | Path, metrics: str, reference: Reference, cfg: TrainConfig, samples: int,
                      device: torch.device, range_declared: bool = True) -> list[dict[str, Any]]:
    """Rows for an image folder or a generator file (TorchScript or `.pt2`) at `path`, against `reference`; `cfg` gives
    the latent size and distribution and the pixel range of a generator (checked on a first batch,
    `checked_generator`; `range_declared` False lets it detect a [−1, 1] generator)."""
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
        net = ScriptedGenerator(path, device).eval()
        cfg, note = checked_generator(path, net, cfg, reference, device, range_declared)
        rows = evaluate(FidelityGenerator(net, cfg), names, reference, samples=samples, seed=cfg.seed, device=device)
        scored = {"kind": net.kind, "path": str(path.resolve()), "images": samples,
                  "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "latent": cfg.latent_dist,
                  "latent_dim": cfg.latent_dim, "pixel_range": list(cfg.pixel_range),
                  **({"note": note} if note else {})}
    else:
        raise FileNotFoundError(f"{path}: no such image folder or generator file")
    return [{"source": REEVALUATION, "scored": scored, **row} for row in rows]
