"""The per-process memo: what a process builds once and reuses across the runs it evaluates
(feature extractors, reference sets and their features, noise floors, KID's reference sums). A leaf
module (standard library only), so every floor may use it without importing another's."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Hashable, TypeVar

T = TypeVar("T")


class ProcessCache:
    """Every other thing a process builds once and reuses, by store: `'extractor'` (torch-fidelity
    feature extractors, weights read once per device), `'reference'` (reference images),
    `'reference_features'` (their features per extractor), `'noise_floor'` (uniform-noise FIDs).
    Each store keeps its `keep` most recent entries (least recently used go first)."""

    def __init__(self) -> None:
        self._stores: dict[str, OrderedDict[Hashable, Any]] = {}

    def get(self, store: str, key: Hashable, build: Callable[[], T], keep: int = 4) -> T:
        entries = self._stores.setdefault(store, OrderedDict())
        if key in entries:
            entries.move_to_end(key)
            return entries[key]
        value = build()
        entries[key] = value
        while len(entries) > keep:
            entries.popitem(last=False)
        return value

    def entries(self, store: str) -> int:
        return len(self._stores.get(store, ()))

    def clear(self, store: str | None = None) -> None:
        if store is None:
            self._stores.clear()
        else:
            self._stores.pop(store, None)


PROCESS = ProcessCache()  # the one per-process cache of the metric side (the trainer's images are in `Resources`)
