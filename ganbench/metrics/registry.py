"""The metric registry: names, the extractor each needs, and which way each value is better.

Torch-free, so the analysis side (results, stats, report, compare) and the CLI can check
metric names and read directions without importing torch. A metric's computation lives in
`ganbench.metrics.fidelity`; every row it writes also carries `higher_is_better`, and the
analysis reads the direction from the rows first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from ganbench.config import ConfigError, did_you_mean


class MetricError(ValueError):
    """A metric that cannot be computed as asked; the message says why."""


@dataclass(frozen=True)
class Metric:
    name: str  # registry key, e.g. 'fid_fmnist'
    kind: str  # 'fid' | 'kid' | 'isc' | 'prc' (torch-fidelity) or 'modes' (ganbench)
    extractor: str  # 'inception' | 'fmnist'
    higher_is_better: dict[str, bool | None]  # output value → direction (None: a spread, not a score)


METRICS: dict[str, Metric] = {}

_OUTPUTS: dict[str, dict[str, bool | None]] = {
    "fid": {"fid": False},
    "kid": {"kid": False, "kid_std": None},
    "isc": {"isc": True, "isc_std": None},
    "prc": {"precision": True, "recall": True, "f_score": True},
    "modes": {"modes_covered": True, "modes_kl": False},
}


# Values a metric writes only when a knob asks for them (fid_infinity): name → direction.
OPTIONAL_OUTPUTS: dict[str, bool | None] = {"fid_infinity": False, "fid_infinity_fmnist": False}

# The range each value can take (low, high); intervals are kept inside it.
RANGES: dict[str, tuple[float, float]] = {
    "fid": (0.0, float("inf")), "fid_infinity": (float("-inf"), float("inf")), "kid": (float("-inf"), float("inf")),
    "isc": (1.0, float("inf")), "precision": (0.0, 1.0), "recall": (0.0, 1.0), "f_score": (0.0, 1.0),
    "modes_covered": (0.0, 10.0), "modes_kl": (0.0, float("inf")),
}


def value_range(value_name: str) -> tuple[float, float]:
    """(low, high) of a metric value; unbounded for a name the registry does not know."""
    base = value_name.removesuffix("_fmnist")
    return RANGES.get(base, (float("-inf"), float("inf")))


def register_metric(kind: str, extractor: str) -> Metric:
    if kind not in _OUTPUTS:
        raise ConfigError(f"unknown metric kind '{kind}'{did_you_mean(kind, _OUTPUTS)}")
    if kind == "modes" and extractor != "fmnist":
        raise ConfigError("mode coverage needs a classifier: only the fmnist extractor has one")
    suffix = "" if extractor == "inception" else f"_{extractor}"
    metric = Metric(f"{kind}{suffix}", kind, extractor,
                    {f"{out}{suffix}": direction for out, direction in _OUTPUTS[kind].items()})
    if metric.name in METRICS:
        raise ConfigError(f"metric '{metric.name}' is already registered")
    METRICS[metric.name] = metric
    return metric


for _kind in ("fid", "kid", "isc", "prc"):
    register_metric(_kind, "inception")
    register_metric(_kind, "fmnist")
register_metric("modes", "fmnist")

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
        if name not in METRICS:
            raise ConfigError(f"unknown metric '{name}'{did_you_mean(name, METRICS)}; choose from {sorted(METRICS)}")
    return names


def higher_is_better(value_name: str) -> bool | None:
    if value_name in OPTIONAL_OUTPUTS:
        return OPTIONAL_OUTPUTS[value_name]
    for metric in METRICS.values():
        if value_name in metric.higher_is_better:
            return metric.higher_is_better[value_name]
    raise KeyError(value_name)


def check_evaluation(cfg: Any) -> None:
    """The evaluation knobs of a config (`TrainConfig`) checked against the registry: known metrics,
    enough images to compute them, FID∞ only beside a FID. `ConfigError` names the knob."""
    measured = parse_metrics(cfg.metrics, cfg.dataset)  # an unknown metric fails with a suggestion
    if measured and cfg.eval_samples < MIN_EVAL_SAMPLES:
        raise ConfigError(f"bad value {cfg.eval_samples!r} for 'eval_samples': must be >= {MIN_EVAL_SAMPLES} when "
                          "metrics are computed (IS splits the images 10 ways, precision/recall needs 4 neighbours, "
                          "FID a covariance, FID∞ subsets of N/5 >= 2 images)")
    if cfg.fid_infinity and not any(METRICS[m].kind == "fid" for m in measured):
        raise ConfigError(f"bad value True for 'fid_infinity': must be off unless a FID metric is computed "
                          f"(metrics={cfg.metrics!r} has none)")
