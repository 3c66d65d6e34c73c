"""The modern stabilisers and the ganhacks tips added beside them: every registered hack resumes
exactly and shows in config.json; each stabiliser does what its paper says."""

import json
from pathlib import Path
import math

import pytest
import torch

from ganbench import rundir
from ganbench.analysis.failures import d_loss_floor
from ganbench.config import TrainConfig, fusion_key, trains_alone
from ganbench.data.sampler import load_images
from ganbench.hacks import HACKS, PRESETS, compose, resolve
from ganbench.models import build_models
from ganbench.training import stabilisers, update
from ganbench.training.loop import train
from ganbench.training.single import GanTrainer

from conftest import crash_at, tiny


def checkpoint_tensors(state, prefix=""):
    """Every tensor of a checkpoint, flattened to name → tensor."""
    out = {}
    for key, value in state.items():
        if torch.is_tensor(value):
            out[prefix + key] = value
        elif isinstance(value, dict):
            out.update(checkpoint_tensors(value, f"{prefix}{key}."))
    return out


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(HACKS))
def test_each_hack_shows_in_config_json_and_resumes_bit_identically_on_cpu(tmp_path, name):
    """The hack's knobs are in config.json. Crash after the step-2 checkpoint, resume: stats and
    every tensor of the final checkpoint (EMA weights, replay buffer, spectral-norm vectors, Adam
    moments, RNG states) equal an uninterrupted run's."""
    cfg = compose([name], tiny(steps=4, log_every=1, checkpoint_every=2))
    train(cfg, tmp_path / "whole", hacks=[name])
    saved = json.loads((tmp_path / "whole" / "config.json").read_text())
    sets, defaults = HACKS[name].sets, TrainConfig().to_dict()
    assert saved["hacks"] == [name] and all(saved["config"][knob] == value for knob, value in sets.items())
    assert any(defaults[knob] != value for knob, value in sets.items())  # the hack changed something
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, tmp_path / "broken", hacks=[name], progress=crash_at(3))
    status = train(cfg, tmp_path / "broken", hacks=[name])
    assert status["status"] == "completed" and status["resumed_from"] == 2
    rows = [rundir.read_jsonl(tmp_path / d / "stats.jsonl") for d in ("whole", "broken")]
    strip = [[{k: v for k, v in r.items() if k != "step_time_s"} for r in run] for run in rows]
    assert strip[0] == strip[1]
    a, b = (checkpoint_tensors(torch.load(tmp_path / d / "checkpoint.pt", weights_only=True))
            for d in ("whole", "broken"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


def test_modern_preset_is_dcgan_plus_the_three_stabilisers():
    cfg, names = resolve("modern")
    assert names == PRESETS["dcgan"] + ("spectral_norm", "hinge_loss", "g_ema")
    assert (cfg.spectral_norm, cfg.d_loss, cfg.g_ema, cfg.sampling, cfg.beta1) == (True, "hinge", 0.999, "strided", 0.5)


def test_new_knobs_keep_old_run_ids_and_declare_fusion():
    """Off by default (existing run ids unchanged); a run using a stabiliser the fused trainer
    lacks trains alone; soft fake labels only change numbers and still fuse; G's dropout fuses
    (each run's masks from its own stream) in a group of its own structure."""
    assert trains_alone(TrainConfig()) == ()
    for name in ("spectral_norm", "hinge_loss", "wgan_gp", "r1_penalty", "g_ema", "instance_noise", "diffaugment",
                 "minibatch_std", "replay_buffer", "ls_loss"):
        assert fusion_key(compose([name])) is None, name
    assert fusion_key(compose(["soft_fake_labels"])) == fusion_key(TrainConfig())
    assert fusion_key(compose(["g_dropout"])) not in (None, fusion_key(TrainConfig()))


def test_losses_follow_their_papers():
    real, fake = torch.tensor([2.0, -0.5]), torch.tensor([0.5, -3.0])
    ones, zeros = torch.ones(2), torch.zeros(2)
    hinge = update.d_loss(real, fake, ones, zeros, "hinge")
    assert hinge.item() == pytest.approx((0 + 1.5) / 2 + (1.5 + 0) / 2)
    assert update.d_loss(real, fake, ones, zeros, "wasserstein").item() == pytest.approx(-1.25 - 0.75)
    ls = update.d_loss(real, fake, ones, zeros, "least_squares").item()
    assert ls == pytest.approx(0.5 * (1 + 2.25) / 2 + 0.5 * (0.25 + 9) / 2)
    assert update.g_loss(fake, "minimax", "hinge").item() == pytest.approx(1.25)
    assert update.g_loss(fake, "nonsaturating", "least_squares").item() == pytest.approx(0.5 * (0.25 + 16) / 2)


def test_soft_fake_labels_draw_fakes_from_zero_to_point_three():
    cfg = compose(["soft_fake_labels"])
    _, fake = update.draw_targets(cfg, 10_000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert 0 <= fake.min() and fake.max() < 0.3 and fake.mean().item() == pytest.approx(0.15, abs=0.01)
    assert d_loss_floor(TrainConfig(fake_label_jitter=0.3)) == pytest.approx(-(0.15 * math.log(0.15) + 0.85 * math.log(0.85)))


def test_gradient_penalties_match_hand_computed_gradients():
    """D(x) = Σ w·x has ∇D = w everywhere: GP = λ(‖w‖ − 1)², R1 = γ/2·‖w‖²."""
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0, 2.0, 2.0, 0.0]]))  # ‖w‖ = 3
    x = torch.rand(5, 1, 2, 2)
    cfg = TrainConfig(gp_weight=10.0, r1_gamma=4.0)
    gp = stabilisers.gradient_penalty(cfg, net, x, torch.rand(5, 1, 2, 2), torch.Generator().manual_seed(0),
                                      torch.autocast("cpu", enabled=False))
    assert gp.item() == pytest.approx(10 * (3 - 1) ** 2)
    assert stabilisers.r1_penalty(cfg, net, x, torch.autocast("cpu", enabled=False)).item() == pytest.approx(2 * 9)


def test_spectral_norm_makes_each_d_layer_1_lipschitz():
    cfg = compose(["spectral_norm"], tiny())
    torch.manual_seed(0)
    _, net_d = build_models(cfg)
    for _ in range(30):  # power iterations converge in training forwards
        net_d(torch.rand(4, 1, 28, 28))
    linear = [m for m in net_d.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert torch.linalg.matrix_norm(linear.weight, ord=2).item() == pytest.approx(1.0, abs=1e-3)


def test_minibatch_std_adds_one_map_that_sees_the_batch():
    cfg = compose(["minibatch_std"], tiny())
    torch.manual_seed(0)
    _, net_d = build_models(cfg)
    same = torch.rand(1, 1, 28, 28).repeat(4, 1, 1, 1)
    varied = same.clone()
    varied[1:] = torch.rand(3, 1, 28, 28)
    assert not torch.allclose(net_d(same)[0], net_d(varied)[0])  # image 0 alike; its batch differs


def test_g_ema_averages_weights_and_makes_the_samples():
    cfg = compose(["g_ema"], tiny(steps=3))
    trainer = GanTrainer(cfg, load_images(cfg).images, torch.device("cpu"))
    before = {k: v.clone() for k, v in trainer.ema.net.state_dict().items()}
    weights = [p.detach().clone() for p in trainer.net_g.parameters()]
    trainer.step(1)
    decay = 2 / 11  # warm-up at step 1: min(0.999, (1 + 1) / (10 + 1))
    for avg, old, new in zip(trainer.ema.net.parameters(), weights, trainer.net_g.parameters()):
        assert torch.allclose(avg, decay * old + (1 - decay) * new.detach(), atol=1e-6)
    assert trainer.ema.decay_at(10_000) == 0.999 and trainer.ema.decay_at(100) == pytest.approx(101 / 110)
    assert trainer.generator() is trainer.ema.net and not trainer.ema.net.training
    assert any(not torch.equal(before[k], v) for k, v in trainer.ema.net.state_dict().items())


def test_replay_buffer_mixes_half_old_fakes_once_it_holds_them():
    buffer, gen = stabilisers.ReplayBuffer(6, torch.device("cpu")), torch.Generator().manual_seed(0)
    first = buffer.mix(torch.zeros(4, 1, 2, 2), gen)
    assert torch.equal(first, torch.zeros(4, 1, 2, 2)) and buffer.filled == 2  # too few stored: all fresh
    mixed = buffer.mix(torch.ones(4, 1, 2, 2), gen)
    assert torch.equal(mixed[:2], torch.zeros(2, 1, 2, 2)) and torch.equal(mixed[2:], torch.ones(2, 1, 2, 2))
    buffer.mix(torch.full((4, 1, 2, 2), 2.0), gen)
    buffer.mix(torch.full((4, 1, 2, 2), 3.0), gen)
    assert buffer.filled == 6 and (buffer.images == 3).sum() > 0  # full: new fakes overwrite old ones


def test_instance_noise_anneals_to_zero_and_diffaugment_keeps_gradients():
    cfg = compose(["instance_noise"], tiny(steps=11))
    assert [stabilisers.instance_noise_std(cfg, s) for s in (1, 6, 11)] == pytest.approx([0.1, 0.05, 0.0])
    x = torch.rand(8, 3, 32, 32, requires_grad=True)
    out = stabilisers.diff_augment(x, "color,translation,cutout", torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.equal(out, x)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert ((out == 0).flatten(1).float().mean(1) >= 0.2).all()  # cutout blanks a quarter of each image


@pytest.mark.integration
def test_modern_suite_plans_and_two_of_its_arms_train_and_report(tmp_path):
    """suites/modern.yaml as shipped plans; two of its arms (the modern recipe and WGAN-GP added
    to dcgan), shortened, train on real Fashion-MNIST with real metrics and are reported."""
    import yaml
    from typer.testing import CliRunner

    from ganbench.cli import app

    shipped = Path(__file__).resolve().parents[1] / "suites" / "modern.yaml"
    result = CliRunner().invoke(app, ["run", str(shipped), "--dry-run", "--results-root", str(tmp_path / "dry")])
    assert result.exit_code == 0, result.output
    assert "loo:all" in result.output and "aoi:+wgan_gp" in result.output
    suite = yaml.safe_load(shipped.read_text())
    suite.update(seeds=1, steps=6, base={"log_every": 3, "sample_every": 0, "checkpoint_every": 3},
                 evaluation={"every": 0, "samples": 300, "reference_samples": 300, "metrics": "fid_fmnist"},
                 analysis={"primary": "fid_fmnist", "verdicts": ["fid_fmnist"]})
    short = tmp_path / "modern.yaml"
    short.write_text(yaml.safe_dump(suite))
    root = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(short), "--only", "loo:all", "--only", "aoi:+wgan_gp", "--device", "cpu",
                                      "--workers", "1", "--results-root", str(root)])
    assert result.exit_code == 0, result.output
    statuses = [json.loads(p.read_text()) for p in (root / "modern" / "runs").glob("*/status.json")]
    assert sorted(s["status"] for s in statuses) == ["completed", "completed"]
    assert all(s["metrics"]["fid_fmnist"] > 0 for s in statuses)
    result = CliRunner().invoke(app, ["report", str(short), "--results-root", str(root), "--out", str(tmp_path / "rep"),
                                      "--format", "md,csv"])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "rep" / "README.md").read_text()
    assert "loo:all" in text and "aoi:+wgan_gp" in text
