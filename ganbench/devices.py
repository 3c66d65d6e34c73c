"""Device names: the one place that parses and checks them.

A run's `device` knob is one of auto, cpu, cuda, cuda:N; a sweep's `--device` may also
list several GPUs (cuda:0,1). The syntax is checked without torch; `resolve` and `expand`
ask torch what is actually present.
"""

from __future__ import annotations

from typing import Any

from ganbench.errors import ConfigError

SYNTAX = "auto, cpu, cuda or cuda:N"


def is_device_name(name: str) -> bool:
    """True for auto, cpu, cuda and cuda:N (syntax only)."""
    return name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit())


def _cuda() -> tuple[bool, int]:
    import torch

    available = torch.cuda.is_available()
    return available, torch.cuda.device_count() if available else 0


def resolve(name: str) -> Any:
    """The torch.device a run trains on; 'auto' is CUDA when present. A missing GPU is a
    `ConfigError` that says what is here."""
    import torch

    if not is_device_name(name):
        raise ConfigError(f"device '{name}': expected {SYNTAX}")
    available, count = _cuda()
    if name == "auto":
        return torch.device("cuda" if available else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not available:
            raise ConfigError(f"device '{name}' asked for, but CUDA is not available here; use --device cpu or auto")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device '{name}' asked for, but only {count} GPU(s) are visible")
    return device


def expand(spec: str) -> list[str]:
    """A sweep's --device: 'auto' | 'cpu' | 'cuda' (every GPU) | 'cuda:0,1' → one name per device."""
    available, count = _cuda() if spec != "cpu" else (False, 0)
    if spec == "auto":
        spec = "cuda" if available else "cpu"
    if spec == "cpu":
        return ["cpu"]
    if spec == "cuda":
        if not available:
            raise ConfigError("--device cuda asked for, but CUDA is not available here; use --device cpu or auto")
        return [f"cuda:{i}" for i in range(count)]
    if spec.startswith("cuda:"):
        indices = spec[5:].split(",")
        if not all(i.isdigit() for i in indices):
            raise ConfigError(f"--device {spec}: expected cuda:N or cuda:N,M,…")
        names = [f"cuda:{i}" for i in indices]
        for name in names:
            resolve(name)
        return names
    raise ConfigError(f"--device {spec}: expected auto, cpu, cuda or cuda:N[,M…]")
