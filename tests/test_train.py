import json

import pytest
import torch

from ganbench import rundir
from ganbench.hacks import compose
from ganbench.training import update
from ganbench.training.loop import train
from ganbench.training.single import GanTrainer

from conftest import tiny


def losses(run_dir):
    return [(r["step"], r["loss_d"], r["loss_g"], r["d_real"]) for r in rundir.read_jsonl(run_dir / "stats.jsonl")]


def test_run_directory_layout(tmp_path):
    cfg = tiny(steps=6, sample_every=3, checkpoint_every=3)
    status = train(cfg, tmp_path, preset="vanilla", hacks=["kernel_4"])
    assert status["status"] == "completed" and status["step"] == 6
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "completed"
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["config"] == cfg.to_dict() and saved["hacks"] == ["kernel_4"]
    assert {"versions", "git_commit", "machine"} <= set(saved["provenance"])
    rows = rundir.read_jsonl(tmp_path / "stats.jsonl")
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert {"loss_d", "loss_g", "d_real", "d_fake_before", "d_fake_after", "grad_norm_d", "grad_norm_g",
            "step_time_s"} <= set(rows[0])
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_000003.png", "step_000006.png"]


def test_same_seed_same_losses_other_seed_different(tmp_path):
    cfg = compose(["batch_norm", "noisy_labels", "d_dropout", "gaussian_latent"], tiny(steps=6))
    train(cfg, tmp_path / "a")
    train(cfg, tmp_path / "b")
    train(cfg.replace(seed=1), tmp_path / "c")
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    assert losses(tmp_path / "a") != losses(tmp_path / "c")


def test_nan_is_recorded_as_diverged(tmp_path, monkeypatch):
    real_step = GanTrainer.step

    def poisoned(self, step):
        out = real_step(self, step)
        return out * float("nan") if step == 3 else out

    monkeypatch.setattr(GanTrainer, "step", poisoned)
    status = train(tiny(steps=8), tmp_path)
    assert status["status"] == "diverged"
    assert "non-finite loss_d" in status["error"] and status["step"] == 4
    assert rundir.read_json(tmp_path / "status.json")["status"] == "diverged"
    assert rundir.read_jsonl(tmp_path / "stats.jsonl")[-1]["loss_d"] is None


def test_crash_then_resume_equals_uninterrupted_run(tmp_path):
    cfg = compose(["batch_norm", "noisy_labels", "d_dropout", "lr_decay"], tiny(steps=8, checkpoint_every=4))
    train(cfg, tmp_path / "whole")

    def crash(step, total, row):
        if step == 6:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, tmp_path / "broken", progress=crash)
    assert rundir.read_json(tmp_path / "broken" / "status.json")["status"] == "failed"
    assert [r["step"] for r in rundir.read_jsonl(tmp_path / "broken" / "stats.jsonl")] == [2, 4, 6]
    status = train(cfg, tmp_path / "broken")
    assert status["status"] == "completed" and status["resumed_from"] == 4
    assert losses(tmp_path / "broken") == losses(tmp_path / "whole")
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["net_g"]
    b = torch.load(tmp_path / "broken" / "checkpoint.pt", weights_only=True)["net_g"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_completed_run_is_not_retrained(tmp_path):
    cfg = tiny(steps=2)
    first = train(cfg, tmp_path)
    assert train(cfg, tmp_path)["finished_at"] == first["finished_at"]


def test_labels_smoothing_jitter_and_flips():
    cfg, gen, cpu = tiny(label_smoothing=0.3, real_label_jitter=0.5), torch.Generator().manual_seed(0), torch.device("cpu")
    real, fake = update.draw_targets(cfg, 4000, gen, cpu)
    assert 0.7 <= real.min() and real.max() < 1.2 and abs(real.mean().item() - 0.95) < 0.01  # seed 004's range
    assert torch.all(fake == 0)
    real, fake = update.draw_targets(tiny(label_flip_p=0.05), 20000, gen, cpu)
    assert abs((real == 0).float().mean().item() - 0.05) < 0.01 and abs((fake == 1).float().mean().item() - 0.05) < 0.01


def test_lr_decay_follows_keras_formula():
    trainer = GanTrainer(tiny(lr_decay=0.01), torch.zeros(16, 1, 28, 28, dtype=torch.uint8), torch.device("cpu"))
    trainer.step(101)  # iteration 101 uses lr / (1 + 0.01 · 100)
    assert trainer.learning_rates(0) == (pytest.approx(2e-4 / 2), pytest.approx(2e-4 / 2))
    lr = trainer.opt_d.param_groups[0]["lr"]  # a float64 tensor updated in place, never a Python float
    assert torch.is_tensor(lr) and lr.dtype == torch.float64 and lr.item() == 2e-4 * (1.0 / (1.0 + 0.01 * 100))


def test_g_latents_fresh_draws_new_z_for_the_g_step(monkeypatch):
    from ganbench.data.sampler import load_images

    calls = {}
    for mode in ("reuse", "fresh"):
        cfg = tiny(g_latents=mode)
        trainer = GanTrainer(cfg, load_images(cfg).images, torch.device("cpu"))
        forwards = []
        trainer.net_g.register_forward_hook(lambda *a: forwards.append(1))
        trainer.step(1)
        calls[mode] = len(forwards)
    assert calls == {"reuse": 1, "fresh": 2}  # one G forward for D's fakes, plus one for G's own z
