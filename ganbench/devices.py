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


def _no_gpu_driver() -> bool:
    """True where no GPU can be present: a Linux machine without the NVIDIA driver's device files
    (nor ROCm's /dev/kfd, nor WSL's /dev/dxg), or CUDA_VISIBLE_DEVICES set to none. Asked before torch, whose import costs
    more than a whole `plan --no-estimate` on a CPU machine; anywhere else torch is asked."""
    import os
    import sys
    from pathlib import Path

    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return True
    if not sys.platform.startswith("linux"):
        return False
    return not (any(Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/kfd", "/dev/dxg"))
                or any(Path("/dev").glob("nvidia[0-9]*")))


def _cuda() -> tuple[bool, int]:
    if _no_gpu_driver():
        return False, 0
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


# bf16 autocast on a CPU is fast only where the CPU computes in bf16 itself (AMX tiles or AVX512-BF16);
# elsewhere oneDNN emulates it: one dcgan step at 1 thread took 2.32 s against fp32's 0.16 s on an AVX2-only
# AMD EPYC (Zen 2), 13–15× slower, and 2.42–2.67 s against 0.21–0.23 s on a Zen 3 EPYC, 10.7–12.4×
# (benchmarks/precision_cost.py); on a CPU with AMX it ran ~1.6× faster than fp32.
SLOW_BF16_RATIO = "11–15×"


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 in hardware (AMX or AVX512-BF16), asked of torch's own queries."""
    import torch

    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def cpu_model() -> str:
    """The CPU's model name ('AMD EPYC 7B13', 'Intel(R) Xeon(R) Platinum 8481C'), where the OS says it."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_capability() -> dict[str, object]:
    """What a CPU figure depends on: model, torch's vector capability, native bf16 (AMX / AVX512-BF16)."""
    import torch

    return {"cpu_model": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": cpu_has_native_bf16()}


def cpu_description() -> str:
    """This CPU in words: model, vector capability and bf16 support (for messages)."""
    info = cpu_capability()
    return f"{info['cpu_model']}, {info['cpu_capability']}, {'native' if info['native_bf16'] else 'no native'} bf16"


def slow_precision_problem(precisions: set[str] | list[str], devices: list[str] | tuple[str, ...]) -> str | None:
    """Why training `precisions` on `devices` here would be far slower than it should be (bf16 on a CPU
    without native bf16), or None. The caller refuses or warns; the message names the way out."""
    if "bf16" not in set(precisions) or not any(d == "cpu" for d in devices) or cpu_has_native_bf16():
        return None
    return ("precision bf16 on this CPU (" + cpu_description() + "): without AMX or AVX512-BF16, bf16 autocast is "
            f"emulated and a dcgan step runs about {SLOW_BF16_RATIO} slower than fp32 (measured on AVX2-only AMD "
            "EPYCs). Train in fp32 (`--set precision=fp32`: other run ids), or pass --allow-slow-precision to go on anyway")


def bind(device: Any) -> None:
    """Make `device` this process's current CUDA device before anything runs on it. torch's graph
    capture, `torch.cuda.current_stream()` and torch-fidelity's `.cuda()` all mean the *current*
    device: a worker training on cuda:1 that left cuda:0 current would capture an empty graph."""
    if device.type == "cuda":
        import torch

        torch.cuda.set_device(device)


def precision_policy(device: Any, precision: str) -> dict[str, object]:
    """How float32 work was really computed: autocast's dtype (the run's `precision`) and, on a GPU,
    whether cuDNN convolutions and matmuls may use TF32 and whether cuDNN picks kernels by benchmark.
    Two GPU figures with different policies differ by more than rounding (TF32 convs: ~1e-3 relative)."""
    import torch

    policy: dict[str, object] = {"autocast": "bf16" if precision == "bf16" else "off (fp32)"}
    if device.type == "cuda":
        policy.update(tf32_conv=torch.backends.cudnn.allow_tf32, tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                      cudnn_benchmark=torch.backends.cudnn.benchmark,
                      cudnn_deterministic=torch.backends.cudnn.deterministic)
    return policy
