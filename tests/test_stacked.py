"""The stacked engine (HFTA's layout) layer by layer: K networks as one give each network's own
outputs and gradients, for every layer type the DCGAN family builds, and its flat Adam is
torch.optim.Adam's arithmetic."""

from __future__ import annotations

import pytest
import torch

from ganbench.hacks import resolve
from ganbench.models import build_models, use_generator
from ganbench.training import update
from ganbench.training.stacked import DropoutMasks, StackedNet, VmapNet, from_map, to_map

K, N = 3, 8

# Every layer the family builds: pooled and strided resampling, kernel 4 and 5, batch norm before
# and after the activation (1-d after the linears of dcgan28, 2-d in radford), D's two-conv blocks,
# its pooled head, G's conv output layer, dropout in both nets, tanh and sigmoid outputs.
NETS = {
    "dcgan_preset": dict(),
    "pooled_k5_relu": dict(sampling="pooled", kernel_size=5, d_activation="relu", g_activation="relu"),
    "bn_after_act_dropout": dict(bn_position="after_act", d_dropout=0.3, g_dropout=0.2, output_activation="tanh"),
    "radford32_colour": dict(arch="radford", image_size=32, channels=3, g_width=8, d_width=8, g_fc_hidden=0,
                             d_fc_hidden=0, d_block_convs=2, d_head="avgpool", d_input_batch_norm=True),
    "radford_conv_output": dict(arch="radford", image_size=32, g_width=8, d_width=8, g_output_layer="conv",
                                sampling="pooled", kernel_size=4, g_activation="leaky_relu"),
}


def configs(changes: dict, slopes=(0.2, 0.2, 0.2)) -> list:
    return [resolve("dcgan", [], {"device": "cpu", "batch_size": N, "seed": s, "leaky_slope": slope, **changes})[0]
            for s, slope in enumerate(slopes)]


def built(cfgs):
    nets = []
    for cfg in cfgs:
        torch.manual_seed(cfg.seed)
        nets.append(build_models(cfg))
    return [g for g, _ in nets], [d for _, d in nets]


def dropout_streams(seed_base: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed_base + k) for k in range(K)]


@pytest.mark.parametrize("slopes", [(0.2, 0.2, 0.2), (0.2, 0.05, 0.3)], ids=["one_slope", "slope_per_run"])
@pytest.mark.parametrize("name", NETS)
def test_k_networks_as_one_equal_each_network(name, slopes):
    cfgs = configs(NETS[name], slopes)
    nets_g, nets_d = built(cfgs)
    masks = DropoutMasks(dropout_streams(7))
    stacked_g, stacked_d = StackedNet(nets_g, slopes, masks), StackedNet(nets_d, slopes, masks)
    for g, d, stream in zip(nets_g, nets_d, dropout_streams(7)):  # alone: G and D share the run's stream
        use_generator(g, stream)
        use_generator(d, stream)
    gens = [torch.Generator().manual_seed(100 + k) for k in range(K)]
    z = torch.stack([update.sample_latent(c, N, g, torch.device("cpu")) for c, g in zip(cfgs, gens)])
    images = stacked_g(z)  # (N, K·C, H, W)
    logits = stacked_d(images)  # (K, N)
    (logits.square().sum()).backward()
    for k, (g, d) in enumerate(zip(nets_g, nets_d)):
        alone = g(z[k])
        torch.testing.assert_close(from_map(images, K)[k], alone, rtol=1e-5, atol=1e-6)
        alone_logits = d(alone)
        torch.testing.assert_close(logits[k], alone_logits, rtol=1e-4, atol=1e-5)
        alone_logits.square().sum().backward()
        for side, net, stacked in (("G", g, stacked_g), ("D", d, stacked_d)):
            # A conv bias before batch norm has a gradient that is 0 up to rounding: compare every
            # gradient against the network's largest one.
            scale = max(p.grad.abs().max().item() for p in net.parameters())
            for (param_name, p), got in zip(net.named_parameters(), stacked.flat.run_values(k, stacked.flat.grads)):
                torch.testing.assert_close(got, p.grad, rtol=1e-3, atol=2e-5 * scale, msg=f"{side} {param_name}")
        state = stacked_g.run_state(k)  # batch-norm running statistics moved as each network's did
        for key, value in g.state_dict().items():
            torch.testing.assert_close(state[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_dropout_masks_replayed_from_static_buffers_equal_eager_draws():
    """Under a CUDA graph the masks are drawn outside into static buffers in the recorded order;
    the same mechanism on the CPU gives the masks eager drawing gives."""
    def requests(masks):
        return [masks((N, 4, 2, 2), torch.float32, (0.1, 0.2, 0.3), "map", torch.device("cpu")),
                masks((N, 6), torch.float32, (0.5, 0.5, 0.0), "vec", torch.device("cpu"))]

    eager = DropoutMasks(dropout_streams(3))
    expected = requests(eager) + requests(eager)
    replayed = DropoutMasks(dropout_streams(3))
    replayed.record()
    first = requests(replayed)
    replayed.set_states([g.get_state() for g in dropout_streams(3)])  # the warm-up step does not count
    replayed.capture(torch.device("cpu"))
    buffers = requests(replayed)
    replayed.refill()
    got = [b.clone() for b in buffers]
    replayed.refill()
    got += [b.clone() for b in buffers]
    for a, b in zip(got, expected):
        assert torch.equal(a, b)
    assert all(torch.equal(a, b) for a, b in zip(first, expected[:2]))
    # run 2 of the second request keeps everything (p = 0), and each run's masks are its own
    assert torch.equal(expected[1][2], torch.ones(N, 6))


def test_the_layouts_invert_each_other():
    x = torch.randn(K, N, 3, 4, 4)
    assert torch.equal(from_map(to_map(x), K), x)
    assert torch.equal(to_map(x)[:, 3:6], x[1])  # run 1 owns channels 3–5


def test_flat_adam_is_torch_adam_per_run():
    cfgs = configs(NETS["dcgan_preset"])
    nets_g, _ = built(cfgs)
    stacked = StackedNet(nets_g, [0.2] * K)
    lr = torch.tensor([2e-4, 1e-3, 5e-5], dtype=torch.float64)
    beta1, beta2 = torch.tensor([0.5, 0.9, 0.0], dtype=torch.float64), torch.tensor([0.999, 0.99, 0.9], dtype=torch.float64)
    opts = [update.make_adam(g.parameters(), lr[k].clone(), cfgs[k].replace(beta1=float(beta1[k]), beta2=float(beta2[k])),
                             torch.device("cpu")) for k, g in enumerate(nets_g)]
    active = torch.tensor([True, True, False])
    for step in range(1, 4):
        grads = [torch.randn_like(v) for v in stacked.flat.values]
        stacked.flat.grads.copy_(torch.stack(grads))
        stacked.flat.adam(lr, beta1, beta2, torch.full((K,), float(step), dtype=torch.float64), active)
        for k, (g, opt) in enumerate(zip(nets_g, opts)):
            if not active[k]:
                continue
            offset = 0
            for p in g.parameters():
                p.grad = grads[k][offset:offset + p.numel()].view_as(p).clone()
                offset += p.numel()
            opt.step()
    for k, g in enumerate(nets_g):
        alone = torch.cat([p.detach().reshape(-1) for p in g.parameters()])
        # active: the same IEEE operations, bit for bit; inactive (run 2): never moved, as its net alone
        assert torch.equal(stacked.flat.values[k], alone), k
    assert torch.equal(stacked.flat.exp_avg[2], torch.zeros_like(stacked.flat.exp_avg[2]))


def test_vmap_engine_refuses_what_it_cannot_compute():
    nets_g, _ = built(configs(NETS["bn_after_act_dropout"]))
    with pytest.raises(ValueError, match="dropout"):
        VmapNet(nets_g, [0.2] * K)
    nets_g, _ = built(configs(NETS["dcgan_preset"]))
    with pytest.raises(ValueError, match="slopes"):
        VmapNet(nets_g, [0.2, 0.1, 0.2])
