"""A small Fashion-MNIST CNN: the `fmnist` feature extractor's network and its trainer.

The committed weights (`ganbench/weights/fmnist_cnn.pt`, with `fmnist_cnn.json` holding
their sha256 and test accuracy) come from `ganbench classifier train`, which is
deterministic on a given machine and thread count. Its 128-d penultimate layer gives
cheap FID/KID/PR features on CPU, its logits give IS and mode coverage.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ganbench import rundir
from ganbench.batchnorm_folding import fold_batch_norms
from ganbench.process_cache import PROCESS

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
WEIGHTS_PATH = WEIGHTS_DIR / "fmnist_cnn.pt"
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530  # Fashion-MNIST train-set pixel statistics in [0, 1]
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class FashionCNN(nn.Module):
    """28×28 gray → 128-d features → 10 logits (≈ 110 k parameters)."""

    FEATURES = 128
    # What `for_inference` does, named for the caches of features it makes (they differ from the network as
    # trained, and from another arrangement, by float32 rounding): change it when `for_inference` changes.
    INFERENCE_ARRANGEMENT = "batch norms folded, channels-last weights, 2x2 max-pools before ReLUs as maxima"

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv(1, 16), *_conv(16, 16), nn.MaxPool2d(2),  # 16 x 14 x 14
            *_conv(16, 32), *_conv(32, 32), nn.MaxPool2d(2),  # 32 x 7 x 7
            *_conv(32, 64), nn.MaxPool2d(2),  # 64 x 3 x 3
            nn.Flatten(), nn.Linear(64 * 9, self.FEATURES, bias=False), nn.BatchNorm1d(self.FEATURES),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.FEATURES, len(CLASSES)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: float N×1×28×28 in [0, 1]. Returns (features, logits)."""
        features = self.body((x - FMNIST_MEAN) / FMNIST_STD)
        return features, self.head(features)

    def for_inference(self) -> "FashionCNN":
        """The same network arranged for inference, 0.50 s instead of 0.74 s for 5 000 images on a 2-core AMD
        EPYC (AVX2): batch norms folded into the convolutions and the linear layer before them
        (`batchnorm_folding`), convolution weights channels-last (oneDNN's faster layout), and each 2×2
        max-pool moved before the ReLU in front of it (max and ReLU commute, and the ReLU then reads a quarter
        of the values) and made of two element-wise maxima (`PairMax`: torch's CPU `max_pool2d` is 5× slower
        on these shapes). The pooling changes no bit; the folding and layout move features by float32
        rounding (≤ 1e-6 of their largest value; the tests hold them to 2e-6)."""
        arranged = FashionCNN()
        arranged.body = nn.Sequential(*_pool_before_relu(fold_batch_norms(self.body)))
        arranged.head = self.head
        return arranged.eval().requires_grad_(False).to(memory_format=torch.channels_last)


class PairMax(nn.Module):
    """`nn.MaxPool2d(2)` (kernel 2, stride 2, odd edges dropped) as two element-wise maxima of strided
    views: the same values, exactly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        x = x[..., :height, :width]
        columns = torch.maximum(x[..., 0::2], x[..., 1::2])
        return torch.maximum(columns[..., 0::2, :], columns[..., 1::2, :])


def _pool_before_relu(layers: list[nn.Module]) -> list[nn.Module]:
    """Each 2×2 max-pool as `PairMax`, before the ReLU that precedes it."""
    out: list[nn.Module] = []
    for layer in layers:
        if isinstance(layer, nn.MaxPool2d):
            if (layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.ceil_mode) not in (
                    (2, 2, 0, 1, False), ((2, 2), (2, 2), 0, 1, False)):
                raise ValueError(f"no exact fast form of {layer}")
            layer = PairMax()
            if out and isinstance(out[-1], nn.ReLU):
                out.insert(len(out) - 1, layer)
                continue
        out.append(layer)
    return out


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_classifier(path: str | Path = WEIGHTS_PATH, expected_sha256: str | None = None) -> FashionCNN:
    """The trained classifier in eval mode; the file's sha256 is checked against its record."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"classifier weights {path} missing; create them with `ganbench classifier train`")
    expected = expected_sha256 or classifier_record(path).get("sha256")
    stat = path.stat()
    net = FashionCNN()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, expected)
    net.load_state_dict(PROCESS.get("classifier", key, lambda: _verified_state(*key)))
    return net.eval().requires_grad_(False)


def _verified_state(path: str, size: int, mtime_ns: int, expected: str | None) -> dict[str, torch.Tensor]:
    """The weights of `path` after checking their sha256, read once per process per file version
    (a persistent worker evaluates many runs)."""
    actual = sha256_file(path)
    if expected != actual:
        raise ValueError(f"classifier weights {path} have sha256 {actual}, but {expected} was recorded; "
                         "retrain with `ganbench classifier train` or restore the file")
    return torch.load(path, map_location="cpu", weights_only=True)


def classifier_record(path: str | Path = WEIGHTS_PATH) -> dict[str, Any]:
    record = Path(path).with_suffix(".json")
    return rundir.read_json(record) if record.exists() else {}


@torch.no_grad()
def accuracy(net: FashionCNN, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000) -> float:
    net.eval()
    correct = 0
    for i in range(0, len(images), batch):
        _, logits = net(images[i : i + batch].float() / 255)
        correct += (logits.argmax(1) == labels[i : i + batch]).sum().item()
    return correct / len(images)


def train_classifier(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor], *,
                     epochs: int = 8, batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
                     progress: Callable[[int, int, float], None] | None = None) -> tuple[FashionCNN, dict[str, Any]]:
    """Train on uint8 images (N×1×28×28) with random horizontal flips; one-cycle LR; deterministic."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    images, labels = train
    net = FashionCNN()
    steps_per_epoch = len(images) // batch_size
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    start = time.time()
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(images), generator=gen)
        for i in range(steps_per_epoch):
            idx = order[i * batch_size : (i + 1) * batch_size]
            x = images[idx].float() / 255
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            _, logits = net(x)
            loss = F.cross_entropy(logits, labels[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if progress:
            progress(epoch + 1, epochs, loss.item())
    net.eval()
    info = {"test_accuracy": accuracy(net, *test), "epochs": epochs, "batch_size": batch_size, "lr": lr,
            "seed": seed, "train_images": len(images), "test_images": len(test[0]),
            "train_seconds": round(time.time() - start, 1), "torch_threads": torch.get_num_threads()}
    return net, info


def save_classifier(net: FashionCNN, info: dict[str, Any], path: str | Path = WEIGHTS_PATH) -> dict[str, Any]:
    """Write the weights and a JSON record of their sha256, accuracy and training settings."""
    path = Path(path)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    rundir.atomic_write(path, lambda tmp: torch.save(state, tmp))
    record = {**info, "sha256": sha256_file(path), "file": path.name}
    rundir.write_json(path.with_suffix(".json"), record)
    return record
