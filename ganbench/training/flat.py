"""`FlatParams`: the parameters of K copies of one network as views of one (K, P) buffer, their
gradients as views of a second one, and one Adam update over the whole buffer.

Run k's parameters are the contiguous row `values[k]` (in the network's `named_parameters`
order), so a run's checkpoint is a few slices of one row, and every per-run scalar of the
optimiser (lr, betas, bias corrections, the active mask) is a (K, 1) column broadcast over P:
about a dozen kernels per network per update, whatever its number of parameters (Adam per
parameter tensor launched ~16 per tensor).
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch

from ganbench.training.update import ADAM_EPS

# A parameter that is a row slice of (K, P) has strides (P, …); its gradient is the same slice of
# the gradient buffer, so autograd accumulates in place into it. Autograd warns that such a
# gradient is not "contiguous like a fresh one"; that is the point of the layout.
warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout contract")


class FlatParams:
    """Parameters, gradients and Adam moments of K networks of one shape, as (K, P) buffers."""

    def __init__(self, nets: Sequence[torch.nn.Module]) -> None:
        named = list(nets[0].named_parameters())
        self.names = [name for name, _ in named]
        self.shapes = {name: p.shape for name, p in named}
        sizes = [p.numel() for _, p in named]
        self.offsets = dict(zip(self.names, [sum(sizes[:i]) for i in range(len(sizes))]))
        self.k, total = len(nets), sum(sizes)
        first = named[0][1]
        self.values = torch.empty(self.k, total, dtype=first.dtype, device=first.device)
        for k, net in enumerate(nets):
            with torch.no_grad():
                self.values[k].copy_(torch.cat([p.detach().reshape(-1) for p in net.parameters()]))
        self.grads = torch.zeros_like(self.values)
        self.exp_avg = torch.zeros_like(self.values)
        self.exp_avg_sq = torch.zeros_like(self.values)
        self.params = {name: self._view(self.values, name).requires_grad_(True) for name in self.names}
        for name, p in self.params.items():
            p.grad = self._view(self.grads, name)

    def _view(self, buffer: torch.Tensor, name: str) -> torch.Tensor:
        offset, shape = self.offsets[name], self.shapes[name]
        return buffer[:, offset:offset + math.prod(shape)].view(self.k, *shape)

    def run_values(self, k: int, buffer: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Run k's tensors of `buffer` (default: the parameters), one per parameter, in order."""
        buffer = self.values if buffer is None else buffer
        return [self._view(buffer, name)[k] for name in self.names]

    def zero_grad(self) -> None:
        self.grads.zero_()

    def grad_norms(self) -> torch.Tensor:
        """Each run's total gradient norm (K): the 2-norm of its whole gradient row."""
        return self.grads.norm(dim=1).float()

    @torch.no_grad()
    def adam(self, lr: torch.Tensor, beta1: torch.Tensor, beta2: torch.Tensor, step: torch.Tensor,
             active: torch.Tensor) -> None:
        """torch.optim.Adam's single-tensor update (what the single-run trainer runs on the CPU) over
        the whole buffer, with per-run lr and betas (float64 K-vectors, as Python floats in torch's
        bias corrections). `step` is each run's update count after this one; runs that are not
        `active` keep their parameters and moments."""
        column = (-1, 1)
        bc1, bc2 = 1 - beta1 ** step, 1 - beta2 ** step
        # The scalars as torch.optim.Adam forms them: in double, then cast to float once.
        step_size = (lr / bc1).float().view(column)
        bc2_sqrt = bc2.sqrt().float().view(column)
        one_minus_b1, one_minus_b2 = (1 - beta1).float().view(column), (1 - beta2).float().view(column)
        b2 = beta2.float().view(column)
        g, m, v, p = self.grads, self.exp_avg, self.exp_avg_sq, self.values
        new_m = torch.lerp(m, g, one_minus_b1)
        # torch's kernels compute `addcmul_(g, g, value=w)` as v + (w·g)·g and `addcdiv_(m, d, value=s)`
        # as p + (s·m)/d; the per-run scalars enter the same products, so each run's update is
        # bit-identical to torch.optim.Adam's (tests/test_stacked.py).
        new_v = torch.addcmul(v * b2, one_minus_b2 * g, g)
        denom = (new_v.sqrt() / bc2_sqrt).add_(ADAM_EPS)
        new_p = torch.addcdiv(p, new_m * -step_size, denom)
        keep = active.view(column)
        m.copy_(torch.where(keep, new_m, m))
        v.copy_(torch.where(keep, new_v, v))
        p.copy_(torch.where(keep, new_p, p))
