"""The checks of a knob's value, as pure functions of what `config.py` declares (so this module
imports nothing of it): its type or choices, its declared range, and the rules between knobs.
`TrainConfig.__post_init__` runs them on every config; `config.knob_type_problem` also checks a
value read back from a run's config.json. Torch-free."""

from __future__ import annotations

import math
from typing import Any, Mapping

from ganbench.devices import SYNTAX, is_device_name
from ganbench.errors import did_you_mean

KIND_WORDS = {int: "a whole number (int)", float: "a number (float)", str: "text (str)", bool: "true or false (bool)"}


def type_problem(name: str, value: Any, kind: type, choices: tuple[Any, ...] | None) -> str | None:
    """Why `value` cannot be knob `name`'s (declared `kind`, or one of `choices`), or None. Floats
    must be finite: a learning rate of 1e309 (YAML's inf) is no learning rate."""
    if choices is not None:
        if value not in choices or type(value) is not type(choices[0]):
            hint = did_you_mean(str(value), [str(c) for c in choices])
            return f"bad value {value!r} for '{name}': expected one of {list(choices)}{hint}"
        return None
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        return f"bad value {str(value)[:60]!r} for '{name}': expected {KIND_WORDS.get(kind, kind.__name__)}"
    if kind is float and not math.isfinite(value):
        return f"bad value {value!r} for '{name}': expected a finite number"
    return None


def _number(value: float) -> str:
    """A bound as people write it: 2^63, not 9.22337e+18."""
    if isinstance(value, int) and value >= 1 << 20 and value & (value - 1) == 0:
        return f"2^{value.bit_length() - 1}"
    return f"{value:g}"


def range_words(meta: Mapping[str, Any]) -> str | None:
    """A knob's declared range (its field metadata) in words ('>= 1', 'in [0, 1)', …), None without one."""
    low = f">= {_number(meta['at_least'])}" if meta["at_least"] is not None else (
        f"> {_number(meta['above'])}" if meta["above"] is not None else None)
    if meta["below"] is not None:
        bracket = "[" if meta["at_least"] is not None else "("
        bound = meta["at_least"] if meta["at_least"] is not None else meta["above"]
        low = (f"in {bracket}{_number(bound)}, {_number(meta['below'])})" if bound is not None
               else f"< {_number(meta['below'])}")
    if low and meta["note"]:
        low += f" ({meta['note']})"
    return low


def within(meta: Mapping[str, Any], value: float) -> bool:
    return not ((meta["at_least"] is not None and value < meta["at_least"])
                or (meta["above"] is not None and value <= meta["above"])
                or (meta["below"] is not None and value >= meta["below"]))


def broken_rule(cfg: Any) -> tuple[str, str] | None:
    """(knob, rule) of the first rule between knobs (or not expressible as a range) `cfg` breaks."""
    sizes = (28,) if cfg.arch == "dcgan28" else (32, 64)
    ratio = cfg.image_size // max(cfg.start_side, 1)
    rules = [
        (cfg.channels in (1, 3), "channels", "1 or 3"),
        (int(cfg.sample_grid**0.5) ** 2 == cfg.sample_grid, "sample_grid", "a square number (16, 64, 256, …)"),
        (cfg.image_size in sizes, "image_size", f"one of {list(sizes)} for arch '{cfg.arch}'"),
        (cfg.image_size % max(cfg.start_side, 1) == 0 and ratio >= 2 and ratio & (ratio - 1) == 0, "g_start_side",
         f"image_size ({cfg.image_size}) / 2^k for some k >= 1, e.g. 4 or 8 at 64 px"),
        (is_device_name(cfg.device), "device", SYNTAX),
        (cfg.batch_size >= 2 or not (cfg.g_batch_norm or cfg.d_batch_norm or cfg.d_input_batch_norm), "batch_size",
         ">= 2 with batch norm (a batch of one image has no batch statistics)"),
    ]
    return next(((name, rule) for ok, name, rule in rules if not ok), None)
