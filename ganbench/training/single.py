"""`GanTrainer`: one run (the K = 1 case of the trainer protocol)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ganbench.config import TrainConfig
from ganbench.data.sampler import BatchSampler
from ganbench.models import build_models, use_generator
from ganbench.training import stabilisers, update
from ganbench.training import checkpoint
from ganbench.training.checkpoint import run_state


def dropout_generator(cfg: TrainConfig, device: torch.device) -> torch.Generator:
    """The run's dropout stream, made right after its networks are initialised. On the CPU it
    continues the global RNG (what `nn.Dropout` drew from before dropout had its own stream, so
    old runs replay bit for bit); on a GPU it is seeded apart from the run's noise stream."""
    if device.type == "cpu":
        gen = torch.Generator().manual_seed(0)
        gen.set_state(torch.get_rng_state())
        return gen
    return torch.Generator(device=device).manual_seed(cfg.seed + 0x5EED_D20F)


class GanTrainer:
    """G, D, their optimisers and every random stream of one run.

    Streams: the data order (the sampler's CPU generator), latents / label noise / the mixed
    batch's shuffle (`noise_gen`, on the device), dropout masks (`dropout_gen`: on the CPU it
    continues the global RNG after initialisation, which is what `nn.Dropout` used to draw
    from, so old runs replay bit for bit). Learning rates are float64 tensors inside the
    optimisers, updated in place.
    """

    def __init__(self, cfg: TrainConfig, images: torch.Tensor | np.ndarray, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.configs = (cfg,)
        torch.manual_seed(cfg.seed)  # initialisation
        self.net_g, self.net_d = (net.to(device) for net in build_models(cfg))
        self.dropout_gen = dropout_generator(cfg, device)
        use_generator(self.net_d, self.dropout_gen)
        use_generator(self.net_g, self.dropout_gen)
        self.ema = stabilisers.WeightAverage(self.net_g, cfg.g_ema) if cfg.g_ema > 0 else None
        self.replay = stabilisers.ReplayBuffer(cfg.replay_buffer, device) if cfg.replay_buffer else None
        self.current_step = 1  # instance noise anneals with it
        self.base_lr_d, self.base_lr_g = (torch.tensor(lr, dtype=torch.float64) for lr in (cfg.lr_d, cfg.lr_g))
        self.lr_d, self.lr_g = self.base_lr_d.clone(), self.base_lr_g.clone()
        # The optimisers read lr_d / lr_g themselves (host float64: decaying them copies nothing to a GPU).
        self.opt_g = update.make_adam(self.net_g.parameters(), self.lr_g, cfg, device)
        self.opt_d = update.make_adam(self.net_d.parameters(), self.lr_d, cfg, device)
        self.sampler = BatchSampler(images, cfg.batch_size, cfg.pixel_range, device, cfg.seed)
        self.noise_gen = torch.Generator(device=device).manual_seed(cfg.seed)
        self.autocast = update.autocast_for(cfg, device)
        self.active = True

    # Protocol.
    def step(self, step: int) -> torch.Tensor:
        """One iteration: d_steps D updates, then g_steps G updates. Returns 1 × len(STAT_NAMES)."""
        cfg = self.cfg
        self.current_step = step
        if cfg.lr_decay > 0:
            for base, lr in ((self.base_lr_d, self.lr_d), (self.base_lr_g, self.lr_g)):
                update.decayed_lr(base, cfg.lr_decay, step - 1, lr)  # in place: the optimiser reads this tensor
        stats = update.iteration(cfg, lambda i, keep_fake: self.d_step(keep_fake), lambda j, fake: self.g_step(fake))
        if self.ema is not None:
            self.ema.update(self.net_g, step)
        return stats

    def learning_rates(self, k: int = 0) -> tuple[float, float]:
        return float(self.lr_d), float(self.lr_g)

    @torch.no_grad()
    def samples(self, k: int, noise: torch.Tensor) -> torch.Tensor:
        """G(noise) in eval mode (BN running statistics; the weight average with g_ema), mapped to [0, 1]."""
        net_g = self.generator()
        was_training = net_g.training
        net_g.eval()
        with self.autocast:
            images = net_g(noise).float()
        net_g.train(was_training)
        low, high = self.cfg.pixel_range
        return ((images - low) / (high - low)).clamp_(0, 1)

    def generator(self, k: int = 0) -> torch.nn.Module:
        """The G that makes the run's samples and metrics: the weight average when g_ema is on."""
        return self.ema.net if self.ema is not None else self.net_g

    def stop(self, k: int = 0) -> None:
        self.active = False

    # The update, one network at a time.
    def d_step(self, keep_fake: bool) -> tuple[Any, ...]:
        """One D update. Returns (loss, mean D(x), mean D(G(z)), grad norm, fake batch or None)."""
        cfg, gen = self.cfg, self.noise_gen
        inputs = update.draw_d_inputs(cfg, self.sampler.next(), gen, self.device)
        # The last D step keeps G's graph so the G step reuses this fake batch (as pytorch/examples).
        with self.autocast, (torch.enable_grad() if keep_fake else torch.no_grad()):
            fake = self.net_g(inputs.z)
        # Stabilisers draw after every folklore input, so runs without them replay unchanged.
        d_fake = self.replay.mix(fake, gen) if self.replay is not None else fake.detach()
        real = stabilisers.d_view(cfg, inputs.real, self.current_step, gen)
        d_fake = stabilisers.d_view(cfg, d_fake, self.current_step, gen)
        logit_real, logit_fake = update.d_logits(self.net_d, real, d_fake, inputs.perm, self.autocast)
        loss = update.d_loss(logit_real, logit_fake, inputs.target_real, inputs.target_fake, cfg.d_loss)
        if cfg.gp_weight > 0:
            loss = loss + stabilisers.gradient_penalty(cfg, self.net_d, real, d_fake, gen, self.autocast)
        if cfg.r1_gamma > 0:
            loss = loss + stabilisers.r1_penalty(cfg, self.net_d, real, self.autocast)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = update.grad_total_norm(self.net_d)
        self.opt_d.step()
        return (loss.detach(), torch.sigmoid(logit_real).mean().detach(), torch.sigmoid(logit_fake).mean().detach(),
                grad_norm, fake if keep_fake else None)

    def g_step(self, fake: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """One G update against the current D. Returns (loss, mean D(G(z)) after the D step, grad norm)."""
        cfg = self.cfg
        if fake is None:
            z = update.sample_latent(cfg, cfg.batch_size, self.noise_gen, self.device)
            with self.autocast:
                fake = self.net_g(z)
        fake = stabilisers.d_view(cfg, fake, self.current_step, self.noise_gen)
        self.net_d.requires_grad_(False)  # D's weight gradients are not needed here
        with self.autocast:
            logits = self.net_d(fake).float()
        self.net_d.requires_grad_(True)
        loss = update.g_loss(logits, cfg.g_loss, cfg.d_loss)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = update.grad_total_norm(self.net_g)
        self.opt_g.step()
        return loss.detach(), torch.sigmoid(logits).mean().detach(), grad_norm

    # Checkpoints: one run's state, the same format for every trainer.
    def state_dict(self, k: int = 0) -> dict[str, Any]:
        return run_state(self.net_g.state_dict(), self.net_d.state_dict(), self.opt_g.state_dict(),
                         self.opt_d.state_dict(), self.sampler, self.noise_gen, self.dropout_gen,
                         **({"net_g_ema": self.ema.net.state_dict()} if self.ema is not None else {}),
                         **({"replay": self.replay.state_dict()} if self.replay is not None else {}))

    def load_state_dict(self, k: int, state: dict[str, Any]) -> None:
        self.net_g.load_state_dict(state["net_g"])
        self.net_d.load_state_dict(state["net_d"])
        for opt, lr in ((self.opt_g, self.lr_g), (self.opt_d, self.lr_d)):
            lr_tensor = opt.param_groups[0]["lr"]  # is `lr`
            opt.load_state_dict(state["opt_g" if opt is self.opt_g else "opt_d"])
            saved = opt.param_groups[0]["lr"]  # a float in checkpoints of older versions
            lr.copy_(saved.to(lr.dtype) if torch.is_tensor(saved) else torch.tensor(saved, dtype=lr.dtype))
            opt.param_groups[0]["lr"] = lr_tensor  # the host float64 tensor the step decays in place
            checkpoint.steps_on_host(opt)
        checkpoint.restore_streams(state, self.sampler, self.noise_gen, self.dropout_gen, self.device)
        if self.ema is not None:
            self.ema.net.load_state_dict(state["net_g_ema"])
        if self.replay is not None:
            self.replay.load_state_dict(state["replay"])

