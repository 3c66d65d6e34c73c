"""Dataset readers on fixtures written in each real on-disk format, and the decoded cache."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from ganbench.data import cache as datacache, datasets, formats
from ganbench.config import ConfigError, TrainConfig
from ganbench.data.sampler import BatchSampler, load_images
from ganbench.data.cache import load_split
from ganbench.data.datasets import DataNotFoundError, Preprocess, read_cifar_batch

from conftest import write_celeba_fixture, write_cifar_fixture, write_idx, write_image_folder_fixture


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """A fresh dataset cache, no GANBENCH_DATA and offline torchvision downloaders."""
    monkeypatch.setenv("GANBENCH_DATASET_CACHE", str(tmp_path / "dataset-cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("GANBENCH_DATA", raising=False)

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    import torchvision.datasets

    for name in ("MNIST", "FashionMNIST", "CIFAR10", "CelebA"):
        monkeypatch.setattr(torchvision.datasets, name, offline)
    return tmp_path / "dataset-cache"


def test_cifar10_pickles_decode_in_channel_planes(tmp_path, cache):
    root = write_cifar_fixture(tmp_path / "data")
    raw, labels = read_cifar_batch(root / "cifar-10-batches-py" / "data_batch_1")
    loaded = load_split("cifar10", "train", Preprocess(32, 3), root)
    assert loaded.images.shape == (20, 3, 32, 32) and loaded.images.dtype == torch.uint8
    # The pickle stores 1024 red, then 1024 green, then 1024 blue bytes per image, row-major.
    assert torch.equal(loaded.images[:4], torch.from_numpy(raw))
    assert np.array_equal(loaded.labels[:4], labels)
    assert load_split("cifar10", "test", Preprocess(32, 3), root).images.shape[0] == 4
    gray64 = load_split("cifar10", "train", Preprocess(64, 1), root).images
    assert gray64.shape == (20, 1, 64, 64)


def test_mnist_idx_in_its_subfolder(tmp_path, cache):
    directory = tmp_path / "data" / "mnist"
    directory.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 10), ("t10k", 6)):
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))
    loaded = load_split("mnist", "train+test", Preprocess(28, 1), tmp_path / "data")
    assert loaded.images.shape == (16, 1, 28, 28) and loaded.labels.shape == (16,)


def test_celeba_center_crop_matches_seed_002_transform(tmp_path, cache):
    root = write_celeba_fixture(tmp_path / "data", n=20)
    train = load_split("celeba", "train", Preprocess(64, 3, "center_crop"), root)
    test = load_split("celeba", "test", Preprocess(64, 3, "center_crop"), root)
    assert train.images.shape[1:] == (3, 64, 64) and train.images.shape[0] + test.images.shape[0] == 20
    assert test.images.shape[0] >= 1 and (train.labels == -1).all()
    # Seed 002: transforms.Resize(64) (shorter side) + CenterCrop(64) on the PIL image.
    first = sorted((root / "celeba" / "img_align_celeba").glob("*.jpg"))
    name = next(p for p in first if not formats.in_holdout(p.name))
    expected = transforms.Compose([transforms.Resize(64), transforms.CenterCrop(64), transforms.PILToTensor()])(
        Image.open(name).convert("RGB"))
    assert torch.equal(train.images[0], expected)


def test_celeba_official_partition_file(tmp_path, cache):
    root = write_celeba_fixture(tmp_path / "data", n=20, partition=True)
    sizes = {split: load_split("celeba", split, Preprocess(32, 3), root).images.shape[0]
             for split in ("train", "valid", "test")}
    assert sizes == {"train": 14, "valid": 3, "test": 3}


def test_image_folder_nested_mixed_sizes_skips_the_corrupt_file(tmp_path, cache):
    root = write_image_folder_fixture(tmp_path / "zalando")
    with pytest.warns(UserWarning, match=r"skipping unreadable image .*broken\.jpg"):
        both = load_split("image-folder", "train+test", Preprocess(64, 3, "squash"), root)
    assert both.images.shape == (24, 3, 64, 64)  # 2 classes × 12; broken.jpg and notes.txt left out
    assert sorted(set(both.labels.tolist())) == [0, 1]  # first-level folders are the labels
    assert [path for path, _ in both.info["skipped"]] == [str(root / "shirt" / "broken.jpg")]
    # Squash: the whole 606×875 photo is resized to 64×64, unlike a centre crop.
    with pytest.warns(UserWarning, match="broken"):
        cropped = load_split("image-folder", "train+test", Preprocess(64, 3, "center_crop"), root)
    assert not torch.equal(both.images, cropped.images)


def test_second_load_is_a_cache_hit_without_decoding(tmp_path, cache, monkeypatch):
    root = write_image_folder_fixture(tmp_path / "zalando", per_class=3)
    with pytest.warns(UserWarning):
        first = load_split("image-folder", "train", Preprocess(32, 3), root)
    assert first.info["cache"] == "miss" and first.info["content_sha256"]
    calls = []
    original = datasets.ImageFolder.decode
    monkeypatch.setattr(datasets.ImageFolder, "decode", lambda *a: calls.append(1) or original(*a))
    second = load_split("image-folder", "train", Preprocess(32, 3), root)
    assert second.info["cache"] == "hit" and calls == []
    assert torch.equal(first.images, second.images)
    assert second.info["content_sha256"] == first.info["content_sha256"]
    # Another preprocessing is another entry; a changed source file rebuilds.
    with pytest.warns(UserWarning):
        assert load_split("image-folder", "train", Preprocess(64, 3), root).info["cache"] == "miss"
    victim = next(p for p in sorted(root.rglob("*.jpg"))
                  if "broken" not in p.name and not formats.in_holdout(p.relative_to(root).as_posix()))
    Image.new("RGB", (50, 50), "red").save(victim)
    with pytest.warns(UserWarning):
        assert load_split("image-folder", "train", Preprocess(32, 3), root).info["cache"] == "miss"
    assert calls  # decoded again


def test_over_budget_is_memory_mapped_and_batches_are_identical(tmp_path, cache):
    root = write_cifar_fixture(tmp_path / "data", per_batch=8)
    in_memory = load_split("cifar10", "train", Preprocess(32, 3), root, memory_budget_mb=None)
    mapped = load_split("cifar10", "train", Preprocess(32, 3), root, memory_budget_mb=0.01)
    assert isinstance(mapped.images, np.memmap) and mapped.info["mode"] == "memory-mapped"
    assert in_memory.info["mode"] == "in-memory" and mapped.info["cache"] == "hit"
    a = BatchSampler(in_memory.images, 7, (-1.0, 1.0), torch.device("cpu"), seed=5)
    b = BatchSampler(mapped.images, 7, (-1.0, 1.0), torch.device("cpu"), seed=5)
    for _ in range(12):  # crosses epoch boundaries
        assert torch.equal(a.next(), b.next())


def test_load_images_applies_config_and_reports_cost(tmp_path, cache):
    root = write_cifar_fixture(tmp_path / "data")
    cfg = TrainConfig(dataset="cifar10", arch="radford", image_size=32, channels=3, data_limit=9)
    loaded = load_images(cfg, root)
    assert loaded.images.shape == (9, 3, 32, 32) and loaded.info["limited_to"] == 9
    assert loaded.info["load_s"] >= 0 and loaded.info["dataset_mb"] >= 0
    assert loaded.info["resident_mb"] is None or loaded.info["resident_mb"] > 0
    assert "cifar10 train" in datacache.describe(loaded.info)


@pytest.mark.parametrize("name, hint", [("cifar10", "cifar-10-python.tar.gz"), ("celeba", "img_align_celeba.zip"),
                                        ("image-folder", "--data-root"), ("mnist", "t10k-labels-idx1-ubyte.gz")])
def test_missing_dataset_explains_where_to_put_it(tmp_path, cache, name, hint):
    with pytest.raises(DataNotFoundError) as err:
        load_split(name, "train", Preprocess(32, 3), tmp_path / "empty")
    assert hint in str(err.value)
    if name != "image-folder":
        assert "network unreachable" in str(err.value) and str(tmp_path / "empty") in str(err.value)


def test_unknown_dataset_and_split_suggest(cache):
    with pytest.raises(ConfigError, match="did you mean 'celeba'"):
        load_split("celeb", "train", Preprocess(64, 3))
    with pytest.raises(ConfigError, match="did you mean 'test'"):
        load_split("fake", "tset", Preprocess(28, 1))


@pytest.mark.integration
@pytest.mark.parametrize("size", [32, 64])
def test_grayscale_dataset_trains_at_larger_sizes(tmp_path, cache, size):
    from conftest import tiny, write_fashion_mnist_fixture
    from ganbench.training.loop import train

    root = write_fashion_mnist_fixture(tmp_path / "fmnist")
    cfg = tiny(dataset="fashion-mnist", arch="radford", image_size=size, g_fc_hidden=0, d_fc_hidden=0, steps=3)
    status = train(cfg, tmp_path / "run", data_root=root)
    assert status["status"] == "completed" and status["data"]["shape"] == [32, 1, size, size]


def test_entry_built_concurrently_elsewhere_is_kept(tmp_path, cache):
    root = write_cifar_fixture(tmp_path / "data")
    prep = Preprocess(32, 3)
    entry, hit = datacache.prepare("cifar10", "train", prep, root)
    assert not hit
    # Another node finished first (no lock across NFS): building again must not fail.
    cifar = datasets.get_dataset("cifar10")
    datacache.build_entry(cifar, cifar.locate(root), "train", prep, entry, None)
    assert datacache.load_split("cifar10", "train", prep, root).info["cache"] == "hit"


def test_cifar_pickle_that_would_run_code_is_refused(tmp_path, cache):
    import os
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    directory = write_cifar_fixture(tmp_path) / "cifar-10-batches-py"
    with open(directory / "data_batch_1", "wb") as fh:
        pickle.dump({b"data": Payload(), b"labels": [0]}, fh)
    with pytest.raises(ValueError, match=r"data_batch_1 is not a plain CIFAR-10 python batch.*refusing to load"):
        read_cifar_batch(directory / "data_batch_1")
    assert not marker.exists()
    images, labels = read_cifar_batch(directory / "data_batch_2")  # the real format still loads
    assert images.shape == (4, 3, 32, 32) and labels.shape == (4,)


def test_sixteen_bit_png_keeps_its_gray_levels(tmp_path):
    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0 … 65520
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as img:
        assert img.mode.startswith("I")  # PIL reads it as 16/32-bit integer gray
    decoded = formats.decode_photo(tmp_path / "deep.png", Preprocess(64, 1, "squash"))[0]
    assert decoded.min() == 0 and decoded.max() == 255 and len(np.unique(decoded)) > 200  # convert("L") alone: white
    assert abs(int(decoded[32, 0]) - round(ramp[32, 0] / 257)) <= 1
