"""The DCGAN family, built from a `TrainConfig`: torch modules for the layer plan in `architecture.py`
(which also gives the same networks' sizes without torch).

Two families share one builder; they differ only in where the spatial pyramid starts:

- `dcgan28` — seed 001's Fashion-MNIST DCGAN: z → (FC 512) → FC 7·7·2w → 7 → 14 → 28.
- `radford` — Radford et al.'s DCGAN: z → (FC) → FC 4·4·cw → 4 → 8 → 16 → 32 (→ 64),
  channels halving at each step, like pytorch/examples' `ngf*8 x 4 x 4` net at 64 px
  (seed 002).

`g_start_side` moves the start (seed 000: 8 → 16 → 32 → 64) and `g_output_layer='conv'`
adds a hidden block at full size followed by a stride-1 output conv (seeds 000, 003).
G's channels halve per level from at most 8·width and never go below width; D mirrors
G's resampling levels with channels doubling from its width, at most 8·width.

Every architectural knob is honoured: kernel 4 or 5 (both give exact sizes), strided vs
pooled resampling, batch norm and its position, G and D activations, D's two-conv blocks
and pooled head, D dropout, hidden FC layers, output activation, init. D returns logits
(use `BCEWithLogitsLoss`).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from ganbench.architecture import discriminator_layers, generator_layers
from ganbench.config import TrainConfig


class Generator(nn.Module):
    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(*generator_layers(cfg, TORCH_KIT))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class RunDropout(nn.Module):
    """Dropout whose masks come from the run's own generator (`generator`, set by the trainer),
    not the global RNG, so runs trained side by side in one process draw what each would draw
    alone. On the CPU it is bit-identical to `nn.Dropout` fed from the same generator state."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty_like(x).bernoulli_(1 - self.p, generator=self.generator).div_(1 - self.p)
        return x * keep


class MinibatchStd(nn.Module):
    """Karras et al. 2018, §3: the standard deviation of each feature over the batch, averaged
    into one number and appended as a constant feature map, so D can see a batch's variety."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = (x.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:]).to(x.dtype)], 1)


# The layer kit the plan (`architecture.py`) is built with: torch.nn's layers and ganbench's own.
TORCH_KIT = SimpleNamespace(**{name: getattr(nn, name) for name in (
    "Linear", "Conv2d", "ConvTranspose2d", "BatchNorm1d", "BatchNorm2d", "Unflatten", "Upsample", "ZeroPad2d",
    "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "ReLU", "LeakyReLU", "Tanh", "Sigmoid")},
    RunDropout=RunDropout, MinibatchStd=MinibatchStd)


def use_generator(net: nn.Module, generator: torch.Generator) -> None:
    """Make every RunDropout of `net` draw from `generator`."""
    for module in net.modules():
        if isinstance(module, RunDropout):
            module.generator = generator


class Discriminator(nn.Module):
    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(*discriminator_layers(cfg, TORCH_KIT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def init_weights(module: nn.Module, scheme: str) -> None:
    """'normal_002': conv/linear weights ~ N(0, 0.02), BN γ ~ N(1, 0.02), biases 0 (Radford §4)."""
    if scheme == "default":
        return
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build_models(cfg: TrainConfig) -> tuple[Generator, Discriminator]:
    """G and D for `cfg`, initialised by its scheme (uses the global torch RNG: seed first)."""
    net_g, net_d = Generator(cfg), Discriminator(cfg)
    init_weights(net_g, cfg.init)
    init_weights(net_d, cfg.init)
    if cfg.spectral_norm:  # after init: W is normalised by its largest singular value at every forward
        apply_spectral_norm(net_d)
    return net_g, net_d


def apply_spectral_norm(net: nn.Module) -> None:
    """Miyato et al. 2018: every conv and linear weight divided by its spectral norm, estimated by one
    power iteration per training forward (u and v are buffers, so checkpoints keep them)."""
    for module in list(net.modules()):
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(module)
