"""Our numbers beside the literature's, for runs evaluated under a published protocol
(`eval_protocol`, see ganbench.metrics.protocols): per arm the final and the best evaluation
over training (the paper's figures are best checkpoints), and the published figures with their
source, spread and what differs. No torch."""

from __future__ import annotations

from typing import Callable

import pandas as pd

from ganbench.analysis import stats
from ganbench.metrics.protocols import get_protocol
from ganbench.metrics.registry import higher_is_better, value_range


def literature_tables(frame: pd.DataFrame, cell: Callable[[pd.Series], str]) -> list[tuple[str, list[str], pd.DataFrame]]:
    """(protocol name, lines to print above the table, table) per protocol the runs followed.
    `cell` formats an arm summary row (the report's 'mean [CI] (n)')."""
    if "knob_eval_protocol" not in frame:
        return []
    out = []
    for name in sorted(p for p in frame["knob_eval_protocol"].dropna().unique() if p):
        spec = get_protocol(str(name))
        runs = frame[frame["knob_eval_protocol"] == name]
        readings = {}
        direction = higher_is_better(spec.metric)
        for aggregate in ("final", "best"):  # the draw mean at the last step; the best over the evaluations
            values = stats.run_values(runs, spec.metric, direction, aggregate)
            readings[aggregate] = stats.arm_summary(values, value_range(spec.metric)).set_index("arm")
        rows = [{"source": "ganbench (this suite)", "setting": arm,
                 f"final {spec.metric}": cell(readings["final"].loc[arm]),
                 f"best {spec.metric} over training": cell(readings["best"].loc[arm])}
                for arm in readings["final"].index]
        datasets = set(runs["knob_dataset"].dropna()) if "knob_dataset" in runs else set()
        comparable = not spec.dataset or datasets == {spec.dataset}
        if comparable:
            rows += [{"source": spec.source.split(",")[0] + " (published)", "setting": p.setting,
                      f"final {spec.metric}": "not published",
                      f"best {spec.metric} over training": f"{p.value:g}" + (f" ± {p.spread:g}" if p.spread else "")}
                     for p in spec.published]
        lines = [f"Protocol `{name}`: {spec.description}.", "",
                 f"Published: {spec.source}; ± is {spec.spread}. {spec.caveats}"]
        if not comparable:
            lines.append(f"The published figures are on `{spec.dataset}`, these runs on {sorted(datasets)}: they are "
                         "not shown.")
        out.append((str(name), lines, pd.DataFrame(rows)))
    return out
