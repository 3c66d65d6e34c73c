"""Batch norms folded into the layer before them (`ganbench.batchnorm_folding`) give the layers' own
outputs up to float32 rounding, leave the originals alone, and keep what cannot be folded exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganbench.batchnorm_folding import fold_batch_norms


def _with_running_statistics(norm: nn.modules.batchnorm._BatchNorm, seed: int) -> nn.modules.batchnorm._BatchNorm:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        norm.running_mean.copy_(torch.randn(norm.num_features, generator=g) * 0.5)
        norm.running_var.copy_(torch.rand(norm.num_features, generator=g) * 2 + 0.2)
        if norm.affine:
            norm.weight.copy_(torch.randn(norm.num_features, generator=g))  # negative scales too
            norm.bias.copy_(torch.randn(norm.num_features, generator=g))
    return norm


@pytest.mark.parametrize("layers, shape", [
    ([nn.Linear(20, 12), nn.BatchNorm1d(12)], (64, 20)),
    ([nn.Linear(20, 12, bias=False), nn.BatchNorm1d(12, affine=False)], (64, 20)),
    ([nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()], (16, 3, 9, 9)),
    ([nn.ConvTranspose2d(8, 4, 5, stride=2, padding=2, output_padding=1), nn.BatchNorm2d(4), nn.Tanh()], (16, 8, 7, 7)),
])
def test_folded_layers_give_the_same_outputs(layers, shape):
    torch.manual_seed(0)
    layers = [_with_running_statistics(m, i) if isinstance(m, nn.modules.batchnorm._BatchNorm) else m
              for i, m in enumerate(layers)]
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in layers]
    folded = fold_batch_norms(layers)
    x = torch.randn(*shape)
    with torch.no_grad():
        expected, got = nn.Sequential(*layers).eval()(x), nn.Sequential(*folded)(x)
    assert len(folded) == len(layers) - 1
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded)
    assert (got - expected).abs().max() <= 1e-6 * expected.abs().max()
    assert all(torch.equal(saved[k], v) for m, saved in zip(layers, before) for k, v in m.state_dict().items())


@pytest.mark.parametrize("first", [
    nn.Conv2d(4, 8, 3, groups=2),  # grouped: the weight's channel layout differs
    nn.utils.parametrizations.spectral_norm(nn.Conv2d(4, 8, 3)),  # the weight is computed at each forward
    nn.ReLU(),  # nothing to fold into
])
def test_what_cannot_be_folded_exactly_is_kept(first):
    layers = [first, nn.BatchNorm2d(8) if not isinstance(first, nn.ReLU) else nn.BatchNorm2d(4)]
    folded = fold_batch_norms(layers)
    assert [type(m) for m in folded] == [type(m) for m in layers]
    assert not folded[1].training  # eval mode, like everything fold_batch_norms returns
    assert folded[0] is not first  # copies, not the modules themselves
