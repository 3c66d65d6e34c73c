"""Decode a dataset split once into a uint8 cache on disk; later starts read the cache.

A cache entry is a directory `<name>/<split>-<S>px-<C>ch-<resize>-<key>/` holding

    images.u8   the raw uint8 N×C×S×S array (memory-mappable as it is)
    labels.npy  int64 labels (−1 where the dataset has none)
    meta.json   shape, the images' sha256 (content hash), decode time, skipped files, sources

`key` hashes the dataset name, split, preprocessing and every source file's path, size
and mtime, so replacing a file rebuilds the entry. Building holds a file lock, so parallel
runs of a sweep decode a split once. A split bigger than the memory budget is returned
as a read-only memory map instead of being loaded whole (processes then share the page
cache instead of each holding a copy).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ganbench.data.datasets import Dataset, cache_dir, get_dataset
from ganbench.data.formats import DecodeLog, Preprocess

if TYPE_CHECKING:  # numpy and torch load when a split is built or loaded (`describe` is used by --help)
    import numpy as np
    import torch


class DataCacheWarning(UserWarning):
    """A dataset cache entry was damaged and rebuilt."""


DATA_CACHE_VERSION = 1  # bump when a decoder's output changes, so old entries are not reused
DEFAULT_MEMORY_BUDGET_MB = 4096


@dataclass
class LoadedSplit:
    images: torch.Tensor | np.ndarray  # a tensor in memory, or a read-only np.memmap
    labels: np.ndarray
    info: dict[str, Any]  # provenance and cost: cache hit, content hash, load time, memory


def dataset_cache_dir() -> Path:
    return Path(os.environ.get("GANBENCH_DATASET_CACHE") or cache_dir() / "datasets")


def resident_mb() -> float | None:
    """This process's resident memory in MiB (Linux /proc), None where unavailable."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def source_fingerprint(root: Path, files: list[Path]) -> list[tuple[str, int, int]]:
    out = []
    for path in files:
        st = path.stat()
        out.append((path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path),
                    st.st_size, st.st_mtime_ns))
    return out


def entry_key(dataset: Dataset, root: Path, split: str, prep: Preprocess) -> str:
    files = [f for part in split.split("+") for f in dataset.sources(root, part)]
    parts = {"version": DATA_CACHE_VERSION, "dataset": dataset.name, "split": split, "size": prep.size,
             "channels": prep.channels, "resize": prep.resize, "root": str(root.resolve()),
             "sources": source_fingerprint(root, files)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX); elsewhere a no-op."""
    try:
        import fcntl
    except ImportError:  # Windows: one process at a time is the user's job
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def decode_split(dataset: Dataset, root: Path, split: str, prep: Preprocess, log: DecodeLog) -> Iterator[tuple]:
    for part in split.split("+"):
        dataset.check_split(part)
        yield from dataset.decode(root, part, prep, log)


def build_entry(dataset: Dataset, root: Path, split: str, prep: Preprocess, entry: Path,
                progress: Callable[[int, int], None] | None) -> None:
    """Decode into a temporary directory, then rename it into place (never a half-written entry)."""
    import numpy as np

    tmp = entry.parent / f".{entry.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log, digest, labels, n = DecodeLog(progress=progress), hashlib.sha256(), [], 0
    started = time.perf_counter()
    try:
        with open(tmp / "images.u8", "wb") as fh:
            for images, chunk_labels in decode_split(dataset, root, split, prep, log):
                data = np.ascontiguousarray(images, dtype=np.uint8)
                fh.write(data)  # the array's buffer, no copies
                digest.update(data)
                labels.append(chunk_labels)
                n += len(data)
        if n == 0:
            raise ValueError(f"{dataset.name} split '{split}' under {root} holds no readable images")
        np.save(tmp / "labels.npy", np.concatenate(labels).astype(np.int64))
        meta = {"dataset": dataset.name, "split": split, "root": str(root), "shape": [n, prep.channels, prep.size,
                prep.size], "resize": prep.resize, "content_sha256": digest.hexdigest(),
                "decode_s": round(time.perf_counter() - started, 3), "skipped": log.skipped,
                "version": DATA_CACHE_VERSION, "created_at": time.time()}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if entry.exists() and not (entry / "meta.json").is_file():  # a damaged entry (no meta): replaced
            shutil.rmtree(entry, ignore_errors=True)
        try:
            os.replace(tmp, entry)
        except OSError:  # built meanwhile where the lock does not hold (NFS): keep that one
            if not (entry / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def prepare(name: str, split: str, prep: Preprocess, data_root: str | os.PathLike | None = None,
            progress: Callable[[int, int], None] | None = None, damaged: Path | None = None) -> tuple[Path | None, bool]:
    """(cache entry, whether it already existed); builds it when missing (or when it is `damaged`, an
    entry `read_entry` refused). None for uncached datasets."""
    dataset = get_dataset(name)
    for part in split.split("+"):
        dataset.check_split(part)
    if not dataset.cacheable:
        return None, False
    root = dataset.locate(data_root)
    entry = dataset_cache_dir() / dataset.name / (
        f"{split}-{prep.size}px-{prep.channels}ch-{prep.resize}-{entry_key(dataset, root, split, prep)}")
    if (entry / "meta.json").is_file() and entry != damaged:
        return entry, True
    with file_lock(entry.parent / f"{entry.name}.lock"):
        if entry == damaged and (entry / "meta.json").is_file():  # still the damaged one: set it aside
            (entry / "meta.json").unlink()
        if (entry / "meta.json").is_file():  # another process built it while we waited
            return entry, True
        build_entry(dataset, root, split, prep, entry, progress)
    return entry, False


class DamagedEntry(ValueError):
    """A cache entry that is not what `build_entry` writes (the message names the file and what is wrong)."""


def read_entry(entry: Path, memory_budget_mb: float | None) -> tuple[Any, Any, dict[str, Any]]:
    """(images, labels, meta) of a cache entry, each file checked: meta.json a record with a 4-number
    shape and a content hash, images.u8 of that size (and, loaded into memory, of that hash: the
    provenance names the bytes trained on), labels.npy one int64 per image, never unpickled.
    Memory-mapped splits (too big to hash at every start) are marked unverified."""
    import numpy as np

    try:
        meta = json.loads((entry / "meta.json").read_text())
        shape = tuple(int(n) for n in meta["shape"])
        expected = str(meta["content_sha256"])
        if len(shape) != 4 or min(shape) < 1:
            raise ValueError(f"shape {shape}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DamagedEntry(f"{entry / 'meta.json'}: not a cache record ({type(err).__name__}: {err})") from None
    path, nbytes = entry / "images.u8", int(np.prod(shape))
    size = path.stat().st_size if path.is_file() else None
    if size != nbytes:
        raise DamagedEntry(f"{path}: {size} bytes for {shape}, expected {nbytes}")
    try:
        labels = np.load(entry / "labels.npy", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DamagedEntry(f"{entry / 'labels.npy'}: unreadable ({err})") from None
    if labels.dtype != np.int64 or labels.shape != (shape[0],):
        raise DamagedEntry(f"{entry / 'labels.npy'}: {labels.dtype} of shape {labels.shape}, expected {shape[0]} int64")
    if memory_budget_mb is not None and nbytes > memory_budget_mb * 2**20:
        return np.memmap(path, dtype=np.uint8, mode="r", shape=shape), labels, {**meta, "content_verified": False}
    images = np.fromfile(path, dtype=np.uint8).reshape(shape)
    if hashlib.sha256(images.data).hexdigest() != expected:
        raise DamagedEntry(f"{path}: its bytes do not have the sha256 meta.json records (changed after it was built)")
    return images, labels, {**meta, "content_verified": True}


def load_split(name: str, split: str, prep: Preprocess, data_root: str | os.PathLike | None = None,
               memory_budget_mb: float | None = DEFAULT_MEMORY_BUDGET_MB,
               progress: Callable[[int, int], None] | None = None) -> LoadedSplit:
    """A split at `prep`'s size: from the cache (built on first use), in memory or memory-mapped.

    `memory_budget_mb=None` always loads into memory.
    """
    import numpy as np

    started, rss_before = time.perf_counter(), resident_mb()
    entry, hit = prepare(name, split, prep, data_root, progress)
    if entry is None:  # uncached (fake): decode straight into memory
        log = DecodeLog()
        chunks = list(decode_split(get_dataset(name), Path("."), split, prep, log))
        import torch

        images = torch.from_numpy(np.concatenate([c[0] for c in chunks]))
        labels = np.concatenate([c[1] for c in chunks])
        info: dict[str, Any] = {"cache": "off", "content_sha256": None, "skipped": log.skipped}
    else:
        try:
            images, labels, meta = read_entry(entry, memory_budget_mb)
        except DamagedEntry as err:  # a derived file: rebuilt from the dataset, and said
            warnings.warn(f"dataset cache entry {entry} is damaged ({err}); rebuilding it", DataCacheWarning)
            entry, hit = prepare(name, split, prep, data_root, progress, damaged=entry)
            images, labels, meta = read_entry(entry, memory_budget_mb)
        if not isinstance(images, np.memmap):
            import torch

            images = torch.from_numpy(images)
        info = {"cache": "hit" if hit else "miss", "cache_path": str(entry), "content_sha256": meta["content_sha256"],
                "content_verified": meta["content_verified"], "decode_s": None if hit else meta.get("decode_s"),
                "skipped": meta.get("skipped", [])}
    rss_after = resident_mb()
    info.update(dataset=name, split=split, shape=list(images.shape), resize=prep.resize,
                mode="memory-mapped" if isinstance(images, np.memmap) else "in-memory",
                dataset_mb=round(images.nbytes / 2**20, 1), load_s=round(time.perf_counter() - started, 3),
                resident_mb=rss_after, resident_delta_mb=(round(rss_after - rss_before, 1)
                                                          if rss_after is not None and rss_before is not None else None))
    return LoadedSplit(images, labels, info)


def describe(info: dict[str, Any]) -> str:
    """One line for the console: what was loaded, from where, how fast, how much memory."""
    n, c, s, _ = info["shape"]
    cache = {"hit": "from the cache", "miss": f"decoded in {info.get('decode_s')} s and cached",
             "off": "generated"}[info["cache"]]
    rss = f"{info['resident_mb']:.0f} MiB" if info.get("resident_mb") is not None else "unavailable"
    skipped = f"; {len(info['skipped'])} unreadable file(s) skipped" if info.get("skipped") else ""
    return (f"{info['dataset']} {info['split']}: {n}×{c}×{s}×{s} uint8 ({info['dataset_mb']} MiB, {info['mode']}), "
            f"{cache}, loaded in {info['load_s']} s; process resident memory {rss}{skipped}")
