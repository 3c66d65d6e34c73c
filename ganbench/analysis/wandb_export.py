"""Weights & Biases runs written from run directories, as the TensorBoard export does (the JSONL
files stay the source of truth; nothing under the results root is written).

Per ganbench run one W&B run, in a group named after the suite: its name `<arm>/seed<k>-<run_id>`,
its W&B id `<suite>-<run_id>` (a second export resumes the same W&B run instead of adding one), its
config the run's knobs with arm, seed, run id and one boolean per hack of the suite; history rows at
the run's own steps: `train/<stat>` (stats.jsonl) and `metrics/<metric>` (the mean over latent draws,
`metrics_draw_sd/<metric>` their SD), both as `tensorboard.metric_series` reads them; the summary
holds `final/<metric>` and the run's status. `mode='offline'` (the default) writes W&B's own run
files under `directory` for `wandb sync` later; `online` needs a W&B login.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ganbench import rundir
from ganbench.analysis.tensorboard import find_runs, metric_series


class WandbMissing(ImportError):
    """The optional `wandb` package is not installed."""


def _wandb() -> Any:
    try:
        import wandb
    except ImportError as err:
        raise WandbMissing(f"W&B export needs the wandb package: pip install 'ganbench[wandb]' ({err})") from None
    return wandb


def history(run_dir: Path) -> dict[int, dict[str, float]]:
    """step → the values logged there (training statistics and metrics), in step order."""
    rows: dict[int, dict[str, float]] = {}
    run = rundir.RunDir(run_dir)
    for row in run.stats_rows():
        values = {f"train/{k}": v for k, v in row.items() if k != "step" and isinstance(v, (int, float))
                  and not isinstance(v, bool)}
        rows.setdefault(int(row["step"]), {}).update(values)
    for metric, by_step in metric_series(run.training_metric_rows()).items():  # as the tidy table reads them
        for step, (mean, sd) in by_step.items():
            rows.setdefault(step, {})[f"metrics/{metric}"] = mean
            if sd is not None:
                rows[step][f"metrics_draw_sd/{metric}"] = sd
    return dict(sorted(rows.items()))


def export(target: str | Path, project: str, directory: str | Path = "wandb-export", mode: str = "offline",
           entity: str | None = None, on_run: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Export every run under `target` (a suite's results directory or one run directory)."""
    wandb = _wandb()
    if mode not in ("offline", "online"):
        raise ValueError(f"--mode {mode!r}: expected offline or online")
    target, directory = Path(target), Path(directory)
    entries, suite_hacks = find_runs(target)
    group = target.name
    directory.mkdir(parents=True, exist_ok=True)
    try:
        for i, entry in enumerate(entries):
            if on_run:
                on_run(i, len(entries), entry.name)
            record = rundir.RunDir(entry.run_dir).read_config() or {}
            run_id = record.get("run_id", entry.run_dir.name)
            config = {**record.get("config", {}), "arm": entry.arm, "seed": entry.seed, "run_id": run_id,
                      **{f"hack/{h}": h in entry.hacks for h in suite_hacks}}
            run = wandb.init(project=project, entity=entity, mode=mode, dir=str(directory), id=f"{group}-{run_id}",
                             name=entry.name, group=group, job_type=entry.arm, config=config, resume="allow",
                             settings=wandb.Settings(silent=True, console="off"))
            rows = history(entry.run_dir)
            for step, values in rows.items():
                run.log(values, step=step)
            finals = {key.replace("metrics/", "final/", 1): values[key] for values in rows.values() for key in values
                      if key.startswith("metrics/")}
            status = rundir.RunDir(entry.run_dir).read_status().get("status", "unknown")
            run.summary.update({**finals, "status": status})
            run.finish()
    finally:
        # Waits for W&B's service to finish writing (its own doc) before the files are read or synced: a run
        # file read right after `finish` alone once lacked its run record (two test processes busy; not
        # reproduced alone or under CPU load).
        wandb.teardown()
    return {"runs": len(entries), "directory": str(directory.resolve()), "mode": mode, "project": project}
