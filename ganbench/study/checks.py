"""The suite checker's shared pieces: its error, and the checks every section of a suite file uses
(a key path in every message, a did-you-mean for a typo, every problem of a list reported together)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ganbench.errors import ConfigError, did_you_mean
from ganbench.hacks import HACKS


class SuiteError(ConfigError):
    """A problem in a suite file; the message starts with the file and key path."""


def fail(path: Path, where: str, message: str) -> SuiteError:
    return SuiteError(f"{path}: {where}: {message}")


def check_keys(path: Path, where: str, mapping: Any, allowed: tuple[str, ...] | Mapping[str, Any]) -> dict:
    if not isinstance(mapping, dict):
        raise fail(path, where, f"expected a mapping, got {type(mapping).__name__}")
    for key in mapping:
        if key not in allowed:
            raise fail(path, f"{where}.{key}" if where != "(top)" else str(key),
                        f"unknown key{did_you_mean(str(key), allowed)}; allowed: {', '.join(allowed)}")
    return mapping


def hack_list(path: Path, where: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
        raise fail(path, where, "expected a list of hack names")
    for i, name in enumerate(value):
        if name not in HACKS:
            raise fail(path, f"{where}[{i}]", f"unknown hack '{name}'{did_you_mean(name, HACKS)}")
    if len(set(value)) != len(value):
        raise fail(path, where, "a hack is listed twice")
    return tuple(value)


def raise_all(path: Path, problems: list[str]) -> None:
    """One SuiteError for every problem found (one is said as before; several each on its own line)."""
    if len(problems) == 1:
        raise SuiteError(f"{path}: {problems[0]}")
    if problems:
        raise SuiteError(f"{path}: {len(problems)} problems:\n  " + "\n  ".join(problems))
