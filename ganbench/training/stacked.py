"""`StackedNet`: K copies of one G or D computed as one network in HFTA's layout.

HFTA (UofT-EcoSystem/hfta, `hfta/ops/`) fuses K models by keeping every activation in a layout
that the batched op reads as it is, so nothing is copied between layers:

- feature maps as (N, K·C, H, W): run k owns channels k·C … (k+1)·C − 1. A convolution is one
  grouped convolution (groups = K, the bias inside), a transposed one one grouped transposed
  convolution, batch norm one `F.batch_norm` over K·C channels with the real affine, and every
  per-channel op (pooling, upsampling, padding, activations) runs unchanged;
- feature vectors as (K, N, F): a linear layer is one `baddbmm`.

The layout changes only where the network changes shape (`Unflatten`, `Flatten`). vmap, in
contrast, moves the run axis into the channels and back around every conv and batch norm and
applies the affine apart (see `VmapNet`, kept for the benchmark that compares the two).

Parameters live in a `FlatParams` (one (K, P) buffer per network); batch-norm buffers are
stacked (K, …) tensors that `F.batch_norm` updates in place. Per-run numbers the layers hold are
per-run tensors: LeakyReLU's slope (a numeric knob), and dropout, whose masks come from each
run's own generator with the shape, dtype and order `models.RunDropout` draws them.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state

from ganbench.models import Discriminator, RunDropout
from ganbench.training.flat import FlatParams

MAP, VEC = "map", "vec"  # (N, K·C, H, W) and (K, N, F)


def to_map(x: torch.Tensor) -> torch.Tensor:
    """(K, N, C, H, W) images of K runs → (N, K·C, H, W)."""
    k, n, c = x.shape[:3]
    return x.transpose(0, 1).reshape(n, k * c, *x.shape[3:])


def from_map(x: torch.Tensor, k: int) -> torch.Tensor:
    """(N, K·C, H, W) → (K, N, C, H, W)."""
    n, kc = x.shape[:2]
    return x.view(n, k, kc // k, *x.shape[2:]).transpose(0, 1)


class DropoutMasks:
    """Each run's dropout masks, drawn from its own generator in the order the layers ask.

    Eager: every request draws K masks, as `RunDropout` would alone. Under a CUDA graph the masks
    cannot be drawn inside (the run generators are not the graph's): `record()` notes the requests
    of an eager step, `capture()` hands out static buffers in the same order while the graph is
    captured, and `refill()` draws each step's masks into them before the replay."""

    def __init__(self, generators: Sequence[torch.Generator]) -> None:
        self.generators = list(generators)
        self.mode = "eager"  # eager | record | capture
        self.requests: list[tuple[tuple[int, ...], torch.dtype, tuple[float, ...], str]] = []
        self.static: list[torch.Tensor] = []
        self._next = 0

    def _draw(self, shape: tuple[int, ...], dtype: torch.dtype, ps: tuple[float, ...], layout: str,
              device: torch.device) -> torch.Tensor:
        """One mask per run (run k keeps with probability 1 − ps[k]), stacked in the layout."""
        masks = [torch.empty(shape, dtype=dtype, device=device).bernoulli_(1 - p, generator=g).div_(1 - p)
                 for g, p in zip(self.generators, ps, strict=True)]
        if layout == VEC:
            return torch.stack(masks)
        n, c = shape[:2]
        return torch.stack(masks, 1).view(n, len(masks) * c, *shape[2:])

    def __call__(self, shape: tuple[int, ...], dtype: torch.dtype, ps: tuple[float, ...], layout: str,
                 device: torch.device) -> torch.Tensor:
        if self.mode == "capture":
            self._next += 1
            return self.static[self._next - 1]
        if self.mode == "record":
            self.requests.append((shape, dtype, ps, layout))
        return self._draw(shape, dtype, ps, layout, device)

    def record(self) -> None:
        """Note the requests of the next (eager) step."""
        self.mode, self.requests = "record", []

    def capture(self, device: torch.device) -> None:
        """Allocate one static buffer per recorded request (before the capture), and hand them out in
        order while the graph is captured."""
        k = len(self.generators)
        self.static = [torch.empty((k, *shape) if layout == VEC else (shape[0], k * shape[1], *shape[2:]),
                                   dtype=dtype, device=device) for shape, dtype, _, layout in self.requests]
        self.mode, self._next = "capture", 0

    def refill(self) -> None:
        """Draw this step's masks into the static buffers, in the recorded order."""
        self.mode = "eager"
        for buffer, request in zip(self.static, self.requests, strict=True):
            buffer.copy_(self._draw(*request, buffer.device))

    def states(self) -> list[torch.Tensor]:
        return [g.get_state() for g in self.generators]

    def set_states(self, states: Sequence[torch.Tensor]) -> None:
        for g, state in zip(self.generators, states):
            g.set_state(state)


class StackedNet:
    """K networks of one shape (the `net` Sequential of a `Generator` or `Discriminator`) as one."""

    def __init__(self, nets: Sequence[nn.Module], slopes: Sequence[float], masks: DropoutMasks | None = None) -> None:
        self.k = len(nets)
        self.flat = FlatParams(nets)
        self.params = self.flat.params
        _, self.buffers = stack_module_state(list(nets))
        self.state_names = list(nets[0].state_dict())
        self.masks = masks
        self.training = True
        self.squeeze = isinstance(nets[0], Discriminator)  # D returns (K, N) logits
        device = self.flat.values.device
        slope = torch.tensor(list(slopes), dtype=torch.float32, device=device)
        self.slope = float(slopes[0]) if len(set(slopes)) == 1 else slope
        self.layers: list[Callable[[torch.Tensor, bool], torch.Tensor]] = [
            self._layer(f"net.{i}", module, [net.net[i] for net in nets]) for i, module in enumerate(nets[0].net)]

    def __call__(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """x: latents (K, N, Z) for G, images in the map layout (N, K·C, H, W) for D. G returns images
        in the map layout, D logits (K, N). `frozen`: no gradients for this network's weights."""
        for layer in self.layers:
            x = layer(x, frozen)
        return x.squeeze(-1) if self.squeeze else x

    def train(self, mode: bool) -> None:
        self.training = mode

    def zero_grad(self) -> None:
        self.flat.zero_grad()

    def grad_norms(self) -> torch.Tensor:
        return self.flat.grad_norms()

    def _weight(self, name: str, frozen: bool) -> torch.Tensor:
        p = self.params[name]
        return p.detach() if frozen else p

    def _layer(self, prefix: str, m: nn.Module, per_run: list[nn.Module]) -> Callable[[torch.Tensor, bool], torch.Tensor]:
        """The stacked form of layer `m` (a function of the activation and `frozen`); `per_run`: that
        layer in each run's network (for the numbers a layer holds, such as dropout's p)."""
        k, w = self.k, self._weight
        if isinstance(m, nn.Linear):  # (K, N, in) → (K, N, out): one baddbmm
            return lambda x, f: torch.baddbmm(w(f"{prefix}.bias", f).unsqueeze(1), x,
                                               w(f"{prefix}.weight", f).transpose(1, 2))
        if isinstance(m, nn.Conv2d):
            return lambda x, f: F.conv2d(x, w(f"{prefix}.weight", f).reshape(-1, *m.weight.shape[1:]),
                                         w(f"{prefix}.bias", f).reshape(-1), m.stride, m.padding, m.dilation, k)
        if isinstance(m, nn.ConvTranspose2d):
            return lambda x, f: F.conv_transpose2d(x, w(f"{prefix}.weight", f).reshape(-1, *m.weight.shape[1:]),
                                                   w(f"{prefix}.bias", f).reshape(-1), m.stride, m.padding,
                                                   m.output_padding, k, m.dilation)
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return self._batch_norm(prefix, m)
        if isinstance(m, nn.LeakyReLU):
            return self._leaky_relu
        if isinstance(m, nn.Unflatten):  # (K, N, C·H·W) → (N, K·C, H, W)
            return lambda x, f: to_map(x.view(k, x.shape[1], *m.unflattened_size))
        if isinstance(m, nn.Flatten):  # (N, K·C, H, W) → (K, N, C·H·W), C·H·W in nn.Flatten's order
            return lambda x, f: from_map(x, k).flatten(2)
        if isinstance(m, RunDropout):
            return self._dropout(tuple(layer.p for layer in per_run))
        if isinstance(m, (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Upsample, nn.ZeroPad2d, nn.AvgPool2d,
                          nn.AdaptiveAvgPool2d)):
            return lambda x, f: m(x)  # per channel (or elementwise): the same in either layout
        raise ValueError(f"the stacked trainer has no form of {type(m).__name__} ({prefix})")

    def _batch_norm(self, prefix: str, m: nn.Module) -> Callable[[torch.Tensor, bool], torch.Tensor]:
        mean, var = self.buffers[f"{prefix}.running_mean"], self.buffers[f"{prefix}.running_var"]
        tracked = self.buffers[f"{prefix}.num_batches_tracked"]

        def batch_norm(x: torch.Tensor, frozen: bool) -> torch.Tensor:
            vec = x.dim() == 3  # BatchNorm1d on (K, N, F): one call over (N, K·F)
            flat_x = x.transpose(0, 1).reshape(x.shape[1], -1) if vec else x
            if self.training:
                tracked.add_(1)
            out = F.batch_norm(flat_x, mean.view(-1), var.view(-1), self._weight(f"{prefix}.weight", frozen).reshape(-1),
                               self._weight(f"{prefix}.bias", frozen).reshape(-1), self.training, m.momentum, m.eps)
            return out.view(x.shape[1], self.k, -1).transpose(0, 1) if vec else out
        return batch_norm

    def _leaky_relu(self, x: torch.Tensor, frozen: bool) -> torch.Tensor:
        if isinstance(self.slope, float):
            return F.leaky_relu(x, self.slope)
        # x > 0 ? x : x·slope — LeakyReLU's own formula, forward and backward, with a slope per run
        shape = (self.k, 1, 1) if x.dim() == 3 else (1, self.k, 1, 1, 1)
        if x.dim() == 3:
            return torch.where(x > 0, x, x * self.slope.view(shape).to(x.dtype))
        n, kc = x.shape[:2]
        grouped = x.view(n, self.k, kc // self.k, *x.shape[2:])
        return torch.where(grouped > 0, grouped, grouped * self.slope.view(shape).to(x.dtype)).view_as(x)

    def _dropout(self, ps: tuple[float, ...]) -> Callable[[torch.Tensor, bool], torch.Tensor]:
        def dropout(x: torch.Tensor, frozen: bool) -> torch.Tensor:
            if not self.training:
                return x
            assert self.masks is not None, "a network with dropout needs the runs' dropout generators"
            vec = x.dim() == 3
            shape = tuple(x.shape[1:]) if vec else (x.shape[0], x.shape[1] // self.k, *x.shape[2:])
            return x * self.masks(shape, x.dtype, ps, VEC if vec else MAP, x.device)
        return dropout

    # Run k as a plain module's state.
    def run_state(self, k: int) -> dict[str, torch.Tensor]:
        merged = {**dict(zip(self.flat.names, self.flat.run_values(k))), **{n: b[k] for n, b in self.buffers.items()}}
        return {name: merged[name].detach().clone() for name in self.state_names}

    @torch.no_grad()
    def load_run_state(self, k: int, state: dict[str, torch.Tensor]) -> None:
        values = dict(zip(self.flat.names, self.flat.run_values(k)))
        for name, value in state.items():
            (values[name] if name in values else self.buffers[name][k]).copy_(value)


class VmapNet(StackedNet):
    """The first fused engine's forward (`vmap(functional_call)` over the stacked parameters), kept only
    so `benchmarks/gpu_window.py` can time the two layouts against each other. No dropout, one slope."""

    def __init__(self, nets: Sequence[nn.Module], slopes: Sequence[float], masks: DropoutMasks | None = None) -> None:
        if len(set(slopes)) > 1 or any(isinstance(m, RunDropout) for m in nets[0].modules()):
            raise ValueError("the vmap engine takes neither per-run slopes nor dropout")
        super().__init__(nets, slopes, masks)
        self.template = copy.deepcopy(nets[0]).to("meta")

    def __call__(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        params = {n: (p.detach() if frozen else p) for n, p in self.params.items()}
        self.template.train(self.training)
        vmap_in = from_map(x, self.k) if self.squeeze else x  # vmap maps over a leading run axis

        def one(p: dict[str, Any], b: dict[str, Any], xi: torch.Tensor) -> torch.Tensor:
            return functional_call(self.template, (p, b), (xi,))

        out = torch.func.vmap(one, randomness="error")(params, self.buffers, vmap_in)
        return out if self.squeeze else to_map(out)
