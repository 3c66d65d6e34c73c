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

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ganbench.data.formats import (HOLDOUT_EVERY, IMAGE_SUFFIXES, DecodeLog, Preprocess, fit_chunks, decode_photos,
                                   holdout_split, list_photos, read_cifar_batch, read_idx)
from ganbench.errors import ConfigError, Registry, did_you_mean

if TYPE_CHECKING:  # numpy, torch, PIL and torchvision load when a dataset is decoded, not on import
    import torch

    from ganbench.data.formats import Chunk

DEBIAN_DIRS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}


class DataNotFoundError(FileNotFoundError):
    """The dataset's files are nowhere we looked; the message lists where and how to get them."""


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ganbench"


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
        for directory in searched[:1 + len(self.subdirs)] if data_root else ():  # the one the user named
            missing = [name for name in names if not self.find(directory, name)]
            if 0 < len(missing) < len(names):  # part of the set: never another copy found elsewhere instead
                raise DataNotFoundError(f"{self.name}: {directory} (from --data-root) holds {len(names) - len(missing)} "
                                        f"of its {len(names)} files; missing: {', '.join(missing)} (or .gz). "
                                        f"{self.how_to_get}")
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
        images, labels = read_idx(image_file), read_idx(label_file).astype("int64")
        if images.ndim != 3 or len(images) != len(labels):
            raise ValueError(f"{image_file}: expected N×H×W images and N labels, got {images.shape}, {labels.shape}")
        yield from fit_chunks(images[:, None], labels, prep)


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
            yield from fit_chunks(*read_cifar_batch(path), prep)


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


DATASETS: Registry[Dataset] = Registry("dataset", check=lambda name, d: _check_dataset(d))


def _check_dataset(dataset: Dataset) -> None:
    if not dataset.summary or not dataset.splits:
        raise ConfigError(f"dataset '{dataset.name}' needs a summary and at least one split")


def register_dataset(dataset: Dataset) -> Dataset:
    """Add a dataset (an instance of a `Dataset` subclass) under its `name`."""
    return DATASETS.register(dataset.name, dataset)


for _dataset in (FashionMnist(), Mnist(), Cifar10(), CelebA(), ImageFolder(), Fake()):
    register_dataset(_dataset)


def get_dataset(name: str) -> Dataset:
    return DATASETS[name]
