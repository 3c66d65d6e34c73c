"""The DCGAN family, built from a `TrainConfig`.

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

import math

import torch
from torch import nn

from ganbench.config import TrainConfig


def pyramid(cfg: TrainConfig) -> tuple[int, list[int]]:
    """(start side, G's hidden channels per level, from the start map to its last hidden map).

    dcgan28 at w=32: (7, [64, 32]) → 7×7×64, 14×14×32, then 28×28×channels.
    radford 64 px at w=64: (4, [512, 256, 128, 64]) → 4×4×512 … 32×32×64, then 64×64×channels.
    seed 003 (radford 64 px, conv output, w=16): (4, [128, 64, 32, 16, 16]).
    """
    g_width, _ = cfg.base_widths
    side = cfg.start_side
    levels = resampling_levels(cfg) + (cfg.g_output_layer == "conv")
    top = 2 ** (min(levels, 4) - 1)
    return side, [g_width * max(top >> i, 1) for i in range(levels)]


def resampling_levels(cfg: TrainConfig) -> int:
    """Stride-2 steps between the start side and the image side."""
    return int(math.log2(cfg.image_size // cfg.start_side))


def d_widths(cfg: TrainConfig) -> list[int]:
    """D's channels per downsampling block: doubling from d_width, at most 8·d_width."""
    _, d_width = cfg.base_widths
    return [d_width * 2 ** min(i, 3) for i in range(resampling_levels(cfg))]


def _activation(name: str, slope: float) -> nn.Module:
    return nn.LeakyReLU(slope, inplace=True) if name == "leaky_relu" else nn.ReLU(inplace=True)


def _norm_act(layers: list[nn.Module], norm: nn.Module | None, act: nn.Module, bn_before_act: bool) -> list[nn.Module]:
    """layers + BN + act in the configured order (BN omitted when `norm` is None)."""
    tail = [act] if norm is None else ([norm, act] if bn_before_act else [act, norm])
    return layers + tail


def _upsample(cfg: TrainConfig, c_in: int, c_out: int) -> list[nn.Module]:
    """Double the side: a stride-2 transposed conv, or nearest upsampling + a 'same' conv."""
    k = cfg.kernel_size
    if cfg.sampling == "strided":
        # k=4: (n−1)·2 − 2 + 4 = 2n;  k=5: (n−1)·2 − 4 + 5 + 1 = 2n.
        return [nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=(k - 1) // 2, output_padding=k % 2)]
    return [nn.Upsample(scale_factor=2, mode="nearest"), *_same_conv(c_in, c_out, k)]


def _same_conv(c_in: int, c_out: int, k: int) -> list[nn.Module]:
    """A stride-1 conv keeping the side; even kernels pad one more on the right/bottom
    (explicitly, since padding='same' with an even kernel copies the input each call)."""
    if k % 2:
        return [nn.Conv2d(c_in, c_out, k, padding=k // 2)]
    return [nn.ZeroPad2d((k // 2 - 1, k // 2, k // 2 - 1, k // 2)), nn.Conv2d(c_in, c_out, k)]


def _downsample(cfg: TrainConfig, c_in: int, c_out: int) -> list[nn.Module]:
    """Halve the side: a stride-2 conv, or a 'same' conv + 2×2 average pooling."""
    k = cfg.kernel_size
    if cfg.sampling == "strided":
        # k=4, p=1 and k=5, p=2 both give ⌊(n − 1)/2⌋ + 1 = n/2 for even n.
        return [nn.Conv2d(c_in, c_out, k, stride=2, padding=(k - 1) // 2)]
    return [*_same_conv(c_in, c_out, k), nn.AvgPool2d(2)]


class Generator(nn.Module):
    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        side, widths = pyramid(cfg)
        bn, before = cfg.g_batch_norm, cfg.bn_position == "before_act"
        layers: list[nn.Module] = []
        features = cfg.latent_dim

        def act() -> nn.Module:
            return _activation(cfg.g_activation, cfg.leaky_slope)

        def drop(block: list[nn.Module]) -> list[nn.Module]:  # ganhacks tip 17: dropout in G's hidden layers
            return block + ([RunDropout(cfg.g_dropout)] if cfg.g_dropout > 0 else [])

        # Hidden FC layer (seed 001: Dense(512) → ReLU → BN); Radford has none.
        if cfg.g_fc_hidden:
            norm = nn.BatchNorm1d(cfg.g_fc_hidden) if bn else None
            layers += drop(_norm_act([nn.Linear(features, cfg.g_fc_hidden)], norm, act(), before))
            features = cfg.g_fc_hidden
        # Project z to the first volume. dcgan28 normalises the flat features like the
        # Keras seed (BatchNorm over 7·7·64 units); radford per channel like pytorch/examples.
        flat = side * side * widths[0]
        if cfg.arch == "dcgan28":
            norm = nn.BatchNorm1d(flat) if bn else None
            layers += drop(_norm_act([nn.Linear(features, flat)], norm, act(), before))
            layers.append(nn.Unflatten(1, (widths[0], side, side)))
        else:
            norm = nn.BatchNorm2d(widths[0]) if bn else None
            layers += drop(_norm_act([nn.Linear(features, flat), nn.Unflatten(1, (widths[0], side, side))],
                                     norm, act(), before))
        # state size. widths[0] x side x side; each block doubles the side.
        for c_in, c_out in zip(widths, widths[1:]):
            norm = nn.BatchNorm2d(c_out) if bn else None
            layers += drop(_norm_act(_upsample(cfg, c_in, c_out), norm, act(), before))
        # Output layer: never batch-normed (Radford); a last upsampling or a 'same' conv; tanh or sigmoid.
        if cfg.g_output_layer == "upsample":
            layers += _upsample(cfg, widths[-1], cfg.channels)
        else:
            layers += _same_conv(widths[-1], cfg.channels, cfg.kernel_size)
        layers.append(nn.Tanh() if cfg.output_activation == "tanh" else nn.Sigmoid())
        # state size. channels x image_size x image_size
        self.net = nn.Sequential(*layers)

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


def use_generator(net: nn.Module, generator: torch.Generator) -> None:
    """Make every RunDropout of `net` draw from `generator`."""
    for module in net.modules():
        if isinstance(module, RunDropout):
            module.generator = generator


class Discriminator(nn.Module):
    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        side, widths = cfg.start_side, d_widths(cfg)
        bn, before = cfg.d_batch_norm, cfg.bn_position == "before_act"

        def act() -> nn.Module:
            return _activation(cfg.d_activation, cfg.leaky_slope)

        def drop() -> list[nn.Module]:
            return [RunDropout(cfg.d_dropout)] if cfg.d_dropout > 0 else []

        layers: list[nn.Module] = []
        c_in = cfg.channels
        for i, c_out in enumerate(widths):
            # No BN on D's input layer (Radford) unless asked for.
            use_bn = bn and (i > 0 or cfg.d_input_batch_norm)
            if cfg.d_block_convs == 2:  # seed 003's encoder block: conv → BN, then the strided conv
                layers += _same_conv(c_in, c_out, cfg.kernel_size) + ([nn.BatchNorm2d(c_out)] if use_bn else [])
                c_in = c_out
            norm = nn.BatchNorm2d(c_out) if use_bn else None
            layers += _norm_act(_downsample(cfg, c_in, c_out), norm, act(), before) + drop()
            c_in = c_out
        # state size. widths[-1] x side x side (+1 map with the minibatch std)
        maps = widths[-1] + cfg.minibatch_std
        if cfg.minibatch_std:
            layers.append(MinibatchStd())
        if cfg.d_head == "avgpool":
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            features = maps
        else:
            layers.append(nn.Flatten())
            features = maps * side * side
        if cfg.d_fc_hidden:
            layers += [nn.Linear(features, cfg.d_fc_hidden), act()] + drop()
            features = cfg.d_fc_hidden
        layers.append(nn.Linear(features, 1))
        self.net = nn.Sequential(*layers)

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
