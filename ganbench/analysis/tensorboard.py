"""TensorBoard event files written from run directories (the JSONL files stay the source of truth).

Per run, one TensorBoard run at `LOGDIR/<arm>/seed<k>-<run_id>` (a lone `ganbench train`
directory: `LOGDIR/<directory name>`):

- scalars `train/<stat>` from stats.jsonl (interval means, as logged), `metrics/<metric>`
  from metrics.jsonl (the mean over latent draws where an evaluation has several, as the tidy
  table reads it; their SD as `metrics_draw_sd/<metric>`);
- the sample grids under `samples`, at their steps;
- hparams: arm, seed and one boolean per hack of the suite, with the final value of every
  metric as `final/<metric>`, so TensorBoard's HParams view compares arms.

Export is idempotent: a run's event directory is rewritten whenever its files changed since the
last export (`LOGDIR/.ganbench-export.json` keeps their sizes and mtimes), and left alone
otherwise, so `--watch` can follow a sweep while it trains.
"""

from __future__ import annotations

import math
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ganbench import rundir
from ganbench.files import ensure_writable, flocked, inside
from ganbench.suitedir import SuiteDir

STATE_FILE = ".ganbench-export.json"
LOCK_FILE = ".ganbench-export.lock"
WATCHED = (rundir.CONFIG, rundir.STATS, rundir.METRICS, rundir.STATUS)


class TensorBoardMissing(ImportError):
    """The optional `tensorboard` package is not installed."""


def _summary_writer() -> Any:
    try:
        import tensorboard  # noqa: F401  (torch's writer needs it)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise TensorBoardMissing("TensorBoard export needs the tensorboard package: pip install 'ganbench[tensorboard]'"
                                 f" ({err})") from None
    return SummaryWriter


@dataclass(frozen=True)
class RunEntry:
    run_dir: Path
    name: str  # the TensorBoard run name (a relative path)
    arm: str
    seed: int
    hacks: tuple[str, ...]


def find_runs(target: Path) -> tuple[list[RunEntry], tuple[str, ...]]:
    """The runs under `target` (a suite's results directory, or one run directory) and the hacks
    of the suite (the hparams columns). Names come from suite.json checked (`SuiteDir`); a run
    whose directory cannot be used is passed over with a warning."""
    target = Path(target)
    if (target / rundir.CONFIG).exists():  # one run
        config = rundir.RunDir(target).read_config() or {}
        hacks = tuple(config.get("hacks") or ())
        return [RunEntry(target, target.name, target.name, int(config["config"].get("seed", 0)), hacks)], hacks
    suite_dir = SuiteDir(target)
    if not suite_dir.has_manifest():
        raise FileNotFoundError(f"{target} is neither a run directory (config.json) nor a suite's results "
                                "directory (suite.json)")
    manifest = suite_dir.read_manifest()
    entries, seen = [], set()
    for run in manifest.runs:
        try:
            run_dir = suite_dir.run_path(run.run_id)
        except rundir.RunDirError as err:
            warnings.warn(f"{err}; not exported", rundir.CorruptLineWarning, stacklevel=2)
            continue
        if run.run_id in seen or not (run_dir / rundir.CONFIG).exists():
            continue  # not started yet, or the same config named by two arms (trained once)
        seen.add(run.run_id)
        entries.append(RunEntry(run_dir, f"{run.arm}/seed{run.seed}-{run.run_id}", run.arm, run.seed, run.hacks))
    hacks = tuple(dict.fromkeys(h for run in manifest.runs for h in run.hacks))
    return entries, hacks


def _fingerprint(run_dir: Path) -> list[Any]:
    files = [run_dir / name for name in WATCHED] + sorted((run_dir / rundir.SAMPLES).glob("*.png"))
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files if f.exists()]


def metric_series(rows: Iterable[dict[str, Any]]) -> dict[str, dict[int, tuple[float, float | None]]]:
    """metric → step → (mean over latent draws, their SD or None), from one run's metrics.jsonl
    rows, averaged as the tidy table averages them (`results.mean_over_draws`)."""
    import pandas as pd

    from ganbench.analysis.results import mean_over_draws

    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return {}
    frame = frame.assign(arm="", run_id="", value=pd.to_numeric(frame["value"], errors="coerce"))
    out: dict[str, dict[int, tuple[float, float | None]]] = {}
    for row in mean_over_draws(frame).sort_values("step").itertuples():
        if math.isfinite(row.value):
            sd = row.draw_sd if math.isfinite(row.draw_sd) else None
            out.setdefault(row.metric, {})[int(row.step)] = (float(row.value), sd)
    return out


def export_run(entry: RunEntry, logdir: Path, suite_hacks: tuple[str, ...]) -> dict[str, int]:
    """Write one run's events (replacing what an earlier export wrote); counts of what was written."""
    import numpy as np
    from PIL import Image

    SummaryWriter = _summary_writer()
    out = logdir / entry.name
    inside(logdir, out, f"TensorBoard directory of run {entry.name!r}")  # arm names are checked; this is the net
    shutil.rmtree(out, ignore_errors=True)
    counts = {"scalars": 0, "images": 0}
    run = entry.run_dir
    stats = rundir.RunDir(run).stats_rows()
    series = metric_series(rundir.RunDir(run).training_metric_rows())  # as the tidy table reads them
    with SummaryWriter(log_dir=str(out)) as writer:
        for row in stats:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    writer.add_scalar(f"train/{key}", value, int(row["step"]))
                    counts["scalars"] += 1
        for metric, by_step in series.items():
            for step, (mean, sd) in by_step.items():
                writer.add_scalar(f"metrics/{metric}", mean, step)
                counts["scalars"] += 1
                if sd is not None:
                    writer.add_scalar(f"metrics_draw_sd/{metric}", sd, step)
        for png in sorted((run / rundir.SAMPLES).glob("step_*.png")):
            try:
                with Image.open(png) as opened:
                    image = np.asarray(opened.convert("RGB"))
                step = int(png.stem.split("_")[1])
            except (OSError, SyntaxError, ValueError) as err:  # a truncated or foreign file: the others go on
                warnings.warn(f"{png}: not a readable sample grid ({err}); skipped", rundir.CorruptLineWarning,
                              stacklevel=2)
                continue
            writer.add_image("samples", image, step, dataformats="HWC")
            counts["images"] += 1
        if series:  # the HParams view pairs these hparams with the final/<metric> scalars of the same run
            status = rundir.RunDir(run).read_status()  # a damaged one reads 'failed', with the reason
            params: dict[str, Any] = {"arm": entry.arm, "seed": entry.seed,
                                      "status": str(status.get("status", "unknown"))}
            params.update({f"hack/{h}": h in entry.hacks for h in suite_hacks})
            final = {f"final/{metric}": by_step[max(by_step)][0] for metric, by_step in series.items()}
            last = max(max(by_step) for by_step in series.values())
            for tag, value in final.items():
                writer.add_scalar(tag, value, last)
            for summary in _hparams_summaries(params, final):
                writer.file_writer.add_summary(summary)
    return counts


def _hparams_summaries(params: dict[str, Any], metrics: dict[str, float]) -> tuple[Any, ...]:
    """torch's hparams summaries with booleans typed as booleans (torch records a bool as the number
    1 or 0, because bool is an int), so the HParams view shows the hacks as on/off."""
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
    from torch.utils.tensorboard.summary import hparams

    experiment, start, end = hparams(params, metrics)
    flags = {k for k, v in params.items() if isinstance(v, bool)}
    for summary, edit in ((experiment, "experiment"), (start, "session_start_info")):
        metadata = summary.value[0].metadata.plugin_data
        data = plugin_data_pb2.HParamsPluginData.FromString(metadata.content)
        if edit == "experiment":
            for info in data.experiment.hparam_infos:
                if info.name in flags:
                    info.type = api_pb2.DATA_TYPE_BOOL
        else:
            for name in flags:
                data.session_start_info.hparams[name].bool_value = params[name]
        metadata.content = data.SerializeToString()
    return experiment, start, end


def default_logdir(target: Path) -> Path:
    """tensorboard/<suite or run name> under the current directory (as torch's `runs/`): reading
    results never writes into them, and `run --tensorboard` and `tensorboard --watch` share it."""
    return Path("tensorboard") / Path(target).resolve().name


def _read_state(state_path: Path) -> dict[str, Any]:
    """The export state; a damaged one is said and ignored (every run is exported again)."""
    if not state_path.exists():
        return {}
    try:
        return rundir.read_record(state_path, "the exporter's state {run name: fingerprint}")
    except rundir.RunDirError as err:
        warnings.warn(f"{err}; every run is exported again", rundir.CorruptLineWarning, stacklevel=2)
        return {}


def export(target: Path, logdir: Path | None = None, force: bool = False,
           progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Export every run under `target` into `logdir` (default: `default_logdir`); runs whose
    files did not change since the last export are skipped unless `force`. Exporters of one
    logdir take turns (a lock in it), so a sweep's `--tensorboard` and a `--watch` never write
    the same run at once."""
    target = Path(target)
    logdir = Path(logdir) if logdir else default_logdir(target)
    entries, hacks = find_runs(target)
    ensure_writable(logdir)
    written, skipped = 0, 0
    with flocked(logdir / LOCK_FILE, "TensorBoard export lock"):
        state_path = logdir / STATE_FILE
        state = {} if force else _read_state(state_path)
        for i, entry in enumerate(entries, start=1):
            fingerprint = _fingerprint(entry.run_dir)
            if state.get(entry.name) == fingerprint:
                skipped += 1
            else:
                export_run(entry, logdir, hacks)
                state[entry.name] = fingerprint
                written += 1
                rundir.write_json(state_path, state)
            if progress:
                progress(i, len(entries), entry.name)
    return {"logdir": logdir, "runs": len(entries), "written": written, "unchanged": skipped}


def watch(target: Path, logdir: Path | None, every_s: float, on_pass: Callable[[dict[str, Any]], None],
          passes: int | None = None, on_wait: Callable[[str], None] | None = None) -> None:
    """Export, then again every `every_s` seconds (Ctrl-C stops; `passes` bounds it for tests).
    A suite whose sweep has not written suite.json yet is waited for, not given up on."""
    done = 0
    while passes is None or done < passes:
        try:
            on_pass(export(target, logdir))
        except FileNotFoundError as err:
            if on_wait:
                on_wait(f"{err}; waiting for the sweep to start")
        done += 1
        if passes is None or done < passes:
            time.sleep(every_s)
