import itertools

import pytest
import torch
from torch import nn

from ganbench.config import TrainConfig
from ganbench.models import Discriminator, Generator, RunDropout, build_models

FAMILIES = [("dcgan28", 28), ("radford", 32), ("radford", 64)]


@pytest.mark.parametrize(
    "family, channels, kernel, sampling",
    list(itertools.product(FAMILIES, (1, 3), (4, 5), ("strided", "pooled"))),
)
def test_output_shapes(family, channels, kernel, sampling):
    arch, side = family
    cfg = TrainConfig(arch=arch, image_size=side, channels=channels, kernel_size=kernel, sampling=sampling,
                      g_batch_norm=True, d_batch_norm=True)
    net_g, net_d = build_models(cfg)
    images = net_g(torch.rand(3, cfg.latent_dim))
    assert images.shape == (3, channels, side, side)
    assert net_d(images).shape == (3,)


def _count(module: nn.Module) -> int:
    """Weights plus BN running statistics: what Keras' summary counts."""
    buffers = sum(b.numel() for name, b in module.named_buffers() if "num_batches" not in name)
    return sum(p.numel() for p in module.parameters()) + buffers


def test_seed_001_network_matches_its_keras_summary():
    # Seed 001 (PyImageSearch, Keras): G has FC 512 → ReLU → BN, FC 3136 → ReLU → BN, 7×7×64,
    # ConvT 32 k5 s2 → ReLU → BN, ConvT 1 k5 s2 → tanh: 1,727,233 parameters in its summary.
    cfg = TrainConfig(sampling="strided", g_batch_norm=True, bn_position="after_act", output_activation="tanh",
                      d_activation="leaky_relu")
    net_g, net_d = build_models(cfg)
    assert _count(net_g) == 51712 + 2048 + 1608768 + 12544 + 51232 + 128 + 801
    # D: Conv 32 k5 s2, Conv 64 k5 s2, FC 512, FC 1 with LeakyReLU(0.2), no BN.
    assert _count(net_d) == 832 + 51264 + 1606144 + 513
    assert [type(m) for m in net_g.net[:3]] == [nn.Linear, nn.ReLU, nn.BatchNorm1d]


def test_radford_64_pyramid():
    cfg = TrainConfig(arch="radford", image_size=64, channels=3, sampling="strided", g_fc_hidden=0, d_fc_hidden=0,
                      kernel_size=4, g_batch_norm=True)
    net_g = Generator(cfg)
    convs = [m for m in net_g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(512, 256), (256, 128), (128, 64), (64, 3)]
    # No BN on G's output layer.
    assert isinstance(net_g.net[-1], nn.Tanh) is False and isinstance(net_g.net[-2], nn.ConvTranspose2d)


def test_knobs_reach_the_modules():
    cfg = TrainConfig(d_activation="leaky_relu", d_dropout=0.3, d_batch_norm=True, g_fc_hidden=0, d_fc_hidden=0)
    net_d = Discriminator(cfg)
    kinds = [type(m) for m in net_d.net]
    assert nn.LeakyReLU in kinds and nn.ReLU not in kinds
    assert kinds.count(RunDropout) == 2 and kinds.count(nn.BatchNorm2d) == 1  # none on the input layer
    assert sum(isinstance(m, nn.Linear) for m in net_d.net) == 1  # no hidden FC
    bn_first = [type(m) for m in Generator(TrainConfig(g_batch_norm=True)).net][:3]
    assert bn_first == [nn.Linear, nn.BatchNorm1d, nn.ReLU]  # Radford placement by default


def test_gaussian_init():
    torch.manual_seed(0)
    net_g, _ = build_models(TrainConfig(init="normal_002", g_batch_norm=True))
    weights = torch.cat([m.weight.flatten() for m in net_g.modules() if isinstance(m, (nn.Linear, nn.Conv2d))])
    assert abs(weights.std().item() - 0.02) < 0.001
    gammas = torch.cat([m.weight for m in net_g.modules() if isinstance(m, nn.BatchNorm1d)])
    assert abs(gammas.mean().item() - 1.0) < 0.01
