"""The only training loop. It reads knobs, never hack names.

A run directory holds:

    config.json    resolved config, preset, hacks, versions, git commit, machine
    stats.jsonl    one row per `log_every` steps: means of the losses, D outputs, grad norms
    metrics.jsonl  one row per metric value per evaluation, with its provenance
    samples/       step_XXXXXX.png grids of G(fixed noise), G in eval mode
    checkpoint.pt  nets, optimisers, RNG and sampler states: a killed run resumes from it
    status.json    running / completed / diverged / failed / interrupted, with the error
"""

from __future__ import annotations

import math
import os
import socket
import time
import traceback
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.utils import save_image

from ganbench import runio
from ganbench.config import ConfigError, TrainConfig
from ganbench.data import BatchSampler, SamplerState, load_images
from ganbench.metrics import Evaluator, make_evaluator, summarize
from ganbench.models import build_models
from ganbench.provenance import provenance

STAT_NAMES = ("loss_d", "loss_g", "d_real", "d_fake_before", "d_fake_after", "grad_norm_d", "grad_norm_g")
FIXED_NOISE_SEED = 20151119  # one fixed-noise batch for every run, so grids of different arms compare
Progress = Callable[[int, int, dict[str, Any] | None], None]


class Diverged(RuntimeError):
    """A loss or statistic became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{name}' asked for, but CUDA is not available here; use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device '{name}' asked for, but only {torch.cuda.device_count()} GPU(s) are visible")
    return device


def sample_latent(cfg: TrainConfig, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """z of shape n×latent_dim from the run's latent distribution."""
    if cfg.latent_dist == "gaussian":
        return torch.randn(n, cfg.latent_dim, generator=generator, device=device)
    return torch.rand(n, cfg.latent_dim, generator=generator, device=device).mul_(2).sub_(1)


def fixed_noise(cfg: TrainConfig, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(FIXED_NOISE_SEED)
    return sample_latent(cfg, cfg.sample_grid, gen, torch.device("cpu")).to(device)


class GanTrainer:
    """G, D, their optimisers and every source of randomness of one run."""

    def __init__(self, cfg: TrainConfig, images: torch.Tensor | np.ndarray, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        torch.manual_seed(cfg.seed)  # init and dropout
        self.net_g, self.net_d = (net.to(device) for net in build_models(cfg))
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.net_g.parameters(), lr=cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.net_d.parameters(), lr=cfg.lr_d, betas=betas)
        self.sampler = BatchSampler(images, cfg.batch_size, cfg.pixel_range, device, cfg.seed)
        self.noise_gen = torch.Generator(device=device).manual_seed(cfg.seed)  # latents and label noise
        self.autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if cfg.precision == "bf16"
                         else nullcontext())
        self.real_target = cfg.real_label - cfg.label_smoothing

    def set_learning_rates(self, step: int) -> None:
        """Keras' inverse-time decay: lr / (1 + decay·step)."""
        if self.cfg.lr_decay > 0:
            factor = 1.0 / (1.0 + self.cfg.lr_decay * step)
            self.opt_d.param_groups[0]["lr"] = self.cfg.lr_d * factor
            self.opt_g.param_groups[0]["lr"] = self.cfg.lr_g * factor

    def d_targets(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(real, fake) BCE targets after smoothing, jitter and random flips."""
        cfg, gen, dev = self.cfg, self.noise_gen, self.device
        real = torch.full((n,), self.real_target, device=dev)
        if cfg.real_label_jitter > 0:
            real += cfg.real_label_jitter * torch.rand(n, generator=gen, device=dev)
        fake = torch.full((n,), cfg.fake_label, device=dev)
        if cfg.label_flip_p > 0:
            flip_real = torch.rand(n, generator=gen, device=dev) < cfg.label_flip_p
            flip_fake = torch.rand(n, generator=gen, device=dev) < cfg.label_flip_p
            real, fake = torch.where(flip_real, cfg.fake_label, real), torch.where(flip_fake, self.real_target, fake)
        return real, fake

    def d_step(self, keep_fake: bool) -> tuple[torch.Tensor, ...]:
        """One D update. Returns (loss, mean D(x), mean D(G(z)), grad norm, fake batch or None)."""
        cfg, n = self.cfg, self.cfg.batch_size
        real = self.sampler.next()
        z = sample_latent(cfg, n, self.noise_gen, self.device)
        # The last D step keeps G's graph so the G step reuses this fake batch (as pytorch/examples).
        with self.autocast, (nullcontext() if keep_fake else torch.no_grad()):
            fake = self.net_g(z)
        t_real, t_fake = self.d_targets(n)
        with self.autocast:
            if cfg.d_batch == "separate":
                logit_real, logit_fake = self.net_d(real).float(), self.net_d(fake.detach()).float()
            else:  # one shuffled batch of both: BN in D sees mixed statistics
                perm = torch.randperm(2 * n, generator=self.noise_gen, device=self.device)
                mixed = torch.cat([real, fake.detach().to(real.dtype)])[perm]
                logits = torch.empty(2 * n, device=self.device)
                logits[perm] = self.net_d(mixed).float()
                logit_real, logit_fake = logits[:n], logits[n:]
        # Sum of the two means for both batch modes, so loss_d is comparable between them.
        loss = (F.binary_cross_entropy_with_logits(logit_real, t_real)
                + F.binary_cross_entropy_with_logits(logit_fake, t_fake))
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = grad_total_norm(self.net_d)
        self.opt_d.step()
        return (loss.detach(), torch.sigmoid(logit_real).mean().detach(), torch.sigmoid(logit_fake).mean().detach(),
                grad_norm, fake if keep_fake else None)

    def g_step(self, fake: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """One G update against the current D. Returns (loss, mean D(G(z)) after the D step, grad norm)."""
        cfg = self.cfg
        if fake is None:
            z = sample_latent(cfg, cfg.batch_size, self.noise_gen, self.device)
            with self.autocast:
                fake = self.net_g(z)
        self.net_d.requires_grad_(False)  # D's weight gradients are not needed here
        with self.autocast:
            logits = self.net_d(fake).float()
        self.net_d.requires_grad_(True)
        if cfg.g_loss == "nonsaturating":
            loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))  # −log D(G(z))
        else:
            loss = -F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))  # log(1 − D(G(z)))
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = grad_total_norm(self.net_g)
        self.opt_g.step()
        return loss.detach(), torch.sigmoid(logits).mean().detach(), grad_norm

    def train_step(self) -> torch.Tensor:
        """One iteration: d_steps D updates, then g_steps G updates. Returns STAT_NAMES as one tensor."""
        cfg = self.cfg
        # Update D.
        reuse = cfg.g_latents == "reuse"
        for i in range(cfg.d_steps):
            loss_d, d_real, d_fake_before, norm_d, fake = self.d_step(keep_fake=reuse and i == cfg.d_steps - 1)
        # Update G.
        for i in range(cfg.g_steps):
            loss_g, d_fake_after, norm_g = self.g_step(fake if i == 0 else None)
        return torch.stack([loss_d, loss_g, d_real, d_fake_before, d_fake_after, norm_d, norm_g]).float()

    @torch.no_grad()
    def samples(self, noise: torch.Tensor) -> torch.Tensor:
        """G(noise) in eval mode (BN running statistics), mapped to [0, 1]."""
        self.net_g.eval()
        with self.autocast:
            images = self.net_g(noise).float()
        self.net_g.train()
        low, high = self.cfg.pixel_range
        return ((images - low) / (high - low)).clamp_(0, 1)

    def state_dict(self, step: int, extra: dict[str, Any]) -> dict[str, Any]:
        sampler = self.sampler.state()
        return {
            "step": step,
            "net_g": self.net_g.state_dict(), "net_d": self.net_d.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "sampler": {"order": sampler.order, "cursor": sampler.cursor, "generator": sampler.generator},
            "noise_gen": self.noise_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            **extra,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net_g.load_state_dict(state["net_g"])
        self.net_d.load_state_dict(state["net_d"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        s = state["sampler"]
        self.sampler.load_state(SamplerState(s["order"], s["cursor"], s["generator"]))
        self.noise_gen.set_state(state["noise_gen"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)


def grad_total_norm(net: torch.nn.Module) -> torch.Tensor:
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads).float()


def save_grid(images: torch.Tensor, path: Path) -> None:
    nrow = int(math.isqrt(images.shape[0]))
    runio.atomic_write(path, lambda tmp: save_image(images, tmp, nrow=nrow, padding=2, format="png"))


def train(cfg: TrainConfig, run_dir: str | Path, *, preset: str | None = None, hacks: Sequence[str] = (),
          data_root: str | Path | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Train one GAN into `run_dir` and return its status dict.

    Resumes from `run_dir/checkpoint.pt` when present; a completed run is returned as is.
    Divergence (a non-finite statistic) ends the run with status 'diverged'. Any other
    exception is recorded as 'failed' (or 'interrupted' on Ctrl-C) and re-raised.
    """
    run_dir = Path(run_dir)
    status_path = run_dir / "status.json"
    previous = runio.read_json(status_path) if status_path.exists() else {}
    if previous.get("status") in ("completed", "diverged"):
        return previous  # finished: a diverged run would only diverge again
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    status: dict[str, Any] = {"status": "running", "step": 0, "steps": cfg.steps, "error": None,
                              "started_at": started, "host": socket.gethostname(), "pid": os.getpid()}
    try:
        device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        runio.write_json(run_dir / "config.json", {"config": cfg.to_dict(), "preset": preset, "hacks": list(hacks),
                                                    "provenance": provenance(device)})
        runio.write_json(status_path, status)
        evaluator = make_evaluator(cfg, device, data_root)  # fails here, before training, on a bad metric
        loaded = load_images(cfg, data_root)
        status["data"] = loaded.info  # cache hit, load time, memory: provenance and cost of the data
        runio.write_json(status_path, status)
        trainer = GanTrainer(cfg, loaded.images, device)
        _loop(trainer, run_dir, status, progress, evaluator)
        status["status"] = "completed"
    except Diverged as err:
        status.update(status="diverged", error=str(err))
    except KeyboardInterrupt:
        status.update(status="interrupted", error="interrupted by the user (Ctrl-C); re-run to resume")
        raise
    except Exception as err:
        status.update(status="failed", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
        raise
    finally:
        status.update(finished_at=time.time(), wall_s=round(time.time() - started, 3))
        runio.write_json(status_path, status)
    return status


def _loop(trainer: GanTrainer, run_dir: Path, status: dict[str, Any], progress: Progress | None,
          evaluator: Evaluator | None) -> None:
    cfg, device = trainer.cfg, trainer.device
    stats_path, metrics_path, ckpt_path = run_dir / "stats.jsonl", run_dir / "metrics.jsonl", run_dir / "checkpoint.pt"
    noise = fixed_noise(cfg, device)
    acc = torch.zeros(len(STAT_NAMES), device=device)
    count, start = 0, 0
    if ckpt_path.exists():
        # On the CPU: RNG states must stay CPU tensors; load_state_dict moves weights and
        # optimiser moments to the parameters' device.
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        trainer.load_state_dict(state)
        start, count, acc = state["step"], state["count"], state["acc"].to(device)
        # Rows logged after the checkpoint will be logged again, identically.
        for path in (stats_path, metrics_path):
            runio.write_jsonl(path, [r for r in runio.read_jsonl(path) if r["step"] <= start])
        status["resumed_from"] = start
    else:  # a run that died before its first checkpoint starts over
        stats_path.unlink(missing_ok=True)
        metrics_path.unlink(missing_ok=True)
    if progress:
        progress(start, cfg.steps, None)
    tick = time.perf_counter()
    for step in range(start + 1, cfg.steps + 1):
        trainer.set_learning_rates(step - 1)
        acc += trainer.train_step()
        count += 1
        last = step == cfg.steps
        # Log interval means (one host sync per interval); a non-finite mean ends the run.
        if step % cfg.log_every == 0 or last:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            elapsed, tick = time.perf_counter() - tick, time.perf_counter()
            means = (acc / count).tolist()
            row = {"step": step, **dict(zip(STAT_NAMES, means)), "lr_d": trainer.opt_d.param_groups[0]["lr"],
                   "lr_g": trainer.opt_g.param_groups[0]["lr"], "step_time_s": elapsed / count}
            runio.append_jsonl(stats_path, row)
            acc.zero_()
            count = 0
            status["step"], status["last_stats"] = step, {k: runio.finite_or_none(v) for k, v in row.items()}
            bad = [name for name, value in zip(STAT_NAMES, means) if not math.isfinite(value)]
            if bad:
                raise Diverged(f"non-finite {', '.join(bad)} in steps {step - cfg.log_every + 1}–{step}")
            if progress:
                progress(step, cfg.steps, row)
        if evaluator and ((cfg.eval_every and step % cfg.eval_every == 0) or last):
            rows = evaluator(trainer.net_g, step)
            for row in rows:
                runio.append_jsonl(metrics_path, row)
            status["metrics"] = {"step": step, **summarize(rows)}
        if (cfg.sample_every and step % cfg.sample_every == 0) or last:
            save_grid(trainer.samples(noise), run_dir / "samples" / f"step_{step:06d}.png")
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or last:
            state = trainer.state_dict(step, {"count": count, "acc": acc.cpu()})
            runio.atomic_write(ckpt_path, lambda tmp: torch.save(state, tmp))
    if evaluator and "metrics" not in status:  # resumed from the final checkpoint: the last evaluation is on disk
        rows = [r for r in runio.read_jsonl(metrics_path) if r["step"] == cfg.steps]
        status["metrics"] = {"step": cfg.steps, **summarize(rows)}
