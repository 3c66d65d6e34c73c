"""The seed recipes of suites/seeds/: network shapes as the seeds describe them, and 20
training steps each on fixture data at the recipe's real resolution."""

from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from ganbench.models import build_models
from ganbench.study.suite import load_suite
from ganbench.training.loop import train

from conftest import write_celeba_fixture, write_image_folder_fixture

pytestmark = pytest.mark.integration  # real worker processes / long runs: `pytest -m integration`

SUITES = Path(__file__).resolve().parent.parent / "suites" / "seeds"
RESAMPLING = (nn.Conv2d, nn.ConvTranspose2d, nn.Unflatten, nn.AdaptiveAvgPool2d)


def recipe(name: str):
    (run, *_) = load_suite(SUITES / f"{name}.yaml").runs
    return run.config


def feature_shapes(net: nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    """Output shape (without the batch) of every conv, unflatten and pooling layer, in order."""
    shapes: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda m, i, out: shapes.append(tuple(out.shape[1:])))
             for m in net.modules() if isinstance(m, RESAMPLING)]
    with torch.no_grad():
        net.eval()(x)
    for hook in hooks:
        hook.remove()
    return shapes


def kernels(net: nn.Module) -> set[int]:
    return {m.kernel_size[0] for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))}


def test_seed000_colour_dcgan_shapes():
    cfg = recipe("seed000_zalando_dcgan")
    net_g, net_d = build_models(cfg)
    # z → 8×8, one more ConvT → BN → ReLU set: 8 → 16 → 32 → 64, then a stride-1 conv to 64×64×3.
    assert feature_shapes(net_g, torch.randn(2, 100)) == [(512, 8, 8), (256, 16, 16), (128, 32, 32), (64, 64, 64),
                                                          (3, 64, 64)]
    # D on 64×64×3, one more Conv → BN → LeakyReLU set: 64 → 32 → 16 → 8.
    assert feature_shapes(net_d, torch.randn(2, 3, 64, 64)) == [(64, 32, 32), (128, 16, 16), (256, 8, 8)]
    assert kernels(net_g) == kernels(net_d) == {4}
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net_d.modules()) == 3  # BN in every D set
    assert (cfg.lr_d, cfg.lr_g, cfg.beta1, cfg.real_label_jitter, cfg.batch_size) == (1e-4, 3e-4, 0.5, 0.05, 32)
    assert (cfg.output_activation, cfg.resize, cfg.dataset) == ("tanh", "squash", "image-folder")


def test_seed002_pytorch_dcgan_shapes():
    cfg = recipe("seed002_pytorch_dcgan_celeba")
    net_g, net_d = build_models(cfg)
    # ngf = 64: 512×4×4 → 256×8×8 → 128×16×16 → 64×32×32 → 3×64×64.
    assert feature_shapes(net_g, torch.randn(2, 100)) == [(512, 4, 4), (256, 8, 8), (128, 16, 16), (64, 32, 32),
                                                          (3, 64, 64)]
    # ndf = 64: 64×32×32 → 128×16×16 → 256×8×8 → 512×4×4 → one logit.
    assert feature_shapes(net_d, torch.randn(2, 3, 64, 64)) == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4)]
    assert net_d(torch.randn(2, 3, 64, 64)).shape == (2,)
    assert kernels(net_g) == kernels(net_d) == {4}
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net_d.modules()) == 3  # none on the input layer
    conv_std = torch.cat([m.weight.flatten() for m in net_g.modules() if isinstance(m, nn.ConvTranspose2d)]).std()
    assert abs(conv_std.item() - 0.02) < 0.002  # N(0, 0.02) init
    assert (cfg.lr_d, cfg.lr_g, cfg.beta1, cfg.latent_dist, cfg.batch_size) == (2e-4, 2e-4, 0.5, "gaussian", 128)
    assert (cfg.resize, cfg.d_batch, cfg.g_latents) == ("center_crop", "separate", "reuse")


def test_seed003_keras_encoder_decoder_shapes():
    cfg = recipe("seed003_keras_celeba")
    net_g, net_d = build_models(cfg)
    c = 16  # NET_CAPACITY
    # Dense(4·4·8c) → reshape, decoder blocks 4c, 2c, c, c (4 → 64), Conv2D(3, k5, same).
    assert feature_shapes(net_g, torch.randn(2, 100)) == [(8 * c, 4, 4), (4 * c, 8, 8), (2 * c, 16, 16), (c, 32, 32),
                                                          (c, 64, 64), (3, 64, 64)]
    # Encoder blocks: a 'same' conv then a stride-2 conv, c → 8c filters, then global average pooling.
    assert feature_shapes(net_d, torch.randn(2, 3, 64, 64)) == [
        (c, 64, 64), (c, 32, 32), (2 * c, 32, 32), (2 * c, 16, 16), (4 * c, 16, 16), (4 * c, 8, 8),
        (8 * c, 8, 8), (8 * c, 4, 4), (8 * c, 1, 1)]
    assert kernels(net_g) == kernels(net_d) == {5}
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net_d.modules()) == 8  # BN after both convs of each block
    slopes = {m.negative_slope for net in (net_g, net_d) for m in net.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.3} and not any(isinstance(m, nn.ReLU) for m in net_g.modules())
    assert (cfg.lr_d, cfg.lr_g, cfg.beta1, cfg.batch_size, cfg.data_limit) == (2e-4, 2e-4, 0.9, 32, 10000)
    assert (cfg.d_steps, cfg.g_steps, cfg.g_latents, cfg.resize) == (1, 1, "fresh", "squash")


@pytest.mark.parametrize("name", ["seed000_zalando_dcgan", "seed002_pytorch_dcgan_celeba", "seed003_keras_celeba"])
def test_recipe_trains_20_steps_on_fixture_data(tmp_path, monkeypatch, name):
    monkeypatch.setenv("GANBENCH_DATASET_CACHE", str(tmp_path / "cache"))
    cfg = recipe(name)
    if cfg.dataset == "image-folder":
        root = write_image_folder_fixture(tmp_path / "zalando", per_class=10)
    else:
        root = write_celeba_fixture(tmp_path / "data", n=24)
    cfg = cfg.replace(steps=20, batch_size=8, device="cpu", metrics="none", log_every=10, sample_every=0,
                      sample_grid=16, checkpoint_every=0)
    with pytest.warns(UserWarning) if cfg.dataset == "image-folder" else _nothing():  # the corrupt fixture file
        status = train(cfg, tmp_path / "run", data_root=root)
    assert status["status"] == "completed" and status["step"] == 20
    assert status["data"]["shape"][1:] == [3, 64, 64]
    grid = Image.open(tmp_path / "run" / "samples" / "step_000020.png")
    assert grid.size == (4 * 64 + 5 * 2,) * 2  # 4×4 images of 64 px with 2-px padding


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
