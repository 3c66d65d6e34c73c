"""The one producer of a run's checkpoint state: every trainer writes the same format.

A fused trainer holds its runs' Adam moments as stacked tensors; `adam_state` rebuilds one
run's optimiser as the real `torch.optim.Adam` GanTrainer uses (`update.make_adam`) and lets
torch write its `state_dict`, so no key of Adam's format is spelled here.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ganbench.config import TrainConfig
from ganbench.data.sampler import BatchSampler, SamplerState
from ganbench.training import update


def run_state(net_g: dict[str, torch.Tensor], net_d: dict[str, torch.Tensor], opt_g: dict[str, Any],
              opt_d: dict[str, Any], sampler: BatchSampler, noise_gen: torch.Generator, dropout_gen: torch.Generator,
              **stabilisers: dict[str, Any]) -> dict[str, Any]:
    """A run's checkpoint: networks, optimisers, data order, noise and dropout streams, and the state
    of any stabiliser it uses (`net_g_ema=…`, `replay=…`)."""
    order = sampler.state()
    return {
        "net_g": net_g, "net_d": net_d, "opt_g": opt_g, "opt_d": opt_d,
        "sampler": {"order": order.order, "cursor": order.cursor, "generator": order.generator},
        "noise_gen": noise_gen.get_state(),
        "dropout_rng": dropout_gen.get_state(),
        **stabilisers,
    }


def restore_streams(state: dict[str, Any], sampler: BatchSampler, noise_gen: torch.Generator,
                    dropout_gen: torch.Generator, device: torch.device) -> None:
    """A run's data order, noise stream and dropout stream as `run_state` wrote them: what every trainer's
    `load_state_dict` reads alike (only networks and optimisers differ between them)."""
    order = state["sampler"]
    sampler.load_state(SamplerState(order["order"], order["cursor"], order["generator"]))
    noise_gen.set_state(state["noise_gen"])
    dropout = dropout_state(state, device)
    if dropout is not None:
        dropout_gen.set_state(dropout)


def dropout_state(state: dict[str, Any], device: torch.device) -> torch.Tensor | None:
    """The dropout stream's state in a checkpoint, for a generator on `device`, or None to keep the fresh
    one. Checkpoints from before `dropout_rng` kept the global CPU RNG, which was dropout's stream on the
    CPU; a CUDA generator cannot take that state ("RNG state is wrong size")."""
    if "dropout_rng" in state:
        return state["dropout_rng"]
    return state.get("torch_rng") if device.type == "cpu" else None


def steps_on_host(opt: torch.optim.Optimizer) -> None:
    """Adam's step counts on the CPU, where `update.make_adam`'s optimiser keeps them: a checkpoint written
    by a capturable Adam (before this version, on a GPU) holds them on the device, and reading one
    there every step would synchronise with the GPU."""
    for param_state in opt.state.values():
        if torch.is_tensor(param_state.get("step")):
            param_state["step"] = param_state["step"].cpu()


def adam_state(values: Sequence[torch.Tensor], exp_avg: Sequence[torch.Tensor], exp_avg_sq: Sequence[torch.Tensor],
               step: torch.Tensor, lr: torch.Tensor, cfg: TrainConfig, device: torch.device) -> dict[str, Any]:
    """`torch.optim.Adam.state_dict()` of one run's network whose parameters are `values` (in the
    network's order), with the given moments, update count and learning rate."""
    params = [torch.nn.Parameter(v.detach().clone()) for v in values]
    opt = update.make_adam(params, lr, cfg, device)
    for param, m, v in zip(params, exp_avg, exp_avg_sq):
        opt.state[param] = {"step": step.clone(), "exp_avg": m.detach().clone(), "exp_avg_sq": v.detach().clone()}
    return opt.state_dict()
