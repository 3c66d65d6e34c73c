"""Freed memory kept for reuse: a process-wide C-library setting for training and evaluation on a CPU.

A training step and an evaluation batch allocate and free the same large tensors (activations,
distance and kernel blocks: 1–200 MB) again and again. By default glibc hands blocks above its
mmap threshold back to the kernel when they are freed, and the next allocation takes fresh pages
that the kernel zero-fills one page fault at a time. Measured on a 2-core AMD EPYC (AVX2):
300 000–450 000 minor page faults and ≈ 1 s of kernel time in every 5 000-vs-10 000 fmnist
evaluation pass (3.5 s → 2.3 s with memory kept), and ≈ 10 % of a CPU training step.

`keep_freed_memory` raises glibc's mmap and trim thresholds to `KEEP_BYTES`, so freed blocks stay
in the process and are reused; the resident size stays near the process's peak instead of
shrinking between batches. It changes no value anywhere. Elsewhere than glibc on Linux it does
nothing; `GANBENCH_KEEP_FREED_MEMORY=0` turns it off.
"""

from __future__ import annotations

import ctypes
import os
import sys

KEEP_BYTES = 1 << 30  # blocks up to 1 GiB come from (and return to) the process's own heap
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
OFF_SWITCH = "GANBENCH_KEEP_FREED_MEMORY"

_state: dict[str, bool] = {}


def keep_freed_memory() -> bool:
    """Apply the setting once per process (later calls are free); True when it is in effect."""
    if "applied" not in _state:
        _state["applied"] = _apply()
    return _state["applied"]


def _apply() -> bool:
    if not sys.platform.startswith("linux") or os.environ.get(OFF_SWITCH, "1").strip() == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):  # no C library symbols, or one without mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success; musl's stub returns 0 and changes nothing.
    return bool(mallopt(_M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES))
