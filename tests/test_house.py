"""The house rules, checked: module and function sizes, no import cycle, one declaration per concept,
and every registry tested entry by entry (timm's habit), as the hacks are in test_hacks.py."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.config import CATEGORIES, KNOB_CATEGORIES, KNOBS, NOT_FUSED, TrainConfig, range_rule
from ganbench.data.datasets import DATASETS
from ganbench.errors import ConfigError, Registry, UnknownName
from ganbench.hacks import PRESETS
from ganbench.metrics.protocols import PROTOCOLS
from ganbench.metrics.registry import (KINDS, METRICS, all_values, higher_is_better, parse_value_name, value_name,
                                       value_range)
from ganbench.study.design import DESIGNS
from ganbench.study.suite import SuiteError, load_suite

REPO = Path(__file__).resolve().parent.parent


def _house_check():
    spec = importlib.util.spec_from_file_location("house_check", REPO / "tools" / "house_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_module_over_400_lines_no_function_over_60_and_no_import_cycle():
    house = _house_check()
    assert house.long_modules(400) == []
    assert house.long_functions(60) == []
    assert house.import_cycles() == []
    assert house.folder_cycles() == []  # no floor imports upward (issue 37: metrics/ once imported training/)


def test_the_folder_check_finds_a_floor_importing_upward(tmp_path, monkeypatch):
    """Module cycles miss it: metrics/x imports training/y, training/z imports metrics/w — no module
    imports itself back, but the two folders import each other."""
    house = _house_check()
    package = tmp_path / "ganbench"
    for folder in ("metrics", "training"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "metrics" / "x.py").write_text("from ganbench.training.y import memo\n")
    (package / "metrics" / "w.py").write_text("def f():\n    return 1\n")
    (package / "training" / "y.py").write_text("memo = {}\n")
    (package / "training" / "z.py").write_text("from ganbench.metrics.w import f\n")
    monkeypatch.setattr(house, "PACKAGE", package)
    assert house.import_cycles() == []
    assert house.folder_cycles() == [["ganbench.metrics/", "ganbench.training/"]]


def test_the_cycle_finder_finds_a_lazy_import_cycle(tmp_path, monkeypatch):
    """The checker itself: a cycle through an import inside a function counts (it still couples)."""
    house = _house_check()
    package = tmp_path / "ganbench"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from ganbench.b import f\n")
    (package / "b.py").write_text("def f():\n    from ganbench import a\n")
    (package / "c.py").write_text("import ganbench.a\n")
    monkeypatch.setattr(house, "PACKAGE", package)
    assert house.import_cycles() == [["ganbench.a", "ganbench.b"]]
    (package / "many.py").write_text("\n".join(f"x{i} = {i}" for i in range(401)) + "\n")
    assert house.long_modules(400) == [(401, "ganbench.many")]


def test_loading_a_suite_is_pure(tmp_path):
    """load_suite writes nothing and imports no torch; a FLOPs budget needs the planner, and says so."""
    code = ("import sys\nfrom ganbench.study.suite import load_suite\n"
            f"suite = load_suite({str(REPO / 'suites' / 'quick.yaml')!r}, {str(tmp_path / 'results')!r})\n"
            "assert len(suite.runs) == 42, len(suite.runs)\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    assert list(tmp_path.iterdir()) == []
    suite = tmp_path / "budget.yaml"
    suite.write_text("name: b\ndataset: fake\npreset: dcgan\ndesign: {type: arms}\narms: {a: {}}\n"
                     "budget: {flops: 1.0e11}\nevaluation: {metrics: none}\n")
    with pytest.raises(SuiteError, match="load_planned_suite"):
        load_suite(suite, tmp_path / "results")


# --- Registry[T] ------------------------------------------------------------------------------

def test_registry_checks_registration_and_suggests_on_lookup():
    seen = []
    things: Registry[int] = Registry("thing", "see `ganbench things`", check=lambda name, v: seen.append(v))
    things.register("alpha", 1)
    assert seen == [1] and things["alpha"] == 1 and "alpha" in things and list(things) == ["alpha"]
    with pytest.raises(ConfigError, match="already registered"):
        things.register("alpha", 2)
    with pytest.raises(ConfigError, match="non-empty"):
        things.register(" ", 3)
    with pytest.raises(UnknownName, match=r"unknown thing 'alpah' \(did you mean 'alpha'\?\); see `ganbench things`"):
        things["alpah"]
    assert things.get("beta", 7) == 7  # a Mapping: an unknown name is a KeyError too
    assert things.unregister("alpha") == 1 and len(things) == 0
    assert str(things.unknown("x")) == "unknown thing 'x'; see `ganbench things`"


# --- Knobs: each declared once ----------------------------------------------------------------

@pytest.mark.parametrize("name", KNOBS)
def test_each_knob_declares_its_category_range_and_fusion(name):
    assert KNOB_CATEGORIES[name] in CATEGORIES
    default = getattr(TrainConfig(), name)
    if name in NOT_FUSED:
        assert KNOB_CATEGORIES[name] == "structure"
    rule = range_rule(name)
    if rule is not None:  # the default ("off") value is inside the declared range
        TrainConfig().replace(**{name: default})
        assert isinstance(default, (int, float)) and not isinstance(default, bool)


def test_a_declared_range_is_enforced_with_its_rule_in_the_message():
    with pytest.raises(ConfigError, match=r"'beta1': must be in \[0, 1\)"):
        TrainConfig(beta1=1.0)
    with pytest.raises(ConfigError, match=r"'lr_d': must be > 0"):
        TrainConfig(lr_d=0.0)
    with pytest.raises(ConfigError, match=r"'g_ema': must be in \[0, 1\) \(a decay such as 0.999"):
        TrainConfig(g_ema=1.5)


def test_knobs_lists_every_knob_with_its_category_and_range():
    result = CliRunner().invoke(app, ["knobs", "--json"])
    assert result.exit_code == 0, result.output
    listed = {row["knob"]: row for row in json.loads(result.output)}
    assert list(listed) == list(KNOBS)
    for name, row in listed.items():
        assert row["category"] == KNOB_CATEGORIES[name] and row["range"] == range_rule(name)
        assert row["fuses"] == (name not in NOT_FUSED) and row["meaning"], name


# --- Every metric, dataset, design, protocol and preset ---------------------------------------

@pytest.mark.parametrize("name", sorted(METRICS))
def test_each_metric_names_its_values_by_the_one_grammar(name):
    metric = METRICS[name]
    assert name == value_name(metric.kind, metric.extractor)
    assert metric.extractor in KINDS[metric.kind].extractors
    for value, direction in metric.higher_is_better.items():
        base, extractor = parse_value_name(value)
        assert extractor == metric.extractor and value_name(base, extractor) == value
        assert higher_is_better(value) is direction
        low, high = value_range(value)
        assert low < high
    assert set(metric.higher_is_better) <= set(all_values())


@pytest.mark.parametrize("name", sorted(n for n in METRICS if METRICS[n].extractor == "fmnist"))
def test_each_fmnist_metric_is_computed_with_every_declared_value_in_range(name):
    """Real torch-fidelity (and ganbench's classifier) on 64 generated vs 64 reference images."""
    from ganbench.metrics.fidelity import evaluate
    from ganbench.metrics.reference import Reference
    from ganbench.data.datasets import fake_images

    images, _ = fake_images("train", 64, 28, 1)
    rows = evaluate(images, [name], Reference("fake", "test", 64, 28, 1), samples=64)
    values = {row["metric"]: row["value"] for row in rows}
    assert set(values) == set(METRICS[name].higher_is_better)
    for value_name_, value in values.items():
        low, high = value_range(value_name_)
        assert math.isfinite(value) and low <= value <= high, (value_name_, value)
    assert all(row["samples_generated"] == 64 and row["reference_samples"] == 64 for row in rows)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_each_dataset_is_described_and_its_network_defaults_are_valid(name):
    dataset = DATASETS[name]
    assert dataset.summary and dataset.splits
    cfg = TrainConfig().replace(dataset=name, **dataset.net_defaults)
    assert cfg.dataset == name
    with pytest.raises(ConfigError, match="has no split"):
        dataset.check_split("no-such-split")
    if dataset.net_defaults:
        assert dataset.describe_net_defaults().startswith(f"{name}: ")
    result = CliRunner().invoke(app, ["data", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and name in result.output


DESIGN_OPTIONS = {"fractional_factorial": ", resolution: 3", "arms": ""}


@pytest.mark.parametrize("kind", sorted(DESIGNS))
def test_each_design_builds_arms_from_a_suite(kind, tmp_path):
    arms = "arms: {plain: {}, smooth: {hacks: [label_smoothing]}}\n" if kind == "arms" else ""
    suite = tmp_path / "d.yaml"
    suite.write_text(f"name: d\ndataset: fake\npreset: dcgan\nhacks: [label_smoothing, noisy_labels, "
                     f"gaussian_latent]\ndesign: {{type: {kind}{DESIGN_OPTIONS.get(kind, '')}}}\n{arms}"
                     "steps: 2\nevaluation: {metrics: none}\n")
    design = load_suite(suite, tmp_path / "results").designs[0]
    names = [arm.name for arm in design.arms]
    assert design.kind == kind and names and len(set(names)) == len(names)
    assert design.reference_arm is None or design.reference_arm in names
    for arm in design.arms:
        assert set(arm.from_preset) <= set(PRESETS["dcgan"]) and not set(arm.extra) & set(PRESETS["dcgan"])
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_each_protocol_sets_real_knobs_and_names_a_registered_metric(name):
    from ganbench.checks import check_resolved

    protocol = PROTOCOLS[name]
    assert protocol.metric in METRICS and protocol.source and protocol.published
    cfg = check_resolved(TrainConfig(eval_protocol=name, **protocol.knobs))
    assert cfg.eval_protocol == name


def test_run_file_names_are_spelled_only_by_their_owners():
    """rundir.py and suitedir.py own the names of a run's and a suite's files: no other module holds
    one as a string literal (issue 37; prose in docstrings and messages is not a literal of its own)."""
    import ast

    from ganbench import rundir, suitedir

    names = {rundir.CONFIG, rundir.STATS, rundir.METRICS, rundir.CHECKPOINT, rundir.STATUS, suitedir.MANIFEST,
             suitedir.BUDGET, suitedir.COMPUTE, suitedir.PLAN}
    found = []
    for path in sorted((REPO / "ganbench").rglob("*.py")):
        if path.name in ("rundir.py", "suitedir.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert found == []


def test_the_cadence_counts_what_it_says_is_due():
    """One rule for "every N steps and the last" (`cadence.py`): the counts and lists the plan and the
    disk and cost estimates use equal the steps the training loop acts at."""
    from ganbench.cadence import count_due, due, steps_due

    for last in range(1, 40):
        for every in range(0, 12):
            acted = [step for step in range(1, last + 1) if due(step, every, last)]
            assert steps_due(every, last) == acted
            for after in range(0, last + 2):
                assert count_due(every, last, after) == sum(1 for step in acted if step > after), (every, last, after)
    assert count_due(7, 10**9) == 10**9 // 7 + 1 and count_due(0, 10**9) == 1
