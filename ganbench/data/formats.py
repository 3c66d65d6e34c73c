"""Decoding the real on-disk formats of the datasets: LeCun's IDX, CIFAR-10's python batches, photo files.

Every decoder yields uint8 N×C×S×S chunks already at the run's size and channels
(`Preprocess`). Photos are decoded with PIL and resized per image, in threads (PIL releases
the GIL while decoding). numpy, torch, PIL and torchvision load when something is decoded (the
dataset registry, which `ganbench --help` loads through the config checks, imports this module).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    import numpy as np
    import torch

    Chunk = tuple[np.ndarray, np.ndarray]  # (uint8 n×C×S×S images, int64 n labels; −1 = unlabelled)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
HOLDOUT_EVERY = 10  # folders without an official split hold out 1 file in 10 (by path hash) as 'test'


@dataclass(frozen=True)
class Preprocess:
    """What every image becomes at decode time."""

    size: int
    channels: int
    resize: str = "center_crop"  # or "squash"


@dataclass
class DecodeLog:
    """Files skipped while decoding, and an optional progress callback (done, total)."""

    skipped: list[tuple[str, str]] = field(default_factory=list)
    progress: Callable[[int, int], None] | None = None


# --- Array formats ----------------------------------------------------------------------------

_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}  # numpy dtype codes


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzipped or not, into a numpy array."""
    import numpy as np

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = raw[4 + 4 * ndim :]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(body) != expected:
        raise ValueError(f"{path}: header says {shape} ({expected} bytes) but the file holds {len(body)} bytes")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


# The only globals a CIFAR-10 python batch refers to: numpy's array reconstruction.
_CIFAR_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                  ("numpy._core.multiarray", "scalar")}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and numpy arrays, and refuses every other global, so a
    booby-trapped file in a data root cannot run code (plain pickle.load would)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _CIFAR_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR-10 batch holds only arrays, "
                                     "lists and bytes")


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 N×3×32×32, int64 labels) from one CIFAR-10 python batch.

    The official format is a pickle. It is read with an unpickler that only rebuilds numpy
    arrays, so a file that would run code is refused with its name, never executed.
    """
    import numpy as np

    try:
        with open(path, "rb") as fh:
            batch = _ArraysOnlyUnpickler(fh, encoding="bytes").load()
    except pickle.UnpicklingError as err:
        raise ValueError(f"{path} is not a plain CIFAR-10 python batch: {err}") from None
    try:
        data, labels = batch[b"data"], batch[b"labels"]
    except (TypeError, KeyError):
        raise ValueError(f"{path} is not a CIFAR-10 python batch (no b'data'/b'labels' entries)") from None
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != data.shape[0]:
        raise ValueError(f"{path}: expected N×3072 pixels and N labels, got {data.shape} and {len(labels)}")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def fit_images(images: torch.Tensor, side: int, channels: int) -> torch.Tensor:
    """Resize (antialiased bilinear) and convert channels of square uint8 images."""
    import torch
    import torch.nn.functional as F

    if images.shape[1] != channels:
        if channels == 3:
            images = images.expand(-1, 3, -1, -1).contiguous()
        else:  # ITU-R 601 luma, as PIL's convert("L")
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images.float() * weights).sum(1, keepdim=True).round().to(torch.uint8)
    if images.shape[-1] != side or images.shape[-2] != side:
        resized = F.interpolate(images.float(), size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        images = resized.round().clamp_(0, 255).to(torch.uint8)
    return images


def fit_chunks(images: np.ndarray, labels: np.ndarray, prep: Preprocess, chunk: int = 4096) -> Iterator[Chunk]:
    """Square array images → prep's size and channels, a chunk at a time (bounded memory)."""
    import numpy as np
    import torch

    for i in range(0, len(images), chunk):
        part = fit_images(torch.from_numpy(np.array(images[i : i + chunk])), prep.size, prep.channels)  # a writable copy
        yield part.numpy(), labels[i : i + chunk]


# --- Photo folders ----------------------------------------------------------------------------

def _eight_bit(img: Any) -> Any:
    """16-bit (and 32-bit integer) gray images scaled to 8 bits. PIL's convert("L") clips them
    at 255, which turns a 16-bit PNG white."""
    import numpy as np

    if img.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        return img
    from PIL import Image

    array = np.asarray(img).astype(np.float64)
    top = 65535.0 if img.mode.startswith("I;16") or array.max() > 255 else 255.0
    return Image.fromarray(np.clip(np.round(array * 255.0 / top), 0, 255).astype(np.uint8))


def decode_photo(path: Path, prep: Preprocess) -> np.ndarray:
    """One photo → uint8 C×S×S (raises on unreadable files)."""
    import numpy as np
    from PIL import Image
    from torchvision.transforms import functional as TF

    with Image.open(path) as img:
        img = _eight_bit(img)
        img = img.convert("RGB" if prep.channels == 3 else "L")
        if prep.resize == "squash":
            img = img.resize((prep.size, prep.size), Image.Resampling.BILINEAR)
        else:
            img = TF.center_crop(TF.resize(img, prep.size), prep.size)
        array = np.asarray(img, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def decode_photos(files: list[Path], labels: list[int], prep: Preprocess, log: DecodeLog,
                  chunk: int = 512) -> Iterator[Chunk]:
    """Decode `files` in threads, in order; an unreadable file is skipped with a warning naming it."""
    import numpy as np

    def one(path: Path) -> np.ndarray | str:
        try:
            return decode_photo(path, prep)
        except Exception as err:  # PIL raises OSError, ValueError, DecompressionBombError, …
            return f"{type(err).__name__}: {err}"

    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(files), chunk):
            decoded = list(pool.map(one, files[start : start + chunk]))
            for path, result in zip(files[start : start + chunk], decoded):
                if isinstance(result, str):  # warn here, in the caller's thread
                    log.skipped.append((str(path), result))
                    warnings.warn(f"skipping unreadable image {path}: {result}", stacklevel=3)
            keep = [i for i, image in enumerate(decoded) if not isinstance(image, str)]
            if keep:
                yield (np.stack([decoded[i] for i in keep]),
                       np.asarray([labels[start + i] for i in keep], dtype=np.int64))
            if log.progress:
                log.progress(min(start + chunk, len(files)), len(files))


def list_photos(root: Path) -> list[Path]:
    """Every image file under `root`, recursively, in a stable (sorted) order."""
    found = [Path(d) / name for d, _, names in os.walk(root) for name in names
             if name.lower().endswith(IMAGE_SUFFIXES)]
    return sorted(found)


def in_holdout(relative: str) -> bool:
    """Stable 1-in-HOLDOUT_EVERY test membership by path hash: adding files moves no others."""
    return int(hashlib.sha1(relative.encode()).hexdigest(), 16) % HOLDOUT_EVERY == 0


def holdout_split(files: list[Path], root: Path, split: str) -> list[Path]:
    return [f for f in files if in_holdout(f.relative_to(root).as_posix()) == (split == "test")]
