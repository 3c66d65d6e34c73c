"""All runs of a suite → one tidy pandas DataFrame.

One row per (arm, run, step, metric value), with the run's arm, seed, status and error,
one boolean column per hack its runs use (`hack_<name>`), every knob (`knob_<name>`) and
the metric's provenance columns. A run that failed or diverged before any evaluation is
one row with its status and an empty metric, never silently dropped. An evaluation of
several latent draws (`eval_draws`) is one row: `value` is the mean of the draws, `draws`
their number and `draw_sd` their standard deviation (the evaluation noise).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from ganbench import rundir
from ganbench.config import KNOBS, knob_type_problem
from ganbench.files import RunDirError
from ganbench.hacks import HACKS
from ganbench.suitedir import SuiteDir

RUN_COLUMNS = ("part", "arm", "seed", "run_id", "status", "error")


def load_manifest(results_dir: str | Path) -> dict[str, Any]:
    """suite.json, checked (`SuiteDir.read_manifest`: run ids, arm names, shape), as a mapping."""
    return SuiteDir(results_dir).read_manifest().as_dict()


def _part_of(arm: str, manifest: dict[str, Any]) -> str:
    for design in manifest["designs"]:
        if arm in {a["name"] for a in design["arms"]}:
            return design["part"]
    return ""


def _run_files(suite_dir: SuiteDir, run_id: str) -> tuple[Path | None, dict[str, Any], dict[str, Any], str | None]:
    """(run directory or None, status, config, problem) of one run. A run whose files cannot be
    read keeps its row: status 'failed' (status.json) or its knobs missing (config.json), and the
    problem names the file; the other runs are read as usual."""
    try:
        path = suite_dir.run_path(run_id)
    except RunDirError as err:
        return None, {"status": "failed", "error": str(err)}, {}, str(err)
    if path.exists() and not path.is_dir():  # a run directory replaced by a file: said, reported as failed
        problem = f"{path}: not a run directory (a {'link' if path.is_symlink() else 'file'})"
        return None, {"status": "failed", "error": problem}, {}, problem
    run = rundir.RunDir(path)
    status = run.read_status()
    problem = status.get("error") if status.get("corrupt_status") else None
    try:
        config = (run.read_config() or {}).get("config", {})
    except RunDirError as err:
        config, problem = {}, str(err)
    damaged = {name: why for name, value in config.items()
               if name in KNOBS and (why := knob_type_problem(name, value))}
    if damaged:  # the knob reads as missing, said with the file; the run's metrics stay
        config = {name: value for name, value in config.items() if name not in damaged}
        problem = f"{run.file(rundir.CONFIG)}: " + "; ".join(damaged.values())
    return path, status, config, problem


def load_results(results_dir: str | Path) -> pd.DataFrame:
    """The tidy table of a suite's results directory (results/<suite>/). A run with unreadable
    files is a row with its status and error (and a `CorruptLineWarning` naming the file)."""
    suite_dir = SuiteDir(results_dir)
    manifest = load_manifest(results_dir)
    rows: list[dict[str, Any]] = []
    # One column per hack the suite's runs use (registered order, then any no plugin here registers):
    # the table must not change with the plugins a process happens to load.
    used = {name for entry in manifest["runs"] for name in entry["hacks"]}
    hack_columns = [name for name in HACKS if name in used] + sorted(used - set(HACKS))
    for entry in manifest["runs"]:
        run_dir, status, config, problem = _run_files(suite_dir, entry["run_id"])
        if problem:
            warnings.warn(problem, rundir.CorruptLineWarning, stacklevel=2)
        run = {"part": _part_of(entry["arm"], manifest), "arm": entry["arm"], "seed": entry["seed"],
               "run_id": entry["run_id"], "status": status.get("status", "pending"), "error": status.get("error"),
               "wall_s": status.get("wall_s"),
               **{k: (status.get("compute") or {}).get(k) for k in ("flops_per_step", "params_g", "params_d")},
               **{f"hack_{name}": name in entry["hacks"] for name in hack_columns},
               **{f"knob_{k}": v for k, v in config.items()}}
        metrics = rundir.RunDir(run_dir).training_metric_rows() if run_dir else []
        if not metrics:
            rows.append({**run, "step": None, "metric": None, "value": None})
        for metric in metrics:
            rows.append({**run, **metric})
    frame = pd.DataFrame(rows)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return split_settings(mean_over_draws(frame))


# What makes two numbers of one metric comparable: measured with the same extractor and weights, layer,
# generated and reference counts, reference split and dataset (the rows' provenance).
SETTING = ("extractor", "feature_layer", "weights_sha256", "samples_generated", "reference_samples",
           "reference_split", "reference_dataset")


class ReportNote(UserWarning):
    """Something a report did that its reader should know (the CLI says each once)."""


class MixedSettingsWarning(UserWarning):
    """One metric was measured in more than one setting; the minority settings were given their own names."""


def split_settings(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of one metric measured in different settings are never pooled: the setting most rows have keeps
    the metric's name, every other becomes `metric [setting]` (its own metric in the report), with a warning."""
    columns = [c for c in SETTING if c in frame]
    if not columns or "metric" not in frame:
        return frame
    keys = frame[columns].apply(lambda row: " · ".join(map(str, row)), axis=1)
    for metric in frame["metric"].dropna().unique():
        mine = frame["metric"] == metric
        counts = keys[mine].value_counts()
        if len(counts) < 2:
            continue
        for key in counts.index[1:]:
            where = mine & (keys == key)
            described = ", ".join(f"{c}={frame.loc[where, c].iloc[0]}" for c in columns
                                  if frame.loc[where, c].iloc[0] != frame.loc[mine & (keys == counts.index[0]), c].iloc[0])
            frame.loc[where, "metric"] = f"{metric} [{described}]"
            warnings.warn(f"{metric}: {int(where.sum())} rows were measured differently ({described}) from the "
                          f"{int(counts.iloc[0])} others; they are reported apart as '{metric} [{described}]'",
                          MixedSettingsWarning, stacklevel=2)
    return frame


def mean_over_draws(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (arm, run, step, metric): the draws' mean, count and SD (see the module doc)."""
    keys = ["arm", "run_id", "step", "metric"]
    if "draw" not in frame:
        return frame.assign(draws=frame["metric"].notna().astype(int), draw_sd=math.nan)
    measured, unmeasured = frame[frame["metric"].notna()], frame[frame["metric"].isna()]
    values = measured.groupby(keys, sort=False)["value"]
    first = measured.drop_duplicates(keys).set_index(keys)
    first["value"] = values.mean()
    first["draws"] = values.count()
    first["draw_sd"] = values.std(ddof=1)
    merged = pd.concat([first.reset_index().drop(columns=["draw"]), unmeasured.drop(columns=["draw"])],
                       ignore_index=True)
    return merged[[c for c in frame.columns if c != "draw"] + ["draw_sd"]].assign(
        draws=merged["draws"].fillna(0).astype(int))


def metric_directions(frame: pd.DataFrame) -> dict[str, bool | None]:
    """metric → True (higher is better), False (lower) or None (a spread), as the rows that
    measured it say; the torch-free metric registry answers for a metric without rows."""
    from ganbench.metrics.registry import all_values

    directions = all_values()
    if "higher_is_better" in frame and "metric" in frame:
        rows = frame.dropna(subset=["metric"]).drop_duplicates("metric")
        for metric, direction in zip(rows["metric"], rows["higher_is_better"]):
            directions[metric] = None if pd.isna(direction) else bool(direction)
    return directions


def load_training_stats(results_dir: str | Path) -> pd.DataFrame:
    """stats.jsonl of every run (losses, D outputs, grad norms per logged step), with arm and seed."""
    suite_dir = SuiteDir(results_dir)
    frames = []
    for entry in load_manifest(results_dir)["runs"]:
        try:
            rows = suite_dir.run_dir(entry["run_id"]).stats_rows()
        except RunDirError:  # said once, by load_results
            continue
        if rows:
            frame = pd.DataFrame(rows)
            frame["arm"], frame["seed"], frame["run_id"] = entry["arm"], entry["seed"], entry["run_id"]
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_step_costs(results_dir: str | Path) -> dict[str, Any]:
    """compute.json of a local sweep (arm → seconds per step, timed alone), or {} without one."""
    return SuiteDir(results_dir).read_compute()


def save_results(frame: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """results.csv and results.parquet (the tidy table) in `out_dir` (the report's directory:
    reading results never writes into them)."""
    out_dir = Path(out_dir)
    csv, parquet = out_dir / "results.csv", out_dir / "results.parquet"
    rundir.atomic_write(csv, lambda tmp: frame.to_csv(tmp, index=False))
    rundir.atomic_write(parquet, lambda tmp: frame.to_parquet(tmp, index=False))
    return [csv, parquet]
