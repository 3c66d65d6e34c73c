"""The dataset registry: where each dataset's files live and how their real format decodes.

Each dataset reads its own on-disk format and yields uint8 N×C×S×S chunks already at the
run's size and channels (`Preprocess`); `ganbench.data.cache` stores them once on disk.

    fashion-mnist, mnist  LeCun's IDX files (.gz or not), torchvision's layout accepted
    cifar10               cifar-10-batches-py/ python pickles (data_batch_1..5, test_batch)
    celeba                img_align_celeba/*.jpg (+ list_eval_partition.txt when present)
    image-folder          any folder tree of jpg/png/… photos (seed 000's Zalando crawl)
    fake                  smooth random blobs for tests: no files at all

Photo folders are decoded with PIL and resized per image, in threads (PIL releases the GIL
while decoding). `resize='center_crop'` is seed 002's `Resize(S)` + `CenterCrop(S)`;
`'squash'` resizes to S×S ignoring the aspect ratio, as Keras' `image_dataset_from_directory`
(seed 000) and `cv2.resize` (seed 003) do.
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

import numpy as np

from ganbench.config import ConfigError, did_you_mean

if TYPE_CHECKING:  # torch, PIL and torchvision load when a dataset is decoded, not on import
    import torch

Chunk = tuple[np.ndarray, np.ndarray]  # (uint8 n×C×S×S images, int64 n labels; −1 = unlabelled)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
HOLDOUT_EVERY = 10  # folders without an official split hold out 1 file in 10 (by path hash) as 'test'
DEBIAN_DIRS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}


class DataNotFoundError(FileNotFoundError):
    """The dataset's files are nowhere we looked; the message lists where and how to get them."""


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ganbench"


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

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzipped or not, into a numpy array."""
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


def _fit_chunks(images: np.ndarray, labels: np.ndarray, prep: Preprocess, chunk: int = 4096) -> Iterator[Chunk]:
    """Square array images → prep's size and channels, a chunk at a time (bounded memory)."""
    import torch

    for i in range(0, len(images), chunk):
        part = fit_images(torch.from_numpy(np.array(images[i : i + chunk])), prep.size, prep.channels)  # a writable copy
        yield part.numpy(), labels[i : i + chunk]


# --- Photo folders ----------------------------------------------------------------------------

def _eight_bit(img: Any) -> Any:
    """16-bit (and 32-bit integer) gray images scaled to 8 bits. PIL's convert("L") clips them
    at 255, which turns a 16-bit PNG white."""
    if img.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        return img
    from PIL import Image

    array = np.asarray(img).astype(np.float64)
    top = 65535.0 if img.mode.startswith("I;16") or array.max() > 255 else 255.0
    return Image.fromarray(np.clip(np.round(array * 255.0 / top), 0, 255).astype(np.uint8))


def decode_photo(path: Path, prep: Preprocess) -> np.ndarray:
    """One photo → uint8 C×S×S (raises on unreadable files)."""
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


# --- The registry -----------------------------------------------------------------------------

class Dataset:
    """A dataset: where its files are, which files make a split, how they decode."""

    name: str = ""
    summary: str = ""
    splits: tuple[str, ...] = ("train", "test")
    cacheable: bool = True
    how_to_get: str = ""
    # Knobs this dataset's images call for, used unless a preset, base, hack or --set gives them.
    net_defaults: dict[str, Any] = {}
    net_description: str = ""

    def locate(self, data_root: str | os.PathLike | None, download: bool = True) -> Path:
        """The directory holding the files (downloading where torchvision can and `download`);
        raises DataNotFoundError saying where it looked."""
        raise NotImplementedError

    def sources(self, root: Path, split: str) -> list[Path]:
        """The files of `split` (their paths, sizes and mtimes key the cache)."""
        raise NotImplementedError

    def decode(self, root: Path, split: str, prep: Preprocess, log: DecodeLog) -> Iterator[Chunk]:
        raise NotImplementedError

    def describe_net_defaults(self, knobs: dict[str, Any] | None = None) -> str:
        """'cifar10: the Radford 32-px colour net (arch=radford image_size=32 channels=3)' for the
        given (default: all) network defaults of this dataset."""
        chosen = self.net_defaults if knobs is None else knobs
        return f"{self.name}: {self.net_description} ({' '.join(f'{k}={v}' for k, v in chosen.items())})"

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ConfigError(f"dataset '{self.name}' has no split '{split}'{did_you_mean(split, self.splits)}; "
                              f"splits: {list(self.splits)}")

    def search_roots(self, data_root: str | os.PathLike | None) -> list[Path]:
        roots = [Path(data_root)] if data_root else []
        if os.environ.get("GANBENCH_DATA"):
            roots.append(Path(os.environ["GANBENCH_DATA"]))
        return roots + [cache_dir()] + ([DEBIAN_DIRS[self.name]] if self.name in DEBIAN_DIRS else [])

    def not_found(self, searched: list[Path], download_error: str) -> DataNotFoundError:
        places = "\n".join(f"  - {d}" for d in searched)
        return DataNotFoundError(f"{self.name} not found. Looked in:\n{places}\n"
                                 f"  - torchvision download into {cache_dir()}: {download_error}\n{self.how_to_get}")


class FileSetDataset(Dataset):
    """Datasets whose splits are fixed file names (IDX, CIFAR pickles), downloadable by torchvision."""

    files: dict[str, tuple[str, ...]] = {}
    subdirs: tuple[str, ...] = ()
    torchvision_class = ""

    def find(self, directory: Path, name: str) -> Path | None:
        for candidate in (directory / (name + ".gz"), directory / name):
            if candidate.is_file():
                return candidate
        return None

    def locate(self, data_root: str | os.PathLike | None, download: bool = True) -> Path:
        searched = [root / sub for root in self.search_roots(data_root) for sub in ("", *self.subdirs)]
        names = [name for names in self.files.values() for name in names]
        for directory in searched:
            if all(self.find(directory, name) for name in names):
                return directory
        download_error = "not attempted"
        if download and self.torchvision_class:
            try:
                return self.download()
            except Exception as err:  # offline, proxy, disk: all mean "not here"
                download_error = f"{type(err).__name__}: {err}"
        raise self.not_found(searched, download_error)

    def download(self) -> Path:
        import torchvision.datasets

        cls = getattr(torchvision.datasets, self.torchvision_class)
        for train in (True, False):
            cls(str(cache_dir()), train=train, download=True)
        return cache_dir() / self.subdirs[-1]

    def sources(self, root: Path, split: str) -> list[Path]:
        self.check_split(split)
        return [self.find(root, name) for name in self.files[split]]


class IdxDataset(FileSetDataset):
    splits = ("train", "test")

    def decode(self, root: Path, split: str, prep: Preprocess, log: DecodeLog) -> Iterator[Chunk]:
        image_file, label_file = self.sources(root, split)
        images, labels = read_idx(image_file), read_idx(label_file).astype(np.int64)
        if images.ndim != 3 or len(images) != len(labels):
            raise ValueError(f"{image_file}: expected N×H×W images and N labels, got {images.shape}, {labels.shape}")
        yield from _fit_chunks(images[:, None], labels, prep)


class FashionMnist(IdxDataset):
    name, summary = "fashion-mnist", "Zalando's Fashion-MNIST, 70 000 28×28 gray clothes (IDX)"
    files = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    subdirs, torchvision_class = ("fashion-mnist", "FashionMNIST/raw"), "FashionMNIST"
    how_to_get = ("Get it with `apt-get install dataset-fashion-mnist` (Debian; files land in "
                  "/usr/share/datasets/fashion-mnist), or download the four .gz files from "
                  "https://github.com/zalandoresearch/fashion-mnist and pass --data-root DIR (or set GANBENCH_DATA).")


class Mnist(IdxDataset):
    name, summary = "mnist", "LeCun's MNIST digits, 70 000 28×28 gray (IDX)"
    files = FashionMnist.files
    subdirs, torchvision_class = ("mnist", "MNIST/raw"), "MNIST"
    how_to_get = ("Download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
                  "t10k-labels-idx1-ubyte.gz (e.g. from https://ossci-datasets.s3.amazonaws.com/mnist/) into "
                  "DIR/mnist and pass --data-root DIR (or set GANBENCH_DATA).")


class Cifar10(FileSetDataset):
    name, summary = "cifar10", "CIFAR-10, 60 000 32×32 colour images in 10 classes (python pickles)"
    files = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
    subdirs, torchvision_class = ("cifar-10-batches-py",), "CIFAR10"
    net_defaults, net_description = {"arch": "radford", "image_size": 32, "channels": 3}, "the Radford 32-px colour net"
    how_to_get = ("Download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extract it "
                  "into DIR (giving DIR/cifar-10-batches-py/) and pass --data-root DIR (or set GANBENCH_DATA).")

    def decode(self, root: Path, split: str, prep: Preprocess, log: DecodeLog) -> Iterator[Chunk]:
        for path in self.sources(root, split):
            yield from _fit_chunks(*read_cifar_batch(path), prep)


class CelebA(Dataset):
    name, summary = "celeba", "CelebA aligned faces, 202 599 178×218 colour JPEGs"
    splits = ("train", "valid", "test")
    net_defaults, net_description = {"arch": "radford", "image_size": 64, "channels": 3}, "the Radford 64-px colour net"
    how_to_get = ("Download img_align_celeba.zip (and list_eval_partition.txt for the official split) from "
                  "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, extract it into DIR/celeba/ (giving "
                  "DIR/celeba/img_align_celeba/*.jpg) and pass --data-root DIR (or set GANBENCH_DATA). Without "
                  f"the partition file, 1 image in {HOLDOUT_EVERY} (by file-name hash) is the 'test' split.")
    partition_codes = {"train": "0", "valid": "1", "test": "2"}

    def locate(self, data_root: str | os.PathLike | None, download: bool = True) -> Path:
        searched = [root / sub for root in self.search_roots(data_root) for sub in ("", "celeba")]
        for directory in searched:
            if (directory / "img_align_celeba").is_dir():
                return directory
        download_error = "not attempted"
        if download:
            try:
                import torchvision.datasets

                torchvision.datasets.CelebA(str(cache_dir()), split="all", download=True)
                return cache_dir() / "celeba"
            except Exception as err:
                download_error = f"{type(err).__name__}: {err}"
        raise self.not_found(searched, download_error)

    def sources(self, root: Path, split: str) -> list[Path]:
        self.check_split(split)
        images = root / "img_align_celeba"
        partition = root / "list_eval_partition.txt"
        if partition.is_file():
            code = self.partition_codes[split]
            names = [line.split()[0] for line in partition.read_text().splitlines()
                     if len(line.split()) == 2 and line.split()[1] == code]
            return [images / name for name in names]
        if split == "valid":
            raise ConfigError(f"celeba split 'valid' needs {partition}; without it only 'train' and 'test' exist")
        return holdout_split(list_photos(images), images, split)

    def decode(self, root: Path, split: str, prep: Preprocess, log: DecodeLog) -> Iterator[Chunk]:
        files = self.sources(root, split)
        yield from decode_photos(files, [-1] * len(files), prep, log)


class ImageFolder(Dataset):
    name, summary = "image-folder", "any folder tree of jpg/png/… photos, e.g. seed 000's Zalando crawl"
    how_to_get = ("Pass the folder with --data-root DIR (or set GANBENCH_DATA=DIR). Every image under it is used, "
                  "recursively; the first-level sub-folder names are the labels, and 1 image in "
                  f"{HOLDOUT_EVERY} (by path hash) is the 'test' split.")

    def locate(self, data_root: str | os.PathLike | None, download: bool = True) -> Path:
        roots = [Path(data_root)] if data_root else []
        if os.environ.get("GANBENCH_DATA"):
            roots.append(Path(os.environ["GANBENCH_DATA"]))
        for root in roots:
            if root.is_dir() and list_photos(root):
                return root
        looked = ", ".join(str(r) for r in roots) or "nowhere: neither --data-root nor GANBENCH_DATA is set"
        raise DataNotFoundError(f"image-folder: no images ({', '.join(IMAGE_SUFFIXES)}) found; looked in "
                                f"{looked}. {self.how_to_get}")

    def sources(self, root: Path, split: str) -> list[Path]:
        self.check_split(split)
        return holdout_split(list_photos(root), root, split)

    def decode(self, root: Path, split: str, prep: Preprocess, log: DecodeLog) -> Iterator[Chunk]:
        files = self.sources(root, split)
        classes = sorted({f.relative_to(root).parts[0] for f in files if len(f.relative_to(root).parts) > 1})
        index = {name: i for i, name in enumerate(classes)}
        labels = [index.get(f.relative_to(root).parts[0], -1) for f in files]
        yield from decode_photos(files, labels, prep, log)


class Fake(Dataset):
    name, summary = "fake", "smooth random blobs (deterministic per split) for tests: no files"
    cacheable = False
    size = 1024

    def locate(self, data_root: str | os.PathLike | None, download: bool = True) -> Path:
        return Path(".")

    def sources(self, root: Path, split: str) -> list[Path]:
        self.check_split(split)
        return []

    def decode(self, root: Path, split: str, prep: Preprocess, log: DecodeLog) -> Iterator[Chunk]:
        images, labels = fake_images(split, self.size, prep.size, prep.channels)
        yield images.numpy(), labels.numpy()


def fake_images(split: str, n: int, side: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random blobs (deterministic per split): uint8 n×C×side×side and labels."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0 if split == "train" else 1)
    low = torch.rand(n, channels, 7, 7, generator=gen)
    images = F.interpolate(low, size=(side, side), mode="bilinear", align_corners=False)
    return (images * 255).round().to(torch.uint8), torch.randint(0, 10, (n,), generator=gen)


DATASETS: dict[str, Dataset] = {d.name: d for d in (FashionMnist(), Mnist(), Cifar10(), CelebA(), ImageFolder(), Fake())}


def get_dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset '{name}'{did_you_mean(name, DATASETS)}; choose from {sorted(DATASETS)}")
    return DATASETS[name]
