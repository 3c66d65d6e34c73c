"""Experimental designs: which hack combinations (arms) a suite trains.

- `leave_one_out`: the full recipe (preset + studied hacks) and, per studied hack, the
  recipe without it. Reference arm: `all`.
- `add_one_in`: the preset without the studied hacks, and per hack that start plus the
  hack alone. Reference arm: `none`.
- `full_factorial`: every on/off combination of the studied hacks (2^k arms).
- `fractional_factorial`: a regular 2^(k−p) fraction of stated resolution: the first k−p
  hacks form a full factorial, each further hack is set to an interaction of them. Main
  effects are clear of each other at resolution ≥ III, of two-way interactions at ≥ IV,
  and two-way interactions of each other at ≥ V. The alias structure is computed, not assumed.
- `arms`: explicit arms, name → hacks and knob overrides.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ganbench.errors import ConfigError, Registry
from ganbench.study.budget import Budget

ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII"}


@dataclass(frozen=True)
class Arm:
    """One arm. Its hacks are kept in the two layers the config precedence needs (defaults <
    `from_preset` < the suite's base < `extra` < `overrides`), split once, here."""

    name: str
    from_preset: tuple[str, ...]  # hacks of the part's preset this arm keeps, in order
    extra: tuple[str, ...] = ()  # its other hacks, in order
    overrides: Mapping[str, Any] = field(default_factory=dict)  # the arm's own `set`
    factors: Mapping[str, bool] = field(default_factory=dict)  # studied hack → on/off

    @property
    def hacks(self) -> tuple[str, ...]:
        """Every hack on in this arm (the preset's first), in order."""
        return self.from_preset + self.extra


def _arm(name: str, hacks: Sequence[str], preset_hacks: Sequence[str], **fields: Any) -> Arm:
    hacks = tuple(dict.fromkeys(hacks))
    return Arm(name, tuple(h for h in hacks if h in preset_hacks), tuple(h for h in hacks if h not in preset_hacks),
               **fields)


@dataclass(frozen=True)
class Design:
    """One design of a suite (a suite may hold several parts, e.g. LOO and add-one-in)."""

    kind: str
    arms: tuple[Arm, ...]
    reference_arm: str | None  # the arm effects are measured against
    resolution: int | None = None  # fractional factorial only
    generators: tuple[str, ...] = ()  # e.g. 'E = ABCD', fractional factorial only
    aliases: tuple[str, ...] = ()  # human-readable alias lines, fractional factorial only
    name: str = ""  # the part's name in a multi-part suite ('' for a single design)
    preset: str = ""  # the preset the part starts from
    studied: tuple[str, ...] = ()  # the hacks under study in this part
    budget: Budget | None = None  # a part's own budget (`designs.PART.budget`); None: the suite's


def leave_one_out(preset_hacks: Sequence[str], studied: Sequence[str]) -> Design:
    full = tuple(dict.fromkeys([*preset_hacks, *studied]))
    arms = [_arm("all", full, preset_hacks, factors={h: True for h in studied})]
    for hack in studied:
        arms.append(_arm(f"-{hack}", tuple(h for h in full if h != hack), preset_hacks,
                         factors={h: h != hack for h in studied}))
    return Design("leave_one_out", tuple(arms), "all")


def add_one_in(preset_hacks: Sequence[str], studied: Sequence[str]) -> Design:
    start = tuple(h for h in preset_hacks if h not in studied)
    arms = [_arm("none", start, preset_hacks, factors={h: False for h in studied})]
    for hack in studied:
        arms.append(_arm(f"+{hack}", (*start, hack), preset_hacks, factors={h: h == hack for h in studied}))
    return Design("add_one_in", tuple(arms), "none")


def _factorial_arms(preset_hacks: Sequence[str], studied: Sequence[str], rows: list[tuple[bool, ...]]) -> tuple[Arm, ...]:
    start = tuple(h for h in preset_hacks if h not in studied)
    arms = []
    for row in rows:
        on = [h for h, flag in zip(studied, row) if flag]
        name = "+".join(on) if on else "none"
        arms.append(_arm(name, (*start, *on), preset_hacks, factors=dict(zip(studied, row))))
    return tuple(arms)


MAX_FACTORIAL_HACKS = 17  # 2^17 = 131 072 arms, already past what one suite plans at one seed (study.suite.MAX_RUNS)


def full_factorial(preset_hacks: Sequence[str], studied: Sequence[str]) -> Design:
    if len(studied) > MAX_FACTORIAL_HACKS:
        raise ConfigError(f"full_factorial of {len(studied)} hacks is 2^{len(studied)} arms; at most "
                          f"{MAX_FACTORIAL_HACKS} hacks (use fractional_factorial for more)")
    rows = list(itertools.product((False, True), repeat=len(studied)))
    return Design("full_factorial", _factorial_arms(preset_hacks, studied, rows), "none")


FACTOR_LETTERS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"  # no I: it names the identity in "I = ABCE"


def _letters(mask: int, k: int) -> str:
    names = [FACTOR_LETTERS[i] if i < len(FACTOR_LETTERS) else f"F{i}" for i in range(k)]
    return "".join(names[i] for i in range(k) if mask >> i & 1)


def _defining_words(generator_masks: Sequence[int]) -> list[int]:
    """Every word of the defining relation: XORs of non-empty subsets of the generator words."""
    words = []
    for r in range(1, len(generator_masks) + 1):
        for subset in itertools.combinations(generator_masks, r):
            word = 0
            for mask in subset:
                word ^= mask
            words.append(word)
    return words


RESTARTS = 200  # random restarts of the greedy search (seeded: a suite always gets the same design)


def _generators(k: int, n_base: int, resolution: int) -> list[int] | None:
    """Words (bitmasks over k factors) defining factors n_base..k−1 as interactions of the
    base factors, or None when the search finds none of at least `resolution`.

    A regular fraction has resolution ≥ R exactly when every R − 1 of its factor columns (as
    vectors over the base factors) are linearly independent, i.e. no column is the sum of
    R − 2 or fewer others. Greedy: a candidate interaction is accepted when it avoids every
    such sum; the first pass takes interactions of R − 1 letters first (which leaves the most
    room), then seeded random restarts. This reaches the textbook minimum run count for every
    k ≤ 17 at resolutions III–V (tests/test_suite.py), e.g. 17 factors at V in 256 runs.
    """
    if k <= n_base:
        return []
    sizes = [*range(max(2, resolution - 1), n_base + 1), *range(min(resolution - 2, n_base), 1, -1)]
    ordered = [sum(1 << i for i in combo) for size in sizes for combo in itertools.combinations(range(n_base), size)]
    rng = random.Random(0)
    for attempt in range(RESTARTS + 1):
        candidates = ordered if attempt == 0 else rng.sample(ordered, len(ordered))
        columns = _greedy_columns(candidates, k - n_base, n_base, resolution - 2)
        if columns is not None:
            return [column | (1 << (n_base + j)) for j, column in enumerate(columns)]
    return None


def _greedy_columns(candidates: Sequence[int], wanted: int, n_base: int, depth: int) -> list[int] | None:
    """`wanted` candidates, each outside the sums of ≤ `depth` columns chosen before it (the base
    factors' unit columns included), or None."""
    # sums[j]: XORs of at most j chosen columns; a new column c adds c ^ x for x in sums[j − 1].
    sums = [{0} for _ in range(depth + 1)]
    for unit in (1 << i for i in range(n_base)):
        for j in range(depth, 0, -1):
            sums[j] |= {x ^ unit for x in sums[j - 1]}
    chosen: list[int] = []
    for candidate in candidates:
        if len(chosen) == wanted:
            break
        if candidate in sums[depth]:
            continue
        chosen.append(candidate)
        for j in range(depth, 0, -1):
            sums[j] |= {x ^ candidate for x in sums[j - 1]}
    return chosen if len(chosen) == wanted else None


def fractional_factorial(preset_hacks: Sequence[str], studied: Sequence[str], resolution: int) -> Design:
    """The smallest regular fraction (by this construction) whose resolution is ≥ `resolution`."""
    k = len(studied)
    if resolution < 3:
        raise ValueError("fractional_factorial: resolution must be at least 3 (III)")
    for n_base in range(1, k + 1):
        gens = _generators(k, n_base, resolution)
        if gens is not None:
            break
    for better in range(resolution + 1, k + 1):  # same number of runs, higher resolution if possible
        stronger = _generators(k, n_base, better) if n_base < k else None
        if stronger is None:
            break
        gens = stronger
    words = _defining_words(gens)
    rows = []
    for base in itertools.product((False, True), repeat=n_base):
        levels = list(base)
        for gen in gens:
            # ±1 coding: the extra factor's level is the product of its base factors' levels.
            sign = 1
            for i in range(n_base):
                if gen >> i & 1:
                    sign *= 1 if base[i] else -1
            levels.append(sign > 0)
        rows.append(tuple(levels))
    arms = _factorial_arms(preset_hacks, studied, rows)
    gen_lines = tuple(f"{_letters(1 << (n_base + j), k)} = {_letters(g & ~(1 << (n_base + j)), k)}"
                      for j, g in enumerate(gens))
    alias_lines = _alias_lines(words, studied)
    achieved = min((bin(w).count("1") for w in words), default=None)
    return Design("fractional_factorial", arms, None, achieved, gen_lines, alias_lines)


def _alias_lines(words: Sequence[int], studied: Sequence[str]) -> tuple[str, ...]:
    """For each main effect and two-way interaction, the effects of order ≤ 2 it is confounded with."""
    k = len(studied)
    legend = [f"{_letters(1 << i, k)} = {name}" for i, name in enumerate(studied)]
    effects = [1 << i for i in range(k)] + [(1 << i) | (1 << j) for i, j in itertools.combinations(range(k), 2)]
    lines = []
    for effect in effects:
        partners = sorted({effect ^ w for w in words if 0 < bin(effect ^ w).count("1") <= 2},
                          key=lambda m: (bin(m).count("1"), m))
        if partners:
            lines.append(f"{_letters(effect, k)} = " + " = ".join(_letters(m, k) for m in partners))
    if not lines:
        lines.append("no main effect or two-way interaction is aliased with another of order ≤ 2")
    shortest = sorted(words, key=lambda m: (bin(m).count("1"), m))
    defining = "I = " + " = ".join(_letters(w, k) for w in shortest[:12])
    if len(shortest) > 12:
        defining += f" = … ({len(shortest)} words in all; the shortest are shown)"
    return (*legend, defining if words else "I (full factorial: nothing aliased)", *lines)


def explicit_arms(preset_hacks: Sequence[str], arms: Mapping[str, tuple[Sequence[str], Mapping[str, Any]]],
                  reference: str | None) -> Design:
    built = tuple(_arm(name, [*preset_hacks, *hacks], preset_hacks, overrides=dict(overrides))
                  for name, (hacks, overrides) in arms.items())
    return Design("arms", built, reference)


def roman(n: int | None) -> str:
    return ROMAN.get(n, str(n)) if n else "-"


# --- The registry: a suite's `design: {type: NAME, …}` -------------------------------------------
#
# Each builder takes (the preset's hacks, the studied hacks, the design's options) and returns the
# Design; `options` holds the design's mapping (its declared options, e.g. `resolution`), and for `arms`
# the parsed arms.
DesignBuilder = Callable[[Sequence[str], Sequence[str], Mapping[str, Any]], Design]


@dataclass(frozen=True)
class DesignSpec:
    """A design a suite can name: how it builds its arms and what it reads. `options` are its own keys in
    `design:` / a `designs:` part, key → (type, meaning): the suite grammar (`suite_keys`, `ganbench
    suite-keys`) lists them, the unknown-key check allows them, and a `ConfigError` naming one is said at
    `design.KEY`. `studies_hacks`: its arms are made from the hacks under study (all but explicit arms)."""

    name: str
    build: DesignBuilder
    options: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    studies_hacks: bool = True


DESIGNS: Registry[DesignSpec] = Registry("design")


def register_design(name: str, build: DesignBuilder, options: Mapping[str, tuple[str, str]] | None = None,
                    studies_hacks: bool = True) -> DesignSpec:
    """Register a design (a plugin's too): `register_design("mine", build, options={"depth": ("int", "…")})`."""
    return DESIGNS.register(name, DesignSpec(name, build, dict(options or {}), studies_hacks))


def design_options() -> dict[str, tuple[str, str]]:
    """Every registered design's options, key → (type, meaning naming the designs that read it)."""
    readers: dict[str, list[str]] = {}
    described: dict[str, tuple[str, str]] = {}
    for spec in DESIGNS.values():
        for key, (kind, meaning) in spec.options.items():
            readers.setdefault(key, []).append(spec.name)
            described.setdefault(key, (kind, meaning))
    return {key: (kind, f"{', '.join(readers[key])}: {meaning}") for key, (kind, meaning) in described.items()}


def _fractional(preset_hacks: Sequence[str], studied: Sequence[str], options: Mapping[str, Any]) -> Design:
    resolution = options.get("resolution")
    if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 3:
        raise ConfigError(f"fractional_factorial needs an integer resolution >= 3 (III, IV, V…), got {resolution!r}")
    return fractional_factorial(preset_hacks, studied, resolution)


register_design("leave_one_out", lambda preset, studied, options: leave_one_out(preset, studied))
register_design("add_one_in", lambda preset, studied, options: add_one_in(preset, studied))
register_design("full_factorial", lambda preset, studied, options: full_factorial(preset, studied))
register_design("fractional_factorial", _fractional, options={"resolution": ("int", "III, IV or V")})
register_design("arms", lambda preset, studied, options: explicit_arms(preset, options["arms"],
                                                                     options.get("reference")), studies_hacks=False)
