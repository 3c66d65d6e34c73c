import gzip

import numpy as np
import pytest
import torch

from ganbench.data import datasets, sampler as data
from ganbench.config import TrainConfig
from ganbench.data.sampler import BatchSampler, load_labelled
from ganbench.data.datasets import DataNotFoundError
from ganbench.data.formats import fit_images, read_idx

from conftest import write_fashion_mnist_fixture, write_idx


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / ("x.idx.gz" if gz else "x.idx"), array, gz=gz)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    assert np.array_equal(out, array)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x12\x34\x08\x01" + b"\0" * 8)
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    short = b"\0\0\x08\x01" + (10).to_bytes(4, "big") + b"\0" * 3
    with gzip.open(tmp_path / "short.gz", "wb") as fh:
        fh.write(short)
    with pytest.raises(ValueError, match="holds 3 bytes"):
        read_idx(tmp_path / "short.gz")


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No user data, no Debian package, and an offline torchvision downloader."""
    monkeypatch.delenv("GANBENCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setitem(datasets.DEBIAN_DIRS, "fashion-mnist", tmp_path / "no-debian")

    class Offline:
        def __init__(self, *args, **kwargs):
            raise OSError("network unreachable")

    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", Offline)
    return tmp_path


def test_fashion_mnist_from_data_root(isolated):
    root = write_fashion_mnist_fixture(isolated / "mine")
    images, labels = load_labelled("fashion-mnist", "train", root)
    assert images.shape == (32, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (32,)
    both, _ = load_labelled("fashion-mnist", "train+test", root)
    assert both.shape[0] == 48


def test_search_order_prefers_data_root_then_env(isolated, monkeypatch):
    first = write_fashion_mnist_fixture(isolated / "first")
    second = write_fashion_mnist_fixture(isolated / "second" / "fashion-mnist")
    monkeypatch.setenv("GANBENCH_DATA", str(isolated / "second"))
    fashion = datasets.DATASETS["fashion-mnist"]
    assert fashion.locate(first) == first
    assert fashion.locate(None) == second


def test_missing_data_lists_every_place_tried(isolated):
    with pytest.raises(DataNotFoundError) as err:
        load_labelled("fashion-mnist", "train", isolated / "empty")
    message = str(err.value)
    assert str(isolated / "empty") in message and str(isolated / "no-debian") in message
    assert "apt-get install dataset-fashion-mnist" in message and "network unreachable" in message


def test_sampler_epochs_without_replacement_and_range():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous()
    sampler = BatchSampler(images, batch_size=5, pixel_range=(-1.0, 1.0), device=torch.device("cpu"), seed=3)
    epoch = torch.cat([sampler.next()[:, 0, 0, 0] for _ in range(2)])
    assert sorted(((epoch + 1) / 2 * 255).round().int().tolist()) == list(range(10))
    assert epoch.min() >= -1 and epoch.max() <= 1
    again = BatchSampler(images, 5, (-1.0, 1.0), torch.device("cpu"), seed=3)
    assert torch.equal(again.next(), BatchSampler(images, 5, (-1.0, 1.0), torch.device("cpu"), seed=3).next())


def test_sampler_state_round_trip():
    images = torch.randint(0, 256, (20, 1, 4, 4), dtype=torch.uint8)
    a = BatchSampler(images, 6, (0.0, 1.0), torch.device("cpu"), seed=1)
    a.next()
    state = a.state()
    expected = [a.next() for _ in range(5)]
    b = BatchSampler(images, 6, (0.0, 1.0), torch.device("cpu"), seed=99)
    b.load_state(state)
    assert all(torch.equal(x, b.next()) for x in expected)


def test_fit_images_resizes_and_converts_channels():
    gray = torch.full((2, 1, 28, 28), 200, dtype=torch.uint8)
    out = fit_images(gray, 32, 3)
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.uint8 and int(out.float().mean().round()) == 200


def test_fake_dataset_and_batch_too_large():
    cfg = TrainConfig(dataset="fake")
    images = data.load_images(cfg).images
    assert images.shape[1:] == (1, 28, 28)
    with pytest.raises(Exception, match="batch_size 5000 exceeds"):
        BatchSampler(images, 5000, (0.0, 1.0), torch.device("cpu"), 0)
