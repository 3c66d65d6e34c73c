"""The leaf every other module may import: the config error, "did you mean", and `Registry[T]`.

It imports nothing from ganbench, so a registry (hacks, presets, metrics, datasets, protocols,
designs) never has to import `config.py` — or anything above it — for its error messages, and
the package has no import cycle (tests/test_house.py walks the graph).
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterable, Iterator, Mapping, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad knob name or value; the message says which and what would be valid."""


class UnknownName(ConfigError, KeyError):
    """A name no registry entry has. A `KeyError` too, so `Registry.get(name, default)` and
    `name in registry` behave as a dict's do."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry(Mapping[str, T], Generic[T]):
    """Name → entry of one kind of thing (lm-evaluation-harness's `api/registry.py` habit).

    `register` refuses an empty or repeated name and runs the kind's own `check`; a lookup of an
    unknown name raises `UnknownName` with the closest name and `hint` (where to see them all).
    Reading is a plain `Mapping`: iteration in registration order, `in`, `len`, `.items()`.
    """

    def __init__(self, kind: str, hint: str = "", check: Callable[[str, T], None] | None = None) -> None:
        self.kind = kind  # 'hack', 'metric', …: the word in every message
        self.hint = hint  # e.g. "see `ganbench hacks`"; default: the sorted names
        self._check = check
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{self.kind} name {name!r} must be a non-empty string")
        if name in self._entries:
            raise ConfigError(f"{self.kind} '{name}' is already registered")
        if self._check is not None:
            self._check(name, entry)
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> T:
        """Remove and return an entry (a test's throwaway registration; a plugin being unloaded)."""
        if name not in self._entries:
            raise self.unknown(name)
        return self._entries.pop(name)

    def unknown(self, name: object) -> UnknownName:
        """The error for a name that is not registered (for callers that check before they look up)."""
        hint = self.hint or f"choose from {sorted(self._entries)}"
        return UnknownName(f"unknown {self.kind} '{name}'{did_you_mean(str(name), self._entries)}; {hint}")

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.unknown(name) from None

    def __contains__(self, name: object) -> bool:  # without building an error message
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"
