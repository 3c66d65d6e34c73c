"""The metric registry: every metric's name, the values it writes, which way each is better and its range.

Torch-free, so the analysis side (results, stats, report, compare, literature) and the CLI
can check names and read directions and ranges without importing torch. It is also the one
owner of the **value-name grammar**: a metric of kind K on extractor E is named `K` on
Inception and `K_E` on any other extractor (`fid`, `fid_fmnist`), and so is each value it
writes (`kid_std`, `kid_std_fmnist`) — `value_name` builds a name, `parse_value_name` reads
one. Nothing else builds a name from a suffix.

To add a metric that ganbench computes, write one module in `ganbench/metrics/` that declares
its kind with `register_kind(Kind(..., compute=its function))` (values, directions, ranges) and
pairs it with an extractor by `register_metric`, and list it in `ganbench/metrics/__init__.py`
(`modes.py` is the example). torch-fidelity's kinds are declared below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ganbench.errors import ConfigError, Registry

INCEPTION = "inception"  # the extractor whose metrics carry no suffix (the literature's FID)
EXTRACTORS = ("inception", "fmnist")  # 'fmnist': ganbench's Fashion-MNIST classifier (ganbench.metrics.classifier)
UNBOUNDED = (-math.inf, math.inf)


class MetricError(ValueError):
    """A metric that cannot be computed as asked; the message says why."""


@dataclass(frozen=True)
class Output:
    """One value a metric writes."""

    name: str  # base name, before the extractor suffix ('fid', 'kid_std', 'precision')
    higher_is_better: bool | None  # None: a spread, not a score
    low: float = -math.inf  # the range the value can take: intervals are kept inside it
    high: float = math.inf
    log_scale: bool = False  # compared as ratios (on the log scale, reported as % change) when every value is > 0


@dataclass(frozen=True)
class MetricInputs:
    """What a metric ganbench computes itself gets: the features of the generated and the reference
    images by the layer names of the extractor (reference None when no torch-fidelity metric needed
    them), the reference labels and the evaluation's seed."""

    generated_features: dict[str, Any]
    reference_features: dict[str, Any] | None
    real_labels: Any
    seed: int


@dataclass(frozen=True)
class Kind:
    """A kind of metric, computed the same way on any extractor that allows it."""

    name: str  # 'fid', 'kid', 'isc', 'prc' (torch-fidelity), 'modes' (ganbench)
    outputs: tuple[Output, ...]
    optional: tuple[Output, ...] = ()  # values written only when a knob asks (FID∞: fid_infinity)
    extractors: tuple[str, ...] = EXTRACTORS  # where it can be computed (modes needs a classifier's labels)
    needs_logits: bool = False  # on Inception it needs the logits layer (IS), which feature-only weights lack
    compute: Callable[[MetricInputs], dict[str, float]] | None = None  # None: torch-fidelity computes it
    layers: tuple[str, ...] = ()  # extractor layers `compute` reads besides torch-fidelity's (e.g. 'logits')


@dataclass(frozen=True)
class Metric:
    name: str  # registry key, e.g. 'fid_fmnist'
    kind: str  # a registered `Kind`
    extractor: str  # 'inception' | 'fmnist'
    higher_is_better: dict[str, bool | None] = field(default_factory=dict)  # value name → direction


def value_name(base: str, extractor: str) -> str:
    """The name of value `base` measured on `extractor`: 'fid' on Inception, 'fid_fmnist' on fmnist."""
    return base if extractor == INCEPTION else f"{base}_{extractor}"


def parse_value_name(name: str) -> tuple[str, str]:
    """(base value, extractor) of a value name; an unknown name reads as itself on Inception."""
    for extractor in EXTRACTORS:
        if extractor != INCEPTION and name.endswith(f"_{extractor}"):
            return name.removesuffix(f"_{extractor}"), extractor
    return name, INCEPTION


def _check_kind(name: str, kind: Kind) -> None:
    if name != kind.name or not kind.outputs:
        raise ConfigError(f"metric kind '{name}' must be registered under its own name with at least one output")
    unknown = set(kind.extractors) - set(EXTRACTORS)
    if unknown:
        raise ConfigError(f"metric kind '{name}': unknown extractors {sorted(unknown)}; choose from {list(EXTRACTORS)}")


KINDS: Registry[Kind] = Registry("metric kind", check=_check_kind)
METRICS: Registry[Metric] = Registry("metric")
OUTPUTS: dict[str, Output] = {}  # base value name → its declaration, for directions and ranges


def register_kind(kind: Kind) -> Kind:
    """Declare a kind of metric; each value name belongs to one kind (its direction and range are its own)."""
    taken = [out.name for out in kind.outputs + kind.optional if out.name in OUTPUTS]
    if taken:
        raise ConfigError(f"metric kind '{kind.name}': values {taken} are already declared by another kind")
    KINDS.register(kind.name, kind)
    for output in kind.outputs + kind.optional:
        OUTPUTS[output.name] = output
    return kind


def register_metric(kind: str, extractor: str) -> Metric:
    spec = KINDS[kind]
    if extractor not in spec.extractors:
        raise ConfigError(f"metric kind '{kind}' cannot be computed on the {extractor} extractor "
                          f"(only on {list(spec.extractors)})")
    metric = Metric(value_name(kind, extractor), kind, extractor,
                    {value_name(out.name, extractor): out.higher_is_better for out in spec.outputs})
    return METRICS.register(metric.name, metric)


def optional_values(metric: Metric) -> dict[str, bool | None]:
    """Value name → direction of what `metric` writes only when a knob asks for it."""
    return {value_name(out.name, metric.extractor): out.higher_is_better for out in KINDS[metric.kind].optional}


def metric_values(name: str, fid_infinity: bool = False) -> dict[str, bool | None]:
    """Value name → direction of everything metric `name` writes (FID∞ too when asked)."""
    metric = METRICS[name]
    return {**metric.higher_is_better, **(optional_values(metric) if fid_infinity else {})}


def all_values() -> dict[str, bool | None]:
    """Every value name any registered metric can write → its direction."""
    out: dict[str, bool | None] = {}
    for metric in METRICS.values():
        out.update(metric.higher_is_better)
        out.update(optional_values(metric))
    return out


def higher_is_better(name: str) -> bool | None:
    """Direction of a value name; `KeyError` for a name no metric writes."""
    directions = all_values()
    if name not in directions:
        raise KeyError(name)
    return directions[name]


def compared_on_log_scale(name: str) -> bool:
    """Whether a value name's metric declares its comparisons on the log scale (False for unknown names)."""
    output = OUTPUTS.get(parse_value_name(name)[0])
    return bool(output and output.log_scale)


def value_range(name: str) -> tuple[float, float]:
    """(low, high) of a metric value; unbounded for a name the registry does not know."""
    output = OUTPUTS.get(parse_value_name(name)[0])
    return (output.low, output.high) if output else UNBOUNDED


# --- torch-fidelity's metrics (ganbench's own register from their modules) ------------------------

register_kind(Kind("fid", (Output("fid", False, 0.0, log_scale=True),), optional=(Output("fid_infinity", False),)))
register_kind(Kind("kid", (Output("kid", False), Output("kid_std", None))))
register_kind(Kind("isc", (Output("isc", True, 1.0, log_scale=True), Output("isc_std", None)), needs_logits=True))
register_kind(Kind("prc", (Output("precision", True, 0.0, 1.0), Output("recall", True, 0.0, 1.0),
                           Output("f_score", True, 0.0, 1.0))))
for _kind in ("fid", "kid", "isc", "prc"):
    register_metric(_kind, "inception")
    register_metric(_kind, "fmnist")

FMNIST_DATASETS = ("fashion-mnist", "fake")
MIN_EVAL_SAMPLES = 10  # the fewest images an evaluation can be computed from (see config's range checks)
FMNIST_DEFAULT = ("fid_fmnist", "kid_fmnist", "isc_fmnist", "prc_fmnist", "modes_fmnist")


def parse_metrics(spec: str | Iterable[str], dataset: str = "fashion-mnist") -> tuple[str, ...]:
    """'auto' | 'none' | 'a,b,…' → checked metric names. 'auto' is the fmnist set on
    Fashion-MNIST (and on `fake`, its stand-in in tests) and Inception FID/KID elsewhere."""
    if isinstance(spec, str):
        if spec == "auto":
            return FMNIST_DEFAULT if dataset in FMNIST_DATASETS else ("fid", "kid")
        spec = [] if spec in ("", "none") else spec.split(",")
    names = tuple(dict.fromkeys(s.strip() for s in spec if s.strip()))
    for name in names:
        METRICS[name]  # an unknown name raises, with a suggestion and the choices
    return names


def measured_values(cfg: Any) -> dict[str, bool | None]:
    """Value name → direction of everything a config's evaluation writes."""
    out: dict[str, bool | None] = {}
    for name in parse_metrics(cfg.metrics, cfg.dataset):
        out.update(metric_values(name, cfg.fid_infinity))
    return out


def check_evaluation(cfg: Any) -> None:
    """The evaluation knobs of a config (`TrainConfig`) checked against the registry: known metrics,
    enough images to compute them, FID∞ only beside a FID. `ConfigError` names the knob."""
    measured = parse_metrics(cfg.metrics, cfg.dataset)  # an unknown metric fails with a suggestion
    if measured and cfg.eval_samples < MIN_EVAL_SAMPLES:
        raise ConfigError(f"bad value {cfg.eval_samples!r} for 'eval_samples': must be >= {MIN_EVAL_SAMPLES} when "
                          "metrics are computed (IS splits the images 10 ways, precision/recall needs 4 neighbours, "
                          "FID a covariance, FID∞ subsets of N/5 >= 2 images)")
    if cfg.fid_infinity and not any(KINDS[METRICS[m].kind].optional for m in measured):
        raise ConfigError(f"bad value True for 'fid_infinity': must be off unless a FID metric is computed "
                          f"(metrics={cfg.metrics!r} has none)")


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    """metric → value of one evaluation; the mean over its latent draws where it has several."""
    values: dict[str, list[float]] = {}
    for row in rows:
        if row["value"] is not None and math.isfinite(row["value"]):
            values.setdefault(row["metric"], []).append(row["value"])
    return {metric: sum(v) / len(v) for metric, v in values.items()}
