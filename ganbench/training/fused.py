"""`FusedTrainer`: K runs with the same network shapes and control flow trained as one.

Each run's G and D are built exactly as `GanTrainer` builds them (same seed, same
initialisation), then their parameters, batch-norm buffers and Adam moments are stacked on
a leading K axis (`torch.func.stack_module_state`) and every forward pass is one
`vmap(functional_call)` over the stack, so the K networks run as one batched computation.
Knobs that only change numbers are per-run tensors (learning rates, Adam betas, label
targets, jitter, flip probability, the G loss), so runs of different arms fuse.

Every random number comes from the run's own generators, drawn in the order `GanTrainer`
draws it (data order, latents, label noise, flips, the mixed batch's shuffle), so a run
trained here gets the numbers it would get alone, up to float reassociation in the batched
kernels. Checkpoints are written in `GanTrainer`'s format, one per run: a run started fused
resumes alone and the reverse.

On CUDA the whole update (both networks, both optimisers, the statistics) is captured once
in a CUDA graph and replayed every step; the random inputs are drawn outside the graph
into static buffers, so the graph has no host synchronisation and no random state of its own.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import torch
from torch.func import functional_call, stack_module_state

from ganbench.config import TrainConfig, fusion_key, trains_alone
from ganbench.data.sampler import BatchSampler, SamplerState
from ganbench.models import Generator, build_models
from ganbench.training import update
from ganbench.training.checkpoint import adam_state, run_state
from ganbench.training.protocol import stat_rows
from ganbench.training.single import dropout_generator
from ganbench.training.update import ADAM_EPS



class _Stack:
    """One network of K runs: stacked parameters, buffers and Adam moments, and a meta-device
    template module for functional calls."""

    def __init__(self, nets: Sequence[torch.nn.Module]) -> None:
        self.template = copy.deepcopy(nets[0]).to("meta")
        params, buffers = stack_module_state(list(nets))
        self.params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        self.buffers = buffers
        self.exp_avg = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.param_names = list(self.params)
        self.state_names = list(nets[0].state_dict())

    def __call__(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        params = {k: v.detach() for k, v in self.params.items()} if frozen else self.params

        def one(p: dict, b: dict, xi: torch.Tensor) -> torch.Tensor:
            return functional_call(self.template, (p, b), (xi,))

        return torch.func.vmap(one, randomness="error")(params, self.buffers, x)

    def train(self, mode: bool) -> None:
        self.template.train(mode)

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def grad_norms(self) -> torch.Tensor:
        """Per-run total gradient norm (K), as `torch.nn.utils.get_total_norm` per run."""
        norms = [p.grad.flatten(1).norm(dim=1) for p in self.params.values() if p.grad is not None]
        return torch.stack(norms, 1).norm(dim=1).float()

    @torch.no_grad()
    def adam(self, lr: torch.Tensor, beta1: torch.Tensor, beta2: torch.Tensor, step: torch.Tensor,
             active: torch.Tensor) -> None:
        """torch.optim.Adam's single-tensor update, elementwise over the stacks with per-run lr and
        betas (float64 K-vectors). `step` is the per-run update count after this update; runs that
        are not `active` keep their parameters and moments."""
        bc1, bc2 = 1 - beta1 ** step, 1 - beta2 ** step
        step_size = (lr / bc1).float()
        bc2_sqrt = bc2.sqrt().float()
        w1, w2, beta2_32 = (1 - beta1).float(), (1 - beta2).float(), beta2.float()
        for name, p in self.params.items():
            shape = (-1,) + (1,) * (p.dim() - 1)
            g, m, v = p.grad, self.exp_avg[name], self.exp_avg_sq[name]
            # The scalars as torch.optim.Adam forms them: in double, then cast to float once.
            b2, one_minus_b1, one_minus_b2 = beta2_32.view(shape), w1.view(shape), w2.view(shape)
            new_m = torch.lerp(m, g, one_minus_b1)
            new_v = v * b2 + one_minus_b2 * (g * g)
            denom = (new_v.sqrt() / bc2_sqrt.view(shape)).add_(ADAM_EPS)
            new_p = p - step_size.view(shape) * (new_m / denom)
            keep = active.view(shape)
            m.copy_(torch.where(keep, new_m, m))
            v.copy_(torch.where(keep, new_v, v))
            p.copy_(torch.where(keep, new_p, p))


class FusedTrainer:
    """K ≥ 1 runs of one `structure_key`, trained as one stacked network (the trainer protocol)."""

    def __init__(self, cfgs: Sequence[TrainConfig], images: torch.Tensor | np.ndarray, device: torch.device,
                 graphs: bool | None = None) -> None:
        keys = {fusion_key(c) for c in cfgs}
        if None in keys or len(keys) != 1:
            alone = sorted({k for c in cfgs for k in trains_alone(c)})
            raise ValueError("runs fused into one trainer must share one config.fusion_key"
                             + (f"; {', '.join(alone)} keep a run out of fused groups" if alone else ""))
        self.configs, self.device, self.k = tuple(cfgs), device, len(cfgs)
        cfg0 = cfgs[0]
        nets_g, nets_d, self.dropout_gens = [], [], []
        for cfg in cfgs:  # each run initialised exactly as GanTrainer initialises it
            torch.manual_seed(cfg.seed)
            net_g, net_d = build_models(cfg)
            nets_g.append(net_g.to(device))
            nets_d.append(net_d.to(device))
            self.dropout_gens.append(dropout_generator(cfg, device))  # unused (no dropout): checkpoints match GanTrainer's
        self.g, self.d = _Stack(nets_g), _Stack(nets_d)
        self.samplers = [BatchSampler(images, c.batch_size, c.pixel_range, device, c.seed) for c in cfgs]
        self.noise_gens = [torch.Generator(device=device).manual_seed(c.seed) for c in cfgs]

        def per_run(values: Sequence[float], dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.tensor(list(values), dtype=dtype, device=device)

        self.base_lr_d, self.base_lr_g = (per_run([getattr(c, n) for c in cfgs], torch.float64) for n in ("lr_d", "lr_g"))
        self.lr_d, self.lr_g = self.base_lr_d.clone(), self.base_lr_g.clone()
        # float64, as Python floats in torch.optim.Adam's bias corrections
        self.beta1, self.beta2 = (per_run([getattr(c, n) for c in cfgs], torch.float64) for n in ("beta1", "beta2"))
        self.nonsaturating = per_run([c.g_loss == "nonsaturating" for c in cfgs], torch.bool)
        self.active = torch.ones(self.k, dtype=torch.bool, device=device)
        # Adam updates so far, per run (float64, as torch.optim.Adam's bias correction in Python floats).
        self.adam_steps_d = torch.zeros(self.k, dtype=torch.float64, device=device)
        self.adam_steps_g = torch.zeros(self.k, dtype=torch.float64, device=device)
        self.autocast = update.autocast_for(cfg0, device)
        self.mixed = cfg0.d_batch == "mixed"
        self.graphs = device.type == "cuda" if graphs is None else graphs
        self._graph: Any = None
        self._static: dict[str, torch.Tensor] = {}

    # Random inputs: drawn per run, in GanTrainer's order, outside any graph.
    def _draw(self) -> dict[str, torch.Tensor]:
        cfg0, reuse = self.configs[0], self.configs[0].g_latents == "reuse"
        d_inputs = []
        for _ in range(cfg0.d_steps):
            d_inputs.append([update.draw_d_inputs(c, s.next(), g, self.device)
                             for c, s, g in zip(self.configs, self.samplers, self.noise_gens)])
        fresh = [[update.sample_latent(c, c.batch_size, g, self.device) for c, g in zip(self.configs, self.noise_gens)]
                 for i in range(cfg0.g_steps) if not (reuse and i == 0)]
        out = {}
        for i, step_inputs in enumerate(d_inputs):
            out[f"real{i}"] = torch.stack([x.real for x in step_inputs])
            out[f"z{i}"] = torch.stack([x.z for x in step_inputs])
            out[f"t_real{i}"] = torch.stack([x.target_real for x in step_inputs])
            out[f"t_fake{i}"] = torch.stack([x.target_fake for x in step_inputs])
            if self.mixed:
                out[f"perm{i}"] = torch.stack([x.perm for x in step_inputs])
        for j, zs in enumerate(fresh):
            out[f"zg{j}"] = torch.stack(zs)
        return out

    # The update of all K runs, from explicit inputs (what the CUDA graph captures).
    def _d_logits(self, real: torch.Tensor, fake: torch.Tensor, perm: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        with self.autocast:
            if perm is None:
                return self.d(real).float(), self.d(fake).float()
            k, n = real.shape[:2]
            both = torch.cat([real, fake.to(real.dtype)], 1)
            mixed = torch.gather(both, 1, perm.view(k, 2 * n, *([1] * (both.dim() - 2))).expand_as(both))
            logits = torch.empty(k, 2 * n, device=real.device).scatter_(1, perm, self.d(mixed).float())
            return logits[:, :n], logits[:, n:]

    def _compute(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        cfg0 = self.configs[0]
        reuse = cfg0.g_latents == "reuse"
        # Update D.
        for i in range(cfg0.d_steps):
            keep_fake = reuse and i == cfg0.d_steps - 1
            with self.autocast, (torch.enable_grad() if keep_fake else torch.no_grad()):
                fake = self.g(x[f"z{i}"])
            logit_real, logit_fake = self._d_logits(x[f"real{i}"], fake.detach(), x.get(f"perm{i}"))
            loss_d = update.d_loss(logit_real, logit_fake, x[f"t_real{i}"], x[f"t_fake{i}"], per_run=True)
            self.d.zero_grad()
            loss_d.sum().backward()  # runs are independent: each gets exactly its own gradient
            norm_d = self.d.grad_norms()
            self.adam_steps_d.add_(1)
            self.d.adam(self.lr_d, self.beta1, self.beta2, self.adam_steps_d, self.active)
            d_real, d_fake_before = torch.sigmoid(logit_real).mean(1), torch.sigmoid(logit_fake).mean(1)
        # Update G.
        for j in range(cfg0.g_steps):
            if not (reuse and j == 0):
                with self.autocast:
                    fake = self.g(x[f"zg{j - (1 if reuse else 0)}"])
            with self.autocast:
                logits = self.d(fake, frozen=True).float()  # D's weight gradients are not needed here
            loss_g = update.g_loss(logits, self.nonsaturating)  # per run: each run's g_loss
            self.g.zero_grad()
            loss_g.sum().backward()
            norm_g = self.g.grad_norms()
            self.adam_steps_g.add_(1)
            self.g.adam(self.lr_g, self.beta1, self.beta2, self.adam_steps_g, self.active)
            d_fake_after = torch.sigmoid(logits).mean(1)
        return stat_rows(loss_d=loss_d, loss_g=loss_g, d_real=d_real, d_fake_before=d_fake_before,
                         d_fake_after=d_fake_after, grad_norm_d=norm_d, grad_norm_g=norm_g)

    # Protocol.
    def step(self, step: int) -> torch.Tensor:
        """One iteration of every run; K × len(STAT_NAMES) on the device."""
        decay = [c.lr_decay for c in self.configs]
        if any(decay):
            update.decayed_lr(self.base_lr_d, decay, step - 1, self.lr_d)
            update.decayed_lr(self.base_lr_g, decay, step - 1, self.lr_g)
        inputs = self._draw()
        if not self.graphs:
            return self._compute(inputs)
        if self._graph is None:
            return self._capture(inputs)
        for name, value in inputs.items():
            self._static[name].copy_(value)
        self._graph.replay()
        return self._static_out

    def _capture(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Run this step eagerly on a side stream (warm-up: cuDNN picks its kernels), then capture
        the same computation into a CUDA graph for every later step."""
        state = self._snapshot()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            self._compute(inputs)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        self._restore(state)  # the warm-up step must not count
        self._static = {name: value.clone() for name, value in inputs.items()}
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self._compute(self._static)
        self._graph, self._static_out = graph, out
        graph.replay()
        return out

    def _snapshot(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(live tensor, copy) of every piece of training state, for `_restore`."""
        tensors = [*self.g.params.values(), *self.g.buffers.values(), *self.g.exp_avg.values(),
                   *self.g.exp_avg_sq.values(), *self.d.params.values(), *self.d.buffers.values(),
                   *self.d.exp_avg.values(), *self.d.exp_avg_sq.values(), self.adam_steps_d, self.adam_steps_g]
        return [(t, t.detach().clone()) for t in tensors]

    @staticmethod
    def _restore(saved: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        with torch.no_grad():
            for live, copy_ in saved:
                live.copy_(copy_)

    def learning_rates(self, k: int) -> tuple[float, float]:
        return float(self.lr_d[k]), float(self.lr_g[k])

    def stop(self, k: int) -> None:
        self.active[k] = False

    def generator(self, k: int) -> torch.nn.Module:
        """Run k's G as a plain module (for evaluation), with its current weights."""
        net_g = Generator(self.configs[k])
        net_g.load_state_dict(self._net_state(self.g, k))
        return net_g.to(self.device)

    @torch.no_grad()
    def samples(self, k: int, noise: torch.Tensor) -> torch.Tensor:
        net_g = self.generator(k).eval()
        with self.autocast:
            images = net_g(noise).float()
        low, high = self.configs[k].pixel_range
        return ((images - low) / (high - low)).clamp_(0, 1)

    # Checkpoints, in GanTrainer's format.
    def _net_state(self, stack: _Stack, k: int) -> dict[str, torch.Tensor]:
        merged = {**{n: p[k] for n, p in stack.params.items()}, **{n: b[k] for n, b in stack.buffers.items()}}
        return {name: merged[name].detach().clone() for name in stack.state_names}

    def _opt_state(self, stack: _Stack, k: int, lr: torch.Tensor, steps: torch.Tensor) -> dict[str, Any]:
        """Run k's Adam state in GanTrainer's format (written by torch's own Adam)."""
        step = steps[k].to(torch.float32)
        step = step if self.device.type == "cuda" else step.cpu()
        names = stack.param_names
        return adam_state([stack.params[n][k] for n in names], [stack.exp_avg[n][k] for n in names],
                          [stack.exp_avg_sq[n][k] for n in names], step, lr[k].detach().cpu().clone(),
                          self.configs[k], self.device)

    def state_dict(self, k: int) -> dict[str, Any]:
        return run_state(self._net_state(self.g, k), self._net_state(self.d, k),
                         self._opt_state(self.g, k, self.lr_g, self.adam_steps_g),
                         self._opt_state(self.d, k, self.lr_d, self.adam_steps_d),
                         self.samplers[k], self.noise_gens[k], self.dropout_gens[k])

    @torch.no_grad()
    def load_state_dict(self, k: int, state: dict[str, Any]) -> None:
        for stack, net_key, opt_key in ((self.g, "net_g", "opt_g"), (self.d, "net_d", "opt_d")):
            for name, value in state[net_key].items():
                target = stack.params.get(name, stack.buffers.get(name))
                target[k].copy_(value)
            opt = state[opt_key]
            for i, name in enumerate(stack.param_names):
                stack.exp_avg[name][k].copy_(opt["state"][i]["exp_avg"])
                stack.exp_avg_sq[name][k].copy_(opt["state"][i]["exp_avg_sq"])
            steps = self.adam_steps_g if opt_key == "opt_g" else self.adam_steps_d
            steps[k] = float(opt["state"][0]["step"]) if opt["state"] else 0.0
            saved_lr = opt["param_groups"][0]["lr"]
            (self.lr_g if opt_key == "opt_g" else self.lr_d)[k] = float(saved_lr)
        s = state["sampler"]
        self.samplers[k].load_state(SamplerState(s["order"], s["cursor"], s["generator"]))
        self.noise_gens[k].set_state(state["noise_gen"])
        dropout_state = state.get("dropout_rng", state.get("torch_rng"))
        if dropout_state is not None:
            self.dropout_gens[k].set_state(dropout_state)
