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
        ({"steps": "many"}, "expected a whole number (int)"),
        ({"lr_d": float("inf")}, "expected a finite number"),  # Y10b: `lr_d: 1e309` in a suite is inf
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
    with pytest.raises(ConfigError, match=r"expected true or false \(bool\)"):
        parse_value("g_batch_norm", "maybe")


def test_derived_values():
    assert TrainConfig().pixel_range == (0.0, 1.0)
    assert TrainConfig(output_activation="tanh").pixel_range == (-1.0, 1.0)
    assert TrainConfig(output_activation="tanh", data_range="0_1").pixel_range == (0.0, 1.0)
    assert TrainConfig().base_widths == (32, 32)
    assert TrainConfig(arch="radford", image_size=64).base_widths == (64, 64)


def test_every_knob_has_exactly_one_category():
    from ganbench.config import CATEGORIES, EXECUTION_KNOBS, IDENTITY_KNOBS, KNOB_CATEGORIES, KNOBS, STRUCTURE_KNOBS

    assert set(KNOB_CATEGORIES) == set(KNOBS) and set(KNOB_CATEGORIES.values()) <= set(CATEGORIES)
    assert set(EXECUTION_KNOBS) == {"device", "threads", "data_memory_mb"}
    assert set(IDENTITY_KNOBS) | set(EXECUTION_KNOBS) == set(KNOBS) and not set(IDENTITY_KNOBS) & set(EXECUTION_KNOBS)
    assert {"arch", "batch_size", "d_steps", "precision", "d_batch", "dataset"} <= set(STRUCTURE_KNOBS)
    assert not {"seed", "lr_d", "beta1", "label_smoothing", "label_flip_p", "g_loss"} & set(STRUCTURE_KNOBS)


def _other_value(name, value):
    from ganbench.config import knob_choices

    choices = knob_choices(name)
    if choices:
        return next(c for c in choices if c != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return {"channels": 3, "image_size": None, "g_start_side": None, "sample_grid": 16}.get(name, value + 1)
    if isinstance(value, float):
        return value / 2 if value else 0.25
    return {"dataset": "fake", "metrics": "fid_fmnist", "eval_split": "train", "device": "cpu",
            "inception_weights": "w.pt"}.get(name)


def test_identity_knobs_change_the_run_id_and_execution_knobs_do_not():
    from ganbench.config import EXECUTION_KNOBS, IDENTITY_KNOBS, run_id

    base = TrainConfig()
    for name in IDENTITY_KNOBS + EXECUTION_KNOBS:
        value = _other_value(name, getattr(base, name))
        if value is None:
            continue
        extra = {"image_size": 32} if name == "arch" else {}  # radford has no 28-px net
        changed = base.replace(**{name: value, **extra})
        assert (run_id(changed) != run_id(base)) == (name in IDENTITY_KNOBS), name
