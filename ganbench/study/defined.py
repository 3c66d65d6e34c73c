"""Hacks a suite declares as data (`define:`), so a knob-only hack needs no code at all:

    define:
      ttur_sagan: {summary: "D 4e-4, G 1e-4", source: "Zhang et al. 2019 (SAGAN), §5",
                   sets: {lr_d: 4.0e-4, lr_g: 1.0e-4}, tags: [optimiser]}

Each is checked like a registered hack (an identifier, a source, knobs that exist with values they
allow) and registered for the process, so every command that reads the suite — run, plan, status,
report — and every worker it starts sees it by name. A name already registered with other settings is
refused (two meanings of one name would make run descriptions lie); the same knobs under the same
name (the suite read again, a plugin's twin) are fine. Hacks that need new code come from a plugin (`ganbench.plugins`).
"""

from __future__ import annotations

from typing import Any

from ganbench.errors import ConfigError
from ganbench.hacks import HACKS, Hack, checked_hack
from ganbench.study import suite_keys

DEFINE_KEYS = tuple(suite_keys.DEFINE)


class DefineError(ConfigError):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where


def define_hacks(raw: Any) -> tuple[str, ...]:
    """Register the suite's `define:` hacks (checked); returns their names."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise DefineError("define", "expected a mapping of hack name → {summary, source, sets, tags}")
    names = []
    for name, spec in raw.items():
        where = f"define.{name}"
        if not isinstance(spec, dict):
            raise DefineError(where, "expected {summary, source, sets, tags}")
        unknown = [k for k in spec if k not in DEFINE_KEYS]
        if unknown:
            raise DefineError(f"{where}.{unknown[0]}", f"unknown key; allowed: {', '.join(DEFINE_KEYS)}")
        if not isinstance(spec.get("sets"), dict):
            raise DefineError(f"{where}.sets", "expected a mapping of knob → value (see `ganbench knobs`)")
        tags = spec.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise DefineError(f"{where}.tags", "expected a list of words")
        hack = Hack(str(name), str(spec.get("summary", "")), str(spec.get("source", "")), dict(spec["sets"]),
                    tuple(tags) + ("defined in a suite",))
        try:
            if not hack.summary.strip():
                raise ConfigError(f"hack '{name}' needs a summary (one line: what turning it on changes)")
            candidate = checked_hack(hack)
            if name in HACKS:  # the same knobs under the same name (the suite read again, or a plugin's twin)
                if dict(HACKS[name].sets) != dict(candidate.sets):
                    raise ConfigError(f"a hack '{name}' is already registered and sets {dict(HACKS[name].sets)}, "
                                      f"not {dict(candidate.sets)}; give yours another name")
            else:
                HACKS.register(candidate.name, candidate)
        except ConfigError as err:
            raise DefineError(where, str(err)) from None
        names.append(str(name))
    return tuple(names)
