"""The run-directory contract: lock, identity, tolerant logs, durable writes, and causes that survive."""

from __future__ import annotations

import errno
import json
import os

import pytest
import torch
from conftest import crash_at, tiny

from ganbench import rundir
from ganbench.execution.jobs import Placement, RunState
from ganbench.execution.local import record_outcome
from ganbench.execution.worker import outcome_of
from ganbench.rundir import ConfigMismatch, CorruptLineWarning, RunDir, RunLocked
from ganbench.study.suite import Run
from ganbench.training.loop import train


def stats_of(path):
    return [{k: v for k, v in r.items() if k != "step_time_s"} for r in rundir.read_jsonl(path / "stats.jsonl")]


def test_second_writer_is_refused_and_told_who_holds_the_run(tmp_path):
    holder = RunDir(tmp_path)
    holder.acquire("training")
    try:
        with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
            RunDir(tmp_path).acquire()
        with pytest.raises(RunLocked):
            train(tiny(), tmp_path)
        run = Run("abc", "arm", 0, tiny(), (), "vanilla")
        assert outcome_of(run, str(tmp_path), Placement("cpu", 1), None)["status"] == "busy"
    finally:
        holder.release()
    assert train(tiny(), tmp_path)["status"] == "completed"  # free again once released


def test_other_config_in_a_finished_run_directory_is_refused_with_the_differences(tmp_path):
    train(tiny(lr_d=2e-4), tmp_path)
    with pytest.raises(ConfigMismatch, match=r"lr_d: 0\.0002 here, 0\.001 asked") as err:
        train(tiny(lr_d=1e-3), tmp_path)
    assert "--fresh" in str(err.value)
    status = train(tiny(lr_d=1e-3), tmp_path, fresh=True)
    assert status["status"] == "completed"
    assert rundir.read_json(tmp_path / "config.json")["config"]["lr_d"] == 1e-3


def test_other_config_never_resumes_an_interrupted_run(tmp_path):
    cfg = tiny(steps=8, checkpoint_every=4)

    with pytest.raises(RuntimeError):
        train(cfg, tmp_path, progress=crash_at(6))
    with pytest.raises(ConfigMismatch, match="lr_g"):
        train(cfg.replace(lr_g=5e-4), tmp_path)
    assert rundir.read_json(tmp_path / "config.json")["config"]["lr_g"] == 2e-4  # untouched
    assert train(cfg, tmp_path)["resumed_from"] == 4


def test_execution_knobs_are_not_identity(tmp_path):
    train(tiny(threads=1), tmp_path)
    assert train(tiny(threads=2), tmp_path)["status"] == "completed"  # finished: returned as it is


def test_corrupt_jsonl_line_is_reported_and_keeps_every_later_row(tmp_path):
    path = tmp_path / "stats.jsonl"
    path.write_text('{"step": 2, "x": 1}\n{"step": 4, "x": GARBAGE\n{"step": 6, "x": 3}\n{"step": 8, "x"')
    with pytest.warns(CorruptLineWarning, match=r"stats\.jsonl:2"):
        rows = rundir.read_jsonl(path)
    assert [r["step"] for r in rows] == [2, 6]  # the torn last line (no newline) is dropped silently
    rundir.truncate_jsonl(path, 4)  # a resume from step 4 keeps the bad line as evidence, drops step 6
    assert path.read_text().splitlines() == ['{"step": 2, "x": 1}', '{"step": 4, "x": GARBAGE']


@pytest.mark.integration
def test_resume_keeps_rows_after_a_corrupt_line(tmp_path):
    cfg = tiny(steps=12, checkpoint_every=8)
    train(cfg, tmp_path / "whole")

    broken = tmp_path / "broken"
    with pytest.raises(RuntimeError):
        train(cfg, broken, progress=crash_at(10))
    lines = (broken / "stats.jsonl").read_text().splitlines()
    lines[0] = lines[0][:-5] + "#####"  # step 2's row damaged on disk
    (broken / "stats.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.warns(CorruptLineWarning):
        assert train(cfg, broken)["status"] == "completed"
        kept = stats_of(broken)
    assert kept == stats_of(tmp_path / "whole")[1:]  # steps 4…12: nothing after the bad line was lost


def test_corrupt_status_json_resumes_from_the_checkpoint_and_says_so(tmp_path):
    cfg = tiny(steps=8, checkpoint_every=4)
    train(cfg, tmp_path / "whole")

    run = tmp_path / "run"
    with pytest.raises(RuntimeError):
        train(cfg, run, progress=crash_at(6))
    (run / "status.json").write_text('{"status": "runn')
    assert RunDir(run).read_status()["status"] == "failed"  # unreadable = unfinished, never a crash
    status = train(cfg, run)
    assert status["status"] == "completed" and status["resumed_from"] == 4
    assert any("status.json is unreadable" in w for w in status["warnings"])
    assert stats_of(run) == stats_of(tmp_path / "whole")


def test_truncated_checkpoint_is_moved_aside_and_the_run_starts_over(tmp_path):
    cfg = tiny(steps=8, checkpoint_every=4)
    train(cfg, tmp_path / "whole")

    run = tmp_path / "run"
    with pytest.raises(RuntimeError):
        train(cfg, run, progress=crash_at(6))
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    status = train(cfg, run)
    assert status["status"] == "completed" and "resumed_from" not in status
    assert any("checkpoint.pt was unreadable" in w and "checkpoint.pt.corrupt" in w for w in status["warnings"])
    assert (run / "checkpoint.pt.corrupt").exists()
    assert stats_of(run) == stats_of(tmp_path / "whole")


def test_disk_full_reaches_the_driver_with_its_cause(tmp_path, monkeypatch):
    def full(path, row):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rundir, "append_jsonl", full)
    run = Run("abc", "arm", 0, tiny(), (), "vanilla")
    outcome = outcome_of(run, str(tmp_path), Placement("cpu", 1), None)
    assert outcome["status"] == "failed" and "No space left on device" in outcome["error"]
    state = RunState(run, tmp_path)
    record_outcome(state, outcome)
    assert state.status == "failed" and "No space left on device" in state.error
    assert "No space left on device" in RunDir(tmp_path).read_status()["error"]


def test_atomic_writes_fsync_the_file_and_its_directory(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
                        or real_fsync(fd))
    rundir.write_json(tmp_path / "status.json", {"status": "running"})
    assert any(".status.json." in p for p in synced) and str(tmp_path) in synced
    assert json.loads((tmp_path / "status.json").read_text()) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temp file left


def test_resume_keeps_the_thread_count_the_run_started_with(tmp_path):
    cfg = tiny(steps=8, checkpoint_every=4, threads=1)

    with pytest.raises(RuntimeError):
        train(cfg, tmp_path, progress=crash_at(6))
    train(cfg.replace(threads=2), tmp_path)
    assert rundir.read_json(tmp_path / "config.json")["execution"]["threads"] == 1
    assert torch.get_num_threads() == 1
