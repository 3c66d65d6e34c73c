"""The modern stabilisers the update rule can switch on, as functions of explicit inputs.

Each draws its random numbers from the run's noise generator (never the global RNG), only
when its knob is on, and after every draw the folklore hacks make, so runs without them
replay bit for bit. State that outlives a step (the replay buffer, the EMA of G) has a
`state_dict` so checkpoints resume exactly.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

from ganbench.config import TrainConfig


# --- What D sees: DiffAugment and instance noise ---------------------------------------------------

def diff_augment(x: torch.Tensor, policy: str, gen: torch.Generator) -> torch.Tensor:
    """Zhao et al. 2020 (DiffAugment, the authors' PyTorch code): differentiable colour
    (brightness, saturation, contrast), translation by up to 1/8 of the side with zero padding,
    and a cutout of half the side, each drawn per image. Gradients flow to G through it."""
    if policy == "off":
        return x
    n, device = x.shape[0], x.device

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen, device=device, dtype=torch.float32).to(x.dtype)

    for step in policy.split(","):
        if step == "color":
            x = x + (uniform(n, 1, 1, 1) - 0.5)
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * (uniform(n, 1, 1, 1) * 2) + mean
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * (uniform(n, 1, 1, 1) + 0.5) + mean
        elif step == "translation":
            x = _translate(x, gen, ratio=0.125)
        elif step == "cutout":
            x = _cutout(x, gen, ratio=0.5)
    return x


def _translate(x: torch.Tensor, gen: torch.Generator, ratio: float) -> torch.Tensor:
    n, _, h, w = x.shape
    sx, sy = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sx, sx + 1, (n, 1, 1), generator=gen, device=x.device)
    ty = torch.randint(-sy, sy + 1, (n, 1, 1), generator=gen, device=x.device)
    gb, gx, gy = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
    gx = torch.clamp(gx + tx + 1, 0, h + 1)
    gy = torch.clamp(gy + ty + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1).contiguous()[gb, gx, gy].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, gen: torch.Generator, ratio: float) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ox = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=gen, device=x.device)
    oy = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=gen, device=x.device)
    gb, gx, gy = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(ch, device=x.device),
                                torch.arange(cw, device=x.device), indexing="ij")
    gx = torch.clamp(gx + ox - ch // 2, min=0, max=h - 1)
    gy = torch.clamp(gy + oy - cw // 2, min=0, max=w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gx, gy] = 0
    return x * mask.unsqueeze(1)


def instance_noise_std(cfg: TrainConfig, step: int) -> float:
    """Sønderby et al. 2017: σ anneals linearly from `instance_noise` at step 1 to 0 at the last step."""
    if cfg.instance_noise <= 0:
        return 0.0
    return cfg.instance_noise * max(0.0, 1.0 - (step - 1) / max(cfg.steps - 1, 1))


def d_view(cfg: TrainConfig, x: torch.Tensor, step: int, gen: torch.Generator) -> torch.Tensor:
    """The batch as D sees it: augmented (DiffAugment), then noised (instance noise)."""
    x = diff_augment(x, cfg.diffaugment, gen)
    std = instance_noise_std(cfg, step)
    if cfg.instance_noise > 0:  # drawn even at σ = 0 (the last step), so the stream's length never depends on σ
        x = x + std * torch.randn(x.shape, generator=gen, device=x.device, dtype=torch.float32).to(x.dtype)
    return x


# --- Penalties on D's input gradient ----------------------------------------------------------------

def _input_gradient(net_d: torch.nn.Module, x: torch.Tensor, autocast: Any) -> torch.Tensor:
    # A non-leaf input (the clone): torch's FLOP counter hooks D's backward, which refuses a leaf here.
    x = x.detach().float().requires_grad_(True).clone()
    with autocast:
        out = net_d(x).float()
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad.flatten(1)


def gradient_penalty(cfg: TrainConfig, net_d: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     gen: torch.Generator, autocast: Any) -> torch.Tensor:
    """Gulrajani et al. 2017: λ·E[(‖∇D(x̂)‖₂ − 1)²] at x̂ = εx + (1 − ε)G(z), ε ~ U[0, 1] per image."""
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=gen, device=real.device)
    mixed = eps * real.float() + (1 - eps) * fake.detach().float()
    grad = _input_gradient(net_d, mixed, autocast)
    norm = (grad.pow(2).sum(1) + 1e-12).sqrt()
    return cfg.gp_weight * ((norm - 1) ** 2).mean()


def r1_penalty(cfg: TrainConfig, net_d: torch.nn.Module, real: torch.Tensor, autocast: Any) -> torch.Tensor:
    """Mescheder et al. 2018: γ/2·E[‖∇ₓD(x)‖²] on real images."""
    grad = _input_gradient(net_d, real, autocast)
    return 0.5 * cfg.r1_gamma * grad.pow(2).sum(1).mean()


# --- State that outlives a step -----------------------------------------------------------------------

class ReplayBuffer:
    """ganhacks tip 13 (after Shrivastava et al. 2017): D's fake batch is half fresh fakes, half
    fakes drawn from the last `size` images G made (once the buffer holds half a batch). Half of
    each fresh batch enters the buffer; once full, at random positions."""

    def __init__(self, size: int, device: torch.device) -> None:
        self.size, self.device = size, device
        self.images: torch.Tensor | None = None
        self.filled = 0

    def mix(self, fake: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The D fake batch for this update (fake is detached)."""
        fake = fake.detach()
        half = fake.shape[0] // 2
        if self.images is None:
            self.images = torch.empty(self.size, *fake.shape[1:], device=self.device)
        out = fake
        if self.filled >= half:
            pick = torch.randint(self.filled, (half,), generator=gen, device=self.device)
            out = torch.cat([self.images[pick].to(fake.dtype), fake[half:]])
        new = fake[:half].float()
        room = min(self.size - self.filled, half)
        self.images[self.filled:self.filled + room] = new[:room]
        self.filled += room
        if room < half:
            where = torch.randint(self.size, (half - room,), generator=gen, device=self.device)
            self.images[where] = new[room:]
        return out

    def state_dict(self) -> dict[str, Any]:
        images = self.images[:self.filled].cpu().clone() if self.images is not None else None
        return {"images": images, "filled": self.filled}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.filled = int(state["filled"])
        if state["images"] is not None:
            stored = state["images"].to(self.device)
            self.images = torch.empty(self.size, *stored.shape[1:], device=self.device)
            self.images[:self.filled] = stored


class WeightAverage:
    """Karras et al. 2018 / Yazıcı et al. 2019: an exponential moving average of G's weights
    (batch-norm statistics copied), always in eval mode; it makes the run's samples and metrics.

    The decay warms up as TensorFlow's ExponentialMovingAverage with `num_updates` does:
    min(decay, (1 + t) / (10 + t)) at step t. Without it, a 0.999 average after 800 steps would
    still be 45 % the untrained initial weights (0.999^800), and a short run's samples noise."""

    def __init__(self, net: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.net = copy.deepcopy(net).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, net: torch.nn.Module, step: int) -> None:
        """Fold in `net`'s weights after training step `step` (1-based)."""
        decay = self.decay_at(step)
        for avg, p in zip(self.net.parameters(), net.parameters()):
            avg.lerp_(p, 1 - decay)
        for avg, b in zip(self.net.buffers(), net.buffers()):
            avg.copy_(b)
