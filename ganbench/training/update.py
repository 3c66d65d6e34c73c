"""The GAN update rule as functions of explicit inputs.

Every random number an iteration consumes (the real batch, latents, label noise, flips,
the mixed-batch permutation) is drawn by `draw_*` from the run's own generators, in a fixed
order, and handed to the update functions. A trainer that advances several runs at once
draws each run's inputs from that run's generators, so each run gets exactly the numbers it
would get alone.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ganbench.config import TrainConfig
from ganbench.training.protocol import stat_rows


def sample_latent(cfg: TrainConfig, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """z of shape n×latent_dim from the run's latent distribution."""
    if cfg.latent_dist == "gaussian":
        return torch.randn(n, cfg.latent_dim, generator=generator, device=device)
    return torch.rand(n, cfg.latent_dim, generator=generator, device=device).mul_(2).sub_(1)


FIXED_NOISE_SEED = 20151119  # one fixed-noise batch for every run, so grids of different arms compare


def fixed_noise(cfg: TrainConfig, device: torch.device) -> torch.Tensor:
    """The sample grid's latents: the same for every run of a latent size and distribution."""
    gen = torch.Generator().manual_seed(FIXED_NOISE_SEED)
    return sample_latent(cfg, cfg.sample_grid, gen, torch.device("cpu")).to(device)


def draw_targets(cfg: TrainConfig, n: int, gen: torch.Generator, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(real, fake) BCE targets after smoothing, jitter and random flips."""
    real = torch.full((n,), cfg.real_target, device=device)
    if cfg.real_label_jitter > 0:
        real += cfg.real_label_jitter * torch.rand(n, generator=gen, device=device)
    fake = torch.full((n,), cfg.fake_label, device=device)
    if cfg.fake_label_jitter > 0:  # two-sided soft labels (seed 004: fakes in [0, 0.3])
        fake += cfg.fake_label_jitter * torch.rand(n, generator=gen, device=device)
    if cfg.label_flip_p > 0:
        flip_real = torch.rand(n, generator=gen, device=device) < cfg.label_flip_p
        flip_fake = torch.rand(n, generator=gen, device=device) < cfg.label_flip_p
        real, fake = torch.where(flip_real, cfg.fake_label, real), torch.where(flip_fake, cfg.real_target, fake)
    return real, fake


@dataclass
class DInputs:
    """The random inputs of one D update, drawn in the run's order."""

    real: torch.Tensor  # real batch, in pixel_range
    z: torch.Tensor  # latents of the fake batch
    target_real: torch.Tensor
    target_fake: torch.Tensor
    perm: torch.Tensor | None  # mixed batch: the shuffle of real+fake; None for separate batches


def draw_d_inputs(cfg: TrainConfig, real: torch.Tensor, gen: torch.Generator, device: torch.device) -> DInputs:
    n = cfg.batch_size
    z = sample_latent(cfg, n, gen, device)
    target_real, target_fake = draw_targets(cfg, n, gen, device)
    perm = torch.randperm(2 * n, generator=gen, device=device) if cfg.d_batch == "mixed" else None
    return DInputs(real, z, target_real, target_fake, perm)


def autocast_for(cfg: TrainConfig, device: torch.device) -> Any:
    return torch.autocast(device.type, dtype=torch.bfloat16) if cfg.precision == "bf16" else nullcontext()


def d_logits(net_d: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, perm: torch.Tensor | None,
             autocast: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """D's logits on the real and the fake batch: two batches, or one shuffled batch of both
    (BN in D then sees mixed statistics)."""
    with autocast:
        if perm is None:
            return net_d(real).float(), net_d(fake).float()
        n = real.shape[0]
        mixed = torch.cat([real, fake.to(real.dtype)])[perm]
        logits = torch.empty(2 * n, device=real.device)
        logits[perm] = net_d(mixed).float()
        return logits[:n], logits[n:]


def d_loss(logit_real: torch.Tensor, logit_fake: torch.Tensor, target_real: torch.Tensor,
           target_fake: torch.Tensor, kind: str = "bce", per_run: bool = False) -> torch.Tensor:
    """D's objective as the sum of its real and fake terms (so loss_d compares between batch modes).
    `per_run`: the inputs are K × batch (a fused group) and the result holds each run's loss (K).

    bce: the two BCE means against the (smoothed, jittered, flipped) targets. least_squares
    (Mao et al. 2017): ½ mean (D − target)² per side, the same targets. hinge (Lim & Ye 2017):
    mean relu(1 − D(x)) + mean relu(1 + D(G(z))). wasserstein: mean D(G(z)) − mean D(x).
    The last two have no targets, so label knobs do not act on them.
    """
    if per_run:  # only BCE is fused (config.NOT_FUSED keeps the other losses' runs alone)
        if kind != "bce":
            raise ValueError(f"d_loss '{kind}' is not computed per run of a fused group")
        return (F.binary_cross_entropy_with_logits(logit_real, target_real, reduction="none").mean(-1)
                + F.binary_cross_entropy_with_logits(logit_fake, target_fake, reduction="none").mean(-1))
    if kind == "least_squares":
        return 0.5 * ((logit_real - target_real) ** 2).mean() + 0.5 * ((logit_fake - target_fake) ** 2).mean()
    if kind == "hinge":
        return F.relu(1 - logit_real).mean() + F.relu(1 + logit_fake).mean()
    if kind == "wasserstein":
        return logit_fake.mean() - logit_real.mean()
    return (F.binary_cross_entropy_with_logits(logit_real, target_real)
            + F.binary_cross_entropy_with_logits(logit_fake, target_fake))


def g_loss(logits: torch.Tensor, kind: str | torch.Tensor, d_kind: str = "bce") -> torch.Tensor:
    """G's loss on D's output for its fakes. Under bce: 'nonsaturating' −log D(G(z)) or 'minimax'
    log(1 − D(G(z))); otherwise G's loss follows D's: −mean D(G(z)) for hinge and wasserstein
    (Miyato et al. 2018, Gulrajani et al. 2017), ½ mean (D(G(z)) − 1)² for least_squares.

    Per run of a fused group (logits K × batch; g_loss is a numeric knob, so runs of one group may
    differ in it), `kind` is a K-vector of booleans, True for nonsaturating; the result holds K losses."""
    if torch.is_tensor(kind):
        if d_kind != "bce":
            raise ValueError(f"d_loss '{d_kind}' is not computed per run of a fused group")
        return torch.where(kind.view(-1, 1),
                           F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none"),
                           -F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
                           ).mean(-1)
    if d_kind in ("hinge", "wasserstein"):
        return -logits.mean()
    if d_kind == "least_squares":
        return 0.5 * ((logits - 1) ** 2).mean()
    if kind == "nonsaturating":
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    return -F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))


def grad_total_norm(net: torch.nn.Module) -> torch.Tensor:
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads).float()


def decayed_lr(base: torch.Tensor, decay: float | torch.Tensor, step: int, out: torch.Tensor) -> None:
    """Keras' inverse-time decay into the optimiser's lr tensor, in float64:
    lr = base · 1 / (1 + decay·step), the same IEEE operations as on Python floats. With one decay
    per run (a fused group: a float64 tensor on the device), `base` and `out` hold one rate per run,
    and nothing is copied from the host (no synchronisation before a graph replay)."""
    factors = 1.0 / (1.0 + decay * step)  # a Python float multiplies as a kernel argument: no host copy
    torch.mul(base, factors, out=out)


ADAM_EPS = 1e-8  # torch.optim.Adam's default


def make_adam(params: Any, lr: torch.Tensor, cfg: TrainConfig, device: torch.device) -> torch.optim.Adam:
    """The optimiser of one network of a run (every trainer's, and every checkpoint's format): Adam with the
    run's betas, the single-tensor path on every device, its lr a float64 tensor and its step counts on
    the CPU. Not capturable: the trainer that captures CUDA graphs (`FusedTrainer`) has its own Adam over
    flat buffers, and a capturable Adam's device-side lr and steps made the eager trainer copy the decayed
    rate to the GPU every step (a host synchronisation); here lr and steps are host numbers."""
    del device  # the same optimiser on every device (the signature keeps the callers explicit)
    return torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2), eps=ADAM_EPS, foreach=False)


# A D update: (index among the iteration's D updates, keep the fake batch for G?) →
# (loss, mean D(x), mean D(G(z)), grad norm, the fake batch or None). A G update: (index, D's fake batch or
# None to draw its own) → (loss, mean D(G(z)) after the D updates, grad norm). Per run, or (K,) per group.
DUpdate = Callable[[int, bool], tuple[Any, ...]]
GUpdate = Callable[[int, Any], tuple[Any, ...]]


def iteration(cfg: TrainConfig, d_update: DUpdate, g_update: GUpdate) -> torch.Tensor:
    """THE order of one training iteration, for every trainer (each supplies its own D and G update):
    `d_steps` D updates, the last keeping its fake batch when G reuses D's latents (`g_latents: reuse`, as
    pytorch/examples), then `g_steps` G updates, the first on that batch. Returns the iteration's statistics
    (`stat_rows`): the last D update's and the last G update's."""
    reuse = cfg.g_latents == "reuse"
    for i in range(cfg.d_steps):
        loss_d, d_real, d_fake_before, norm_d, fake = d_update(i, reuse and i == cfg.d_steps - 1)
    for j in range(cfg.g_steps):
        loss_g, d_fake_after, norm_g = g_update(j, fake if j == 0 else None)
    return stat_rows(loss_d=loss_d, loss_g=loss_g, d_real=d_real, d_fake_before=d_fake_before,
                     d_fake_after=d_fake_after, grad_norm_d=norm_d, grad_norm_g=norm_g)
