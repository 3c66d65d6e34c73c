"""`FusedTrainer`: K runs with the same network shapes and control flow trained as one.

Each run's G and D are built exactly as `GanTrainer` builds them (same seed, same
initialisation), then stacked into one network per side in HFTA's layout (`stacked.StackedNet`:
grouped convolutions, one batch norm over K·C channels, `baddbmm` linears), their parameters,
gradients and Adam moments held in one (K, P) buffer per side (`flat.FlatParams`: one Adam update
per network, not per parameter tensor). Knobs that only change numbers are per-run tensors
(learning rates, Adam betas, label targets, jitter, flip probability, the G loss, LeakyReLU's
slope), so runs of different arms fuse; dropout masks come from each run's own stream.

Every random number comes from the run's own generators, drawn in the order `GanTrainer`
draws it (data order, latents, label noise, flips, the mixed batch's shuffle, dropout masks), so
a run trained here gets the numbers it would get alone, up to float reassociation in the batched
kernels. Checkpoints are written in `GanTrainer`'s format, one per run: a run started fused
resumes alone and the reverse.

On CUDA the whole update (both networks, both optimisers, the statistics) is captured once
in a CUDA graph and replayed every step; the random inputs are drawn outside the graph
into static buffers, so the graph has no host synchronisation and no random state of its own.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from ganbench.config import TrainConfig, fusion_key, trains_alone
from ganbench.data.sampler import BatchSampler
from ganbench.models import Generator, build_models
from ganbench.training import update
from ganbench.training.checkpoint import adam_state, restore_streams, run_state
from ganbench.training.single import dropout_generator
from ganbench.training.stacked import DropoutMasks, StackedNet, VmapNet, to_map

ENGINES = {"stacked": StackedNet, "vmap": VmapNet}  # vmap: the first engine, for benchmarks only


class FusedTrainer:
    """K ≥ 1 runs of one `structure_key`, trained as one stacked network (the trainer protocol)."""

    def __init__(self, cfgs: Sequence[TrainConfig], images: torch.Tensor | np.ndarray, device: torch.device,
                 graphs: bool | None = None, engine: str = "stacked") -> None:
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
            self.dropout_gens.append(dropout_generator(cfg, device))
        self.masks = DropoutMasks(self.dropout_gens)  # G and D draw from one stream per run, as GanTrainer's
        slopes = [c.leaky_slope for c in cfgs]
        self.g, self.d = (ENGINES[engine](nets, slopes, self.masks) for nets in (nets_g, nets_d))
        self.samplers = [BatchSampler(images, c.batch_size, c.pixel_range, device, c.seed) for c in cfgs]
        self.noise_gens = [torch.Generator(device=device).manual_seed(c.seed) for c in cfgs]

        def per_run(values: Sequence[float], dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.tensor(list(values), dtype=dtype, device=device)

        self.base_lr_d, self.base_lr_g = (per_run([getattr(c, n) for c in cfgs], torch.float64) for n in ("lr_d", "lr_g"))
        self.lr_d, self.lr_g = self.base_lr_d.clone(), self.base_lr_g.clone()
        decays = [c.lr_decay for c in cfgs]
        self.lr_decay = per_run(decays, torch.float64) if any(decays) else None
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
            out[f"real{i}"] = torch.stack([x.real for x in step_inputs])  # (K, N, C, H, W)
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
        """D's logits (K, N each) on the real batches (K, N, C, H, W) and the fakes (G's map layout)."""
        real = to_map(real)
        with self.autocast:
            if perm is None:
                return self.d(real).float(), self.d(fake).float()
            n, k = real.shape[0], self.k
            both = torch.cat([real, fake.to(real.dtype)])  # (2N, K·C, H, W)
            per_run = both.view(2 * n, k, -1)  # each run shuffles its own batch: gather along N per run
            mixed = torch.gather(per_run, 0, perm.t().unsqueeze(-1).expand_as(per_run)).view_as(both)
            logits = torch.empty(k, 2 * n, device=real.device).scatter_(1, perm, self.d(mixed).float())
            return logits[:, :n], logits[:, n:]

    def _compute(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """The iteration of all K runs (`update.iteration`'s order) from the drawn inputs `x`."""
        reuse = self.configs[0].g_latents == "reuse"

        def d_update(i: int, keep_fake: bool) -> tuple[torch.Tensor, ...]:
            with self.autocast, (torch.enable_grad() if keep_fake else torch.no_grad()):
                fake = self.g(x[f"z{i}"])
            logit_real, logit_fake = self._d_logits(x[f"real{i}"], fake.detach(), x.get(f"perm{i}"))
            loss_d = update.d_loss(logit_real, logit_fake, x[f"t_real{i}"], x[f"t_fake{i}"], per_run=True)
            self.d.zero_grad()
            loss_d.sum().backward()  # runs are independent: each gets exactly its own gradient
            norm_d = self.d.grad_norms()
            self.adam_steps_d.add_(1)
            self.d.flat.adam(self.lr_d, self.beta1, self.beta2, self.adam_steps_d, self.active)
            return (loss_d, torch.sigmoid(logit_real).mean(1), torch.sigmoid(logit_fake).mean(1), norm_d,
                    fake if keep_fake else None)

        def g_update(j: int, fake: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
            if fake is None:  # the drawn G latents leave out the batch a reusing G takes from D
                with self.autocast:
                    fake = self.g(x[f"zg{j - (1 if reuse else 0)}"])
            with self.autocast:
                logits = self.d(fake, frozen=True).float()  # D's weight gradients are not needed here
            loss_g = update.g_loss(logits, self.nonsaturating)  # per run: each run's g_loss
            self.g.zero_grad()
            loss_g.sum().backward()
            norm_g = self.g.grad_norms()
            self.adam_steps_g.add_(1)
            self.g.flat.adam(self.lr_g, self.beta1, self.beta2, self.adam_steps_g, self.active)
            return loss_g, torch.sigmoid(logits).mean(1), norm_g

        return update.iteration(self.configs[0], d_update, g_update)

    # Protocol.
    def step(self, step: int) -> torch.Tensor:
        """One iteration of every run; K × len(STAT_NAMES) on the device."""
        if self.lr_decay is not None:
            update.decayed_lr(self.base_lr_d, self.lr_decay, step - 1, self.lr_d)
            update.decayed_lr(self.base_lr_g, self.lr_decay, step - 1, self.lr_g)
        inputs = self._draw()
        if not self.graphs:
            return self._checked_first_step(lambda: self._compute(inputs))
        if self._graph is None:
            return self._checked_first_step(lambda: self._capture(inputs))
        for name, value in inputs.items():
            self._static[name].copy_(value)
        self.masks.refill()
        self._graph.replay()
        return self._static_out

    def _checked_first_step(self, step: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The trainer's first step, then proof that it trained: every active run's G and D moved. A CUDA
        graph captured on another device's stream holds nothing and replays as a no-op (torch only
        warns); without this check such a group would train nothing and be recorded completed."""
        before = [net.flat.values.detach().clone() for net in (self.g, self.d)]
        out = step()
        moved = [(net.flat.values != old).any(1) for net, old in zip((self.g, self.d), before)]
        frozen = ~(moved[0] & moved[1]) & self.active
        if bool(frozen.any()):  # one host sync, once per trainer
            runs = [k for k in range(self.k) if frozen[k]]
            raise RuntimeError(f"the first {'replayed CUDA graph' if self.graphs else 'step'} changed no parameter "
                               f"of G or D for run(s) {runs} of this group of {self.k} on {self.device}: the step "
                               "is a no-op (an empty graph capture?); nothing of this group is trained")
        return out

    def _capture(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Run this step eagerly on a side stream of the trainer's own device (warm-up: cuDNN picks its
        kernels), then capture the same computation into a CUDA graph for every later step, on that same
        stream: `torch.cuda.graph` without one captures on the *current* device's stream, which on a
        worker bound to another GPU records nothing."""
        state, dropout_states = self._snapshot(), self.masks.states()
        self.masks.record()  # the dropout masks this step asks for, in order (drawn outside the graph)
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            self._compute(inputs)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        self._restore(state)  # the warm-up step must not count
        self.masks.set_states(dropout_states)
        self._static = {name: value.clone() for name, value in inputs.items()}
        self.masks.capture(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            out = self._compute(self._static)
        self._graph, self._static_out = graph, out
        self.masks.refill()
        graph.replay()
        return out

    def _snapshot(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(live tensor, copy) of every piece of training state, for `_restore`."""
        tensors = [t for net in (self.g, self.d)
                   for t in (net.flat.values, net.flat.exp_avg, net.flat.exp_avg_sq, *net.buffers.values())]
        tensors += [self.adam_steps_d, self.adam_steps_g]
        return [(t, t.detach().clone()) for t in tensors]

    @staticmethod
    def _restore(saved: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        with torch.no_grad():
            for live, copy_ in saved:
                live.copy_(copy_)

    def learning_rates(self, k: int) -> tuple[float, float]:
        return float(self.lr_d[k]), float(self.lr_g[k])

    def stop(self, k: int) -> None:
        self.active[k].fill_(False)  # a kernel launch; `active[k] = False` copies a host scalar (a sync on CUDA)

    def generator(self, k: int) -> torch.nn.Module:
        """Run k's G as a plain module (for evaluation), with its current weights."""
        net_g = Generator(self.configs[k])
        net_g.load_state_dict(self.g.run_state(k))
        return net_g.to(self.device)

    @torch.no_grad()
    def samples(self, k: int, noise: torch.Tensor) -> torch.Tensor:
        net_g = self.generator(k).eval()
        with self.autocast:
            images = net_g(noise).float()
        low, high = self.configs[k].pixel_range
        return ((images - low) / (high - low)).clamp_(0, 1)

    # Checkpoints, in GanTrainer's format.
    def _opt_state(self, net: StackedNet, k: int, lr: torch.Tensor, steps: torch.Tensor) -> dict[str, Any]:
        """Run k's Adam state in GanTrainer's format (written by torch's own Adam)."""
        step = steps[k].to(torch.float32).cpu()  # where `update.make_adam`'s Adam keeps it, on every device
        flat = net.flat
        return adam_state(flat.run_values(k), flat.run_values(k, flat.exp_avg), flat.run_values(k, flat.exp_avg_sq),
                          step, lr[k].detach().cpu().clone(), self.configs[k], self.device)

    def state_dict(self, k: int) -> dict[str, Any]:
        return run_state(self.g.run_state(k), self.d.run_state(k),
                         self._opt_state(self.g, k, self.lr_g, self.adam_steps_g),
                         self._opt_state(self.d, k, self.lr_d, self.adam_steps_d),
                         self.samplers[k], self.noise_gens[k], self.dropout_gens[k])

    @torch.no_grad()
    def load_state_dict(self, k: int, state: dict[str, Any]) -> None:
        for stack, net_key, opt_key in ((self.g, "net_g", "opt_g"), (self.d, "net_d", "opt_d")):
            stack.load_run_state(k, state[net_key])
            opt, flat = state[opt_key], stack.flat
            for i, (m, v) in enumerate(zip(flat.run_values(k, flat.exp_avg), flat.run_values(k, flat.exp_avg_sq))):
                m.copy_(opt["state"][i]["exp_avg"])
                v.copy_(opt["state"][i]["exp_avg_sq"])
            steps = self.adam_steps_g if opt_key == "opt_g" else self.adam_steps_d
            steps[k] = float(opt["state"][0]["step"]) if opt["state"] else 0.0
            saved_lr = opt["param_groups"][0]["lr"]
            (self.lr_g if opt_key == "opt_g" else self.lr_d)[k] = float(saved_lr)
        restore_streams(state, self.samplers[k], self.noise_gens[k], self.dropout_gens[k], self.device)
