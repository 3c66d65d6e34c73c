import dataclasses

import pytest

from ganbench.config import KNOBS, ConfigError, TrainConfig, knob_docs, parse_assignments, parse_value


def test_defaults_are_valid_and_frozen():
    cfg = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 3  # type: ignore[misc]


def test_every_knob_documents_its_unit_and_off_value():
    docs = knob_docs()
    assert set(docs) == set(KNOBS)
    for name, doc in docs.items():
        assert "off" in doc, f"{name}'s comment does not state its off value: {doc!r}"


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"batch_sise": 3}, "did you mean 'batch_size'"),
        ({"kernel_size": 3}, "expected one of [4, 5]"),
        ({"latent_dist": "gausian"}, "did you mean 'gaussian'"),
        ({"steps": -5}, "'steps': must be >= 1"),
        ({"label_flip_p": 1.5}, "'label_flip_p': must be in [0, 1)"),
        ({"image_size": 64}, "one of [28] for arch 'dcgan28'"),
        ({"device": "tpu"}, "auto, cpu, cuda or cuda:N"),
        ({"steps": "many"}, "expected a int"),
        ({"sample_grid": 10}, "square number"),
    ],
)
def test_bad_overrides_name_the_knob(change, fragment):
    with pytest.raises(ConfigError) as err:
        TrainConfig().replace(**change)
    assert fragment in str(err.value)


def test_parse_values_from_strings():
    assert parse_assignments(["g_batch_norm=true", "lr_d=1e-4", "kernel_size=4", "latent_dist=gaussian"]) == {
        "g_batch_norm": True, "lr_d": 1e-4, "kernel_size": 4, "latent_dist": "gaussian"}
    assert parse_value("d_dropout", "0") == 0.0
    with pytest.raises(ConfigError, match="knob=value"):
        parse_assignments(["steps"])
    with pytest.raises(ConfigError, match="expected a bool"):
        parse_value("g_batch_norm", "maybe")


def test_derived_values():
    assert TrainConfig().pixel_range == (0.0, 1.0)
    assert TrainConfig(output_activation="tanh").pixel_range == (-1.0, 1.0)
    assert TrainConfig(output_activation="tanh", data_range="0_1").pixel_range == (0.0, 1.0)
    assert TrainConfig().base_widths == (32, 32)
    assert TrainConfig(arch="radford", image_size=64).base_widths == (64, 64)
