"""`ganbench wandb`: runs exported to W&B in offline mode, read back from W&B's own run files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from ganbench import rundir

wandb = pytest.importorskip("wandb")


def records(path: Path) -> list:
    """Every protobuf record of a W&B run file: W&B's header (':W&B', magic, version: 7 bytes), then
    LevelDB's log format — 32 KiB blocks of chunks (crc32, length, type: full/first/middle/last)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, block, pending, out = path.read_bytes(), 7, 32768, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pos += 7
        if kind == 0 and length == 0:
            pos += block - pos % block
            continue
        pending += data[pos:pos + length]
        pos += length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def key(item) -> str:
    """An item's key: W&B stores keys with '/' as nested keys."""
    return item.key or "/".join(item.nested_key)


@pytest.mark.integration
def test_runs_export_to_wandb_offline_with_their_history_config_and_summary(tmp_path):
    from typer.testing import CliRunner

    from ganbench.cli import app

    suite = tmp_path / "w.yaml"
    suite.write_text("name: w\ndataset: fake\npreset: dcgan\narms: {a: {}, b: {hacks: [label_smoothing]}}\n"
                     "reference: a\nseeds: 1\nsteps: 4\nbase: {batch_size: 8, log_every: 2, sample_every: 0, "
                     "checkpoint_every: 0}\nevaluation: {every: 2, samples: 64, reference_samples: 64, "
                     "metrics: fid_fmnist}\n")
    runner = CliRunner()
    root = tmp_path / "results"
    assert runner.invoke(app, ["run", str(suite), "--device", "cpu", "--workers", "1", "--results-root",
                               str(root)]).exit_code == 0
    before = sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*"))
    result = runner.invoke(app, ["wandb", str(suite), "--results-root", str(root), "--dir", str(tmp_path / "wb"),
                                 "--project", "ganbench-test"])
    assert result.exit_code == 0, result.output
    assert sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*")) == before  # the results are only read
    files = sorted((tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2
    seen = {}
    for path in files:
        recs = records(path)
        run = next(r.run for r in recs if r.WhichOneof("record_type") == "run")
        rows = [{key(i): json.loads(i.value_json) for i in r.history.item} for r in recs
                if r.WhichOneof("record_type") == "history"]
        summary = {key(i): json.loads(i.value_json) for r in recs if r.WhichOneof("record_type") == "summary"
                   for i in r.summary.update}
        seen[run.display_name.split("/")[0]] = (run, rows, summary)
    assert set(seen) == {"a", "b"}
    run, rows, summary = seen["b"]
    assert run.run_group == "w" and run.job_type == "b" and run.project == "ganbench-test" and run.run_id.startswith("w-")
    config = {key(i): json.loads(i.value_json) for i in run.config.update}
    assert config["arm"] == "b" and config["hack/label_smoothing"] is True and config["label_smoothing"] > 0
    (run_dir,) = [p for p in (root / "w" / "runs").iterdir() if p.name == config["run_id"]]
    stats = rundir.read_jsonl(run_dir / "stats.jsonl")
    assert [r["_step"] for r in rows] == [2, 4]
    assert [r["train/loss_d"] for r in rows] == pytest.approx([s["loss_d"] for s in stats])
    fid_rows = [r for r in rundir.read_jsonl(run_dir / "metrics.jsonl") if r["metric"] == "fid_fmnist"]
    fid = [sum(r["value"] for r in fid_rows if r["step"] == s) / sum(r["step"] == s for r in fid_rows) for s in (2, 4)]
    assert [r["metrics/fid_fmnist"] for r in rows] == pytest.approx(fid)  # the final step: mean of its 3 draws
    assert summary["final/fid_fmnist"] == pytest.approx(fid[-1]) and summary["status"] == "completed"
