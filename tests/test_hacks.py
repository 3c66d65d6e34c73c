import math
from pathlib import Path

import pytest
import torch

from ganbench.config import ConfigError, TrainConfig
from ganbench.hacks import HACKS, PRESETS, Hack, compose, register_hack, resolve
from ganbench.data.sampler import load_images
from ganbench.training.single import GanTrainer

from conftest import tiny


def test_registry_is_large_enough_and_cited():
    assert len(HACKS) >= 16
    for hack in HACKS.values():
        assert hack.source.strip() and hack.summary.strip(), hack.name


@pytest.mark.parametrize("name", sorted(HACKS))
def test_each_hack_changes_a_knob_of_vanilla(name):
    off, on = TrainConfig(), compose([name])
    changed = {k for k, v in on.to_dict().items() if off.to_dict()[k] != v}
    assert changed, f"hack {name} changes nothing relative to vanilla"
    assert changed <= set(HACKS[name].sets)


@pytest.mark.parametrize("name", sorted(HACKS))
def test_two_steps_with_each_hack_stay_finite(name):
    cfg = compose([name], tiny(steps=2))
    trainer = GanTrainer(cfg, load_images(cfg).images, torch.device("cpu"))
    for step in range(1, cfg.steps + 1):
        stats = trainer.step(step)[0].tolist()
        assert all(math.isfinite(v) for v in stats), (name, stats)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_resolve(preset):
    cfg, names = resolve(preset)
    assert names == PRESETS[preset]
    assert cfg == compose(names)


def test_dcgan_preset_is_the_radford_recipe():
    cfg, _ = resolve("dcgan")
    assert (cfg.sampling, cfg.d_activation, cfg.g_batch_norm, cfg.d_batch_norm, cfg.init, cfg.beta1,
            cfg.output_activation, cfg.g_fc_hidden, cfg.d_fc_hidden) == (
        "strided", "leaky_relu", True, True, "normal_002", 0.5, "tanh", 0, 0)


def test_precedence_preset_base_hacks_overrides():
    cfg, names = resolve("dcgan", ["label_smoothing"], overrides={"beta1": 0.7}, base={"label_smoothing": 0.3,
                                                                                         "steps": 9})
    assert names[-1] == "label_smoothing"
    assert cfg.label_smoothing == 0.1  # the hack wins over the base
    assert cfg.steps == 9 and cfg.beta1 == 0.7  # base survives where no hack speaks; overrides win


def test_conflicting_hacks_are_refused():
    register_hack(Hack("test_slow_d", "test only", "this test", {"lr_d": 5e-5}))
    try:
        with pytest.raises(ConfigError, match="'ttur' and 'test_slow_d' both set 'lr_d'"):
            compose(["ttur", "test_slow_d"])
    finally:
        HACKS.unregister("test_slow_d")


@pytest.mark.parametrize(
    "hack, fragment",
    [
        (Hack("strided_conv", "dup", "x", {"sampling": "strided"}), "already registered"),
        (Hack("new_one", "x", "x", {"lr_dd": 1.0}), "did you mean 'lr_d'"),
        (Hack("new_one", "x", "  ", {"lr_d": 1.0}), "needs a non-empty source"),
        (Hack("new_one", "x", "x", {"kernel_size": 7}), "expected one of [4, 5]"),
        (Hack("new one", "x", "x", {"lr_d": 1.0}), "identifier"),
    ],
)
def test_registration_checks(hack, fragment):
    with pytest.raises(ConfigError) as err:
        register_hack(hack)
    assert fragment in str(err.value)
    assert "new_one" not in HACKS


def test_unknown_hack_suggests():
    with pytest.raises(ConfigError, match="did you mean 'noisy_labels'"):
        compose(["noisy_label"])


def test_ttur_means_what_its_citation_means_and_the_seed_keeps_its_own():
    from ganbench.hacks import HACKS

    ttur, seed = HACKS["ttur"].sets, HACKS["ttur_seed000"].sets
    assert (ttur["lr_d"], ttur["lr_g"]) == (4e-4, 1e-4) and "Heusel" in HACKS["ttur"].source
    assert (seed["lr_d"], seed["lr_g"]) == (1e-4, 3e-4) and "000" in HACKS["ttur_seed000"].source
    text = (Path(__file__).resolve().parents[1] / "suites" / "seeds" / "seed000_zalando_dcgan.yaml").read_text()
    assert "ttur_seed000" in text
