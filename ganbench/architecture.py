"""The DCGAN family's layer plan, without torch: which layers G and D have, in order, for a `TrainConfig`.

`generator_layers(cfg, kit)` and `discriminator_layers(cfg, kit)` are the one spelling of the two
networks. `models.py` builds them with `TORCH_KIT` (torch.nn's layers and ganbench's own); `SHAPE_KIT`
builds the same plan as parameter and buffer sizes only, so the disk a run needs is known without
importing torch (`execution/disk.py`, `plan --no-estimate`). A kit offers the torch.nn layer names the
plan uses (Linear, Conv2d, ConvTranspose2d, BatchNorm1d/2d, Unflatten, Upsample, ZeroPad2d, AvgPool2d,
AdaptiveAvgPool2d, Flatten, ReLU, LeakyReLU, Tanh, Sigmoid) plus RunDropout and MinibatchStd.

Two families share one builder; they differ only in where the spatial pyramid starts (see `models.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

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


def _activation(nn: Any, name: str, slope: float) -> Any:
    return nn.LeakyReLU(slope, inplace=True) if name == "leaky_relu" else nn.ReLU(inplace=True)


def _norm_act(layers: list[Any], norm: Any | None, act: Any, bn_before_act: bool) -> list[Any]:
    """layers + BN + act in the configured order (BN omitted when `norm` is None)."""
    tail = [act] if norm is None else ([norm, act] if bn_before_act else [act, norm])
    return layers + tail


def _upsample(nn: Any, cfg: TrainConfig, c_in: int, c_out: int) -> list[Any]:
    """Double the side: a stride-2 transposed conv, or nearest upsampling + a 'same' conv."""
    k = cfg.kernel_size
    if cfg.sampling == "strided":
        # k=4: (n−1)·2 − 2 + 4 = 2n;  k=5: (n−1)·2 − 4 + 5 + 1 = 2n.
        return [nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=(k - 1) // 2, output_padding=k % 2)]
    return [nn.Upsample(scale_factor=2, mode="nearest"), *_same_conv(nn, c_in, c_out, k)]


def _same_conv(nn: Any, c_in: int, c_out: int, k: int) -> list[Any]:
    """A stride-1 conv keeping the side; even kernels pad one more on the right/bottom
    (explicitly, since padding='same' with an even kernel copies the input each call)."""
    if k % 2:
        return [nn.Conv2d(c_in, c_out, k, padding=k // 2)]
    return [nn.ZeroPad2d((k // 2 - 1, k // 2, k // 2 - 1, k // 2)), nn.Conv2d(c_in, c_out, k)]


def _downsample(nn: Any, cfg: TrainConfig, c_in: int, c_out: int) -> list[Any]:
    """Halve the side: a stride-2 conv, or a 'same' conv + 2×2 average pooling."""
    k = cfg.kernel_size
    if cfg.sampling == "strided":
        # k=4, p=1 and k=5, p=2 both give ⌊(n − 1)/2⌋ + 1 = n/2 for even n.
        return [nn.Conv2d(c_in, c_out, k, stride=2, padding=(k - 1) // 2)]
    return [*_same_conv(nn, c_in, c_out, k), nn.AvgPool2d(2)]


def generator_layers(cfg: TrainConfig, nn: Any) -> list[Any]:
    """G's layers in order, made by the kit `nn`."""
    side, widths = pyramid(cfg)
    bn, before = cfg.g_batch_norm, cfg.bn_position == "before_act"
    layers: list[Any] = []
    features = cfg.latent_dim

    def act() -> Any:
        return _activation(nn, cfg.g_activation, cfg.leaky_slope)

    def drop(block: list[Any]) -> list[Any]:  # ganhacks tip 17: dropout in G's hidden layers
        return block + ([nn.RunDropout(cfg.g_dropout)] if cfg.g_dropout > 0 else [])

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
        layers += drop(_norm_act(_upsample(nn, cfg, c_in, c_out), norm, act(), before))
    # Output layer: never batch-normed (Radford); a last upsampling or a 'same' conv; tanh or sigmoid.
    if cfg.g_output_layer == "upsample":
        layers += _upsample(nn, cfg, widths[-1], cfg.channels)
    else:
        layers += _same_conv(nn, widths[-1], cfg.channels, cfg.kernel_size)
    layers.append(nn.Tanh() if cfg.output_activation == "tanh" else nn.Sigmoid())
    # state size. channels x image_size x image_size
    return layers


def discriminator_layers(cfg: TrainConfig, nn: Any) -> list[Any]:
    """D's layers in order (logits out), made by the kit `nn`."""
    side, widths = cfg.start_side, d_widths(cfg)
    bn, before = cfg.d_batch_norm, cfg.bn_position == "before_act"

    def act() -> Any:
        return _activation(nn, cfg.d_activation, cfg.leaky_slope)

    def drop() -> list[Any]:
        return [nn.RunDropout(cfg.d_dropout)] if cfg.d_dropout > 0 else []

    layers: list[Any] = []
    c_in = cfg.channels
    for i, c_out in enumerate(widths):
        # No BN on D's input layer (Radford) unless asked for.
        use_bn = bn and (i > 0 or cfg.d_input_batch_norm)
        if cfg.d_block_convs == 2:  # seed 003's encoder block: conv → BN, then the strided conv
            layers += _same_conv(nn, c_in, c_out, cfg.kernel_size) + ([nn.BatchNorm2d(c_out)] if use_bn else [])
            c_in = c_out
        norm = nn.BatchNorm2d(c_out) if use_bn else None
        layers += _norm_act(_downsample(nn, cfg, c_in, c_out), norm, act(), before) + drop()
        c_in = c_out
    # state size. widths[-1] x side x side (+1 map with the minibatch std)
    maps = widths[-1] + cfg.minibatch_std
    if cfg.minibatch_std:
        layers.append(nn.MinibatchStd())
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
    return layers


# --- The plan as sizes: parameters and buffers of each layer, without torch ---------------------

@dataclass(frozen=True)
class Sized:
    """A layer's tensors as element counts, in torch's state_dict order: parameters (float32), float32
    buffers, int64 buffers; `spectral`: (u, v) sizes of a weight's spectral-norm vectors when normalised."""

    params: tuple[int, ...] = ()
    buffers: tuple[int, ...] = ()
    int_buffers: tuple[int, ...] = ()
    spectral: tuple[int, int] | None = field(default=None, compare=False)


class _ShapeKit:
    """torch.nn's layers as sizes (torch's defaults: biases on, BN affine with running statistics)."""

    @staticmethod
    def Linear(features_in: int, features_out: int) -> Sized:  # noqa: N802 (torch.nn's names)
        return Sized((features_out * features_in, features_out), spectral=(features_out, features_in))

    @staticmethod
    def Conv2d(c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0) -> Sized:  # noqa: N802
        return Sized((c_out * c_in * k * k, c_out), spectral=(c_out, c_in * k * k))

    @staticmethod
    def ConvTranspose2d(c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0,  # noqa: N802
                        output_padding: int = 0) -> Sized:
        return Sized((c_in * c_out * k * k, c_out), spectral=(c_out, c_in * k * k))

    @staticmethod
    def BatchNorm1d(n: int) -> Sized:  # noqa: N802
        return Sized((n, n), (n, n), (1,))

    BatchNorm2d = BatchNorm1d

    def __getattr__(self, name: str) -> Any:  # every other layer holds no tensor
        return lambda *args, **kwargs: Sized()


SHAPE_KIT = _ShapeKit()


def layer_sizes(cfg: TrainConfig) -> tuple[list[Sized], list[Sized]]:
    """(G's layers, D's layers) as `Sized`, from the same plan the networks are built from."""
    return generator_layers(cfg, SHAPE_KIT), discriminator_layers(cfg, SHAPE_KIT)
