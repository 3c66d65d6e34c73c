"""Which metrics a report reports, and which of them give its verdicts: one rule for the report (from the
metrics its rows hold) and for `ganbench plan` (from the metrics its configs will write), so the plan's
power is computed for the very family the report will test. Torch- and pandas-free."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ganbench.metrics.registry import METRICS, metric_values, optional_values, parse_metrics

# The reporting order of the usual metrics; any other scored metric follows, by name.
PREFERRED = ("fid_fmnist", "kid_fmnist", "isc_fmnist", "precision_fmnist", "recall_fmnist", "modes_covered_fmnist",
             "modes_kl_fmnist", "fid", "kid", "isc", "precision", "recall")


def scored_in_order(values: Iterable[str], directions: Mapping[str, bool | None]) -> list[str]:
    """The value names a report scores (a direction, and not a value written only when a knob asks for it,
    such as FID∞: at these sample sizes it adds nothing to FID and doubles the main table), in `PREFERRED` order."""
    optional = {value for metric in METRICS.values() for value in optional_values(metric)}
    scored = [v for v in dict.fromkeys(values) if directions.get(v) is not None and v not in optional]
    return sorted(scored, key=lambda v: (PREFERRED.index(v) if v in PREFERRED else len(PREFERRED), v))


def expected_scored(settings: Iterable[tuple[str, str]]) -> list[str]:
    """What `scored_in_order` will find in a suite's rows, before any run: the value names of every metric
    that its configs' (`metrics`, `dataset`) knobs ask for."""
    values: dict[str, bool | None] = {}
    for metrics, dataset in settings:
        for name in parse_metrics(metrics, dataset):
            values.update(metric_values(name))
    return scored_in_order(values, values)


def choose_metrics(chosen: list[str], analysis: Mapping[str, Any]) -> tuple[str, list[str]]:
    """(primary metric, verdict metrics) of the scored metrics `chosen`: the suite's `analysis` section, else
    the dataset's FID (the fmnist one where present) and the next three scored metrics."""
    primary = analysis.get("primary") or next((m for m in ("fid_fmnist", "fid") if m in chosen), chosen[0])
    if primary not in chosen:
        raise ValueError(f"the suite's primary metric '{primary}' is not in these results; present: {chosen}")
    verdicts = list(analysis.get("verdicts") or [primary, *[m for m in chosen if m != primary][:3]])
    if primary not in verdicts:
        verdicts.insert(0, primary)
    return primary, [m for m in verdicts if m in chosen]
