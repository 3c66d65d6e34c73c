import json
import textwrap

import pytest

from ganbench.config import TrainConfig
from ganbench.study.design import fractional_factorial, full_factorial
from ganbench.hacks import PRESETS
from ganbench.execution.plan import load_planned_suite
from ganbench.study.suite import SuiteError, load_suite, run_id

from conftest import cli_process


def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


BASE = """
    name: t
    dataset: fake
    preset: dcgan
    hacks: [batch_norm, leaky_relu, gaussian_latent]
    design: leave_one_out
    seeds: 2
    steps: 10
"""


def test_leave_one_out_expands_arms_and_seeds(tmp_path):
    suite = load_suite(write(tmp_path, BASE), tmp_path / "results")
    assert [a.name for a in suite.designs[0].arms] == ["all", "-batch_norm", "-leaky_relu", "-gaussian_latent"]
    assert suite.designs[0].reference_arm == "all" and len(suite.runs) == 8
    by_arm = {r.arm: r for r in suite.runs if r.seed == 0}
    assert by_arm["all"].config.latent_dist == "gaussian" and by_arm["all"].config.d_batch_norm
    assert not by_arm["-batch_norm"].config.d_batch_norm and by_arm["-batch_norm"].config.d_activation == "leaky_relu"
    assert by_arm["-gaussian_latent"].config.latent_dist == "uniform"
    assert all(r.config.steps == 10 and r.config.dataset == "fake" for r in suite.runs)
    assert suite.results_dir == (tmp_path / "results" / "t").resolve()


def test_add_one_in_and_factorial(tmp_path):
    suite = load_suite(write(tmp_path, BASE.replace("leave_one_out", "add_one_in").replace("dcgan", "vanilla")),
                       tmp_path)
    assert [a.name for a in suite.designs[0].arms] == ["none", "+batch_norm", "+leaky_relu", "+gaussian_latent"]
    full = full_factorial(PRESETS["dcgan"], ["batch_norm", "leaky_relu", "gaussian_latent"])
    assert len(full.arms) == 8 and len({a.name for a in full.arms}) == 8


def test_fractional_factorial_resolution_and_aliases():
    design = fractional_factorial([], [f"h{i}" for i in range(5)], 5)
    assert len(design.arms) == 16 and design.resolution == 5 and design.generators == ("E = ABCD",)
    assert "I = ABCDE" in design.aliases
    # Every factor is balanced, and every pair of factors is orthogonal.
    levels = [[a.factors[f"h{i}"] for i in range(5)] for a in design.arms]
    for i in range(5):
        assert sum(row[i] for row in levels) == 8
        for j in range(i + 1, 5):
            assert sum(row[i] == row[j] for row in levels) == 8
    res3 = fractional_factorial([], [f"h{i}" for i in range(7)], 3)
    assert len(res3.arms) == 8 and res3.resolution == 3
    assert any(line.startswith("A = ") for line in res3.aliases)  # main effects aliased with 2fis
    res4 = fractional_factorial([], [f"h{i}" for i in range(8)], 4)
    assert len(res4.arms) == 16 and res4.resolution == 4
    assert not any(len(line.split(" = ")[0]) == 1 and line[0].isupper() and "=" in line and
                   any(len(p) <= 2 for p in line.split(" = ")[1:]) for line in res4.aliases if not "h" in line
                   and not line.startswith("I"))


# The fewest runs of a regular two-level design with k factors at resolution III, IV and V
# (Box, Hunter & Hunter 2005, Table 6.14; Montgomery, Design and Analysis of Experiments, Table 8.14;
# full factorials below that): III: 2^m − 1 ≥ k; IV: 2^(m−1) ≥ k (foldover); V: 5 factors in 16,
# 6 in 32, 8 in 64, 11 in 128, 17 in 256 runs.
TEXTBOOK_MINIMUM_RUNS = {
    3: [2, 4, 4, 8, 8, 8, 8, 16, 16, 16, 16, 16, 16, 16, 16, 32, 32],
    4: [2, 4, 8, 8, 16, 16, 16, 16, 32, 32, 32, 32, 32, 32, 32, 32, 64],
    5: [2, 4, 8, 16, 16, 32, 64, 64, 128, 128, 128, 256, 256, 256, 256, 256, 256],
}


@pytest.mark.parametrize("resolution", [3, 4, 5])
def test_fractional_factorials_reach_the_textbook_minimum_run_counts(resolution):
    for k, runs in enumerate(TEXTBOOK_MINIMUM_RUNS[resolution], start=1):
        design = fractional_factorial([], [f"h{i}" for i in range(k)], resolution)
        assert len(design.arms) == runs, (k, resolution)
        assert design.resolution is None or design.resolution >= resolution  # None: the full factorial


@pytest.mark.parametrize("k", [16, 17])
def test_resolution_v_in_256_runs_keeps_two_factor_interactions_apart(k):
    """Checked on the design matrix itself: every main effect and two-factor interaction column
    (±1) is orthogonal to every other, so none is aliased with another."""
    import numpy as np

    design = fractional_factorial([], [f"h{i}" for i in range(k)], 5)
    x = np.array([[1 if a.factors[f"h{i}"] else -1 for i in range(k)] for a in design.arms])
    pairs = [x[:, i] * x[:, j] for i in range(k) for j in range(i + 1, k)]
    columns = np.column_stack([x, *pairs])
    gram = columns.T @ columns
    assert len(design.arms) == 256 and np.array_equal(gram, 256 * np.eye(columns.shape[1], dtype=int))


def test_fractional_design_in_a_suite_prints_aliases(tmp_path):
    text = BASE.replace("design: leave_one_out", "design: {type: fractional_factorial, resolution: 3}")
    suite = load_suite(write(tmp_path, text), tmp_path)
    assert suite.designs[0].kind == "fractional_factorial" and suite.designs[0].aliases


@pytest.mark.parametrize("old, new, fragment", [
    ("leaky_relu,", "leaky_relus,", "unknown hack 'leaky_relus' (did you mean 'leaky_relu'?)"),
    ("seeds: 2", "seed: 2", "seed: unknown key (did you mean 'seeds'?)"),
    ("steps: 10", "steps: -5", "'steps': must be >= 1"),
    ("design: leave_one_out", "design: leave_one_ot", "did you mean 'leave_one_out'"),
    ("seeds: 2", "seeds: 0", "seed count must be >= 1"),
    ("preset: dcgan", "preset: dcgna", "did you mean 'dcgan'"),
    ("steps: 10", "steps: 10\n    base: {lr_dd: 1.0}", "base.lr_dd: unknown key (did you mean 'lr_d'?)"),
    ("steps: 10", "steps: 10\n    evaluation: {every: 5, sample: 10}", "evaluation.sample: unknown key"),
    ("steps: 10", "steps: 10\n    results: ../../etc", "inside the results root"),
    ("design: leave_one_out", "design: {type: fractional_factorial}", "needs an integer resolution"),
])
def test_bad_suites_name_the_problem(tmp_path, old, new, fragment):
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new))
    with pytest.raises(SuiteError) as err:
        load_suite(path, tmp_path / "results")
    assert str(path) in str(err.value) and fragment in str(err.value)


def test_explicit_arms(tmp_path):
    text = """
        name: arms
        dataset: fake
        preset: dcgan
        design: {type: arms, reference: plain}
        arms:
          plain: {}
          smooth: {hacks: [label_smoothing], set: {label_smoothing: 0.3}}
        seeds: [3]
    """
    suite = load_suite(write(tmp_path, text), tmp_path)
    cfgs = {r.arm: r.config for r in suite.runs}
    assert cfgs["smooth"].label_smoothing == 0.3 and cfgs["plain"].label_smoothing == 0.0
    assert {r.seed for r in suite.runs} == {3} and suite.designs[0].reference_arm == "plain"
    bad = write(tmp_path, text.replace("set: {label_smoothing: 0.3}", "set: {label_smothing: 0.3}"), "b.yaml")
    with pytest.raises(SuiteError, match="arms.smooth.set.label_smothing: unknown key"):
        load_suite(bad, tmp_path)


def test_run_id_is_a_content_hash():
    cfg = TrainConfig(dataset="fake")
    assert run_id(cfg) == run_id(TrainConfig(dataset="fake"))
    assert run_id(cfg) != run_id(cfg.replace(seed=1))
    assert run_id(cfg) == run_id(cfg.replace(device="cpu", threads=3))  # how a run executes is not what it is


def test_same_run_in_two_suites_has_the_same_id(tmp_path):
    a = load_suite(write(tmp_path, BASE), tmp_path)
    b = load_suite(write(tmp_path, BASE.replace("name: t", "name: other").replace(
        "hacks: [batch_norm, leaky_relu, gaussian_latent]", "hacks: [batch_norm, gaussian_latent, leaky_relu]"),
        "o.yaml"), tmp_path)
    ids_a = {(r.arm, r.seed): r.run_id for r in a.runs}
    ids_b = {(r.arm, r.seed): r.run_id for r in b.runs}
    assert ids_a == ids_b


def test_multi_part_suite(tmp_path):
    text = """
        name: parts
        dataset: fake
        hacks: [batch_norm, leaky_relu, gaussian_latent, kernel_4]
        designs:
          loo: {type: leave_one_out, preset: dcgan, hacks: [batch_norm, leaky_relu]}
          aoi: {type: add_one_in, preset: vanilla}
          frac: {type: fractional_factorial, resolution: 3, preset: vanilla}
        seeds: 2
    """
    suite = load_suite(write(tmp_path, text), tmp_path)
    assert [d.name for d in suite.designs] == ["loo", "aoi", "frac"]
    assert suite.arms[:3] == ["loo:all", "loo:-batch_norm", "loo:-leaky_relu"]
    assert suite.designs[1].reference_arm == "aoi:none" and "aoi:+kernel_4" in suite.arms
    assert suite.designs[2].resolution == 4 and len(suite.designs[2].arms) == 8  # D = ABC beats D = AB
    assert {r.preset for r in suite.runs if r.arm.startswith("loo:")} == {"dcgan"}
    with pytest.raises(SuiteError, match="designs.aoi.preset"):
        load_suite(write(tmp_path, text.replace("preset: vanilla}", "preset: vanila}", 1), "bad.yaml"), tmp_path)


def test_suite_precedence_is_defaults_preset_base_hacks_set(tmp_path):
    """base sits above the preset's hacks and below the arm's own hacks and `set`."""
    text = """
        name: prec
        dataset: fake
        preset: dcgan
        base: {beta1: 0.8, latent_dist: uniform}
        design: {type: arms, reference: plain}
        arms:
          plain: {}
          latent: {hacks: [gaussian_latent]}
          pinned: {set: {beta1: 0.3}}
    """
    assert "adam_beta1_05" in PRESETS["dcgan"] and "gaussian_latent" not in PRESETS["dcgan"]
    suite = load_suite(write(tmp_path, text), tmp_path / "results")
    cfg = {r.arm: r.config for r in suite.runs}
    assert cfg["plain"].beta1 == 0.8  # base over the preset's adam_beta1_05 (0.5)
    assert cfg["plain"].latent_dist == "uniform" and cfg["latent"].latent_dist == "gaussian"  # hack over base
    assert cfg["pinned"].beta1 == 0.3  # set over everything
    loo = load_suite(write(tmp_path, BASE.replace("steps: 10", "steps: 10\n    base: {beta1: 0.8}"), "loo.yaml"),
                     tmp_path / "results")
    assert {r.config.beta1 for r in loo.runs} == {0.8}


@pytest.mark.parametrize("name", ["..", ".", "..."])
def test_suite_name_cannot_leave_the_results_root(tmp_path, name):
    path = write(tmp_path, BASE.replace("name: t", f"name: '{name}'"))
    with pytest.raises(SuiteError, match="name"):
        load_suite(path, tmp_path / "root" / "results")
    assert not (tmp_path / "root").exists()


def test_flops_budget_gives_each_arm_its_steps(tmp_path):
    text = BASE.replace("steps: 10", "budget: {flops: 2.0e11}").replace("batch_norm, leaky_relu", "strided_conv, leaky_relu")
    suite = load_planned_suite(write(tmp_path, text), tmp_path / "results")
    from ganbench.training.compute import step_compute

    steps = {r.arm: r.config.steps for r in suite.runs}
    for run in suite.runs:
        assert run.config.steps == round(2.0e11 / step_compute(run.config)["flops_per_step"])
    assert steps["-strided_conv"] < steps["all"]  # pooling costs more FLOPs per step: fewer steps
    assert suite.budget.kind == "flops" and "equal compute" in suite.budget.describe()


def test_seconds_budget_is_timed_once_per_structure_and_kept(tmp_path, monkeypatch):
    from ganbench.training import compute

    calls = []

    def timed(cfg, device, threads):
        calls.append(cfg.latent_dist)
        return {"seconds_per_step": 0.5, "spread": 0.0, "method": "stub"}

    monkeypatch.setattr(compute, "time_step_robustly", timed)
    path = write(tmp_path, BASE.replace("steps: 10", "budget: {seconds: 10, device: cpu}"))
    looked = load_planned_suite(path, tmp_path / "results")  # reading a suite writes nothing
    assert not (tmp_path / "results").exists()
    calls.clear()
    first = load_planned_suite(path, tmp_path / "results", record=True)
    # 'all' and '-gaussian_latent' have one network (the latent is a numeric knob): timed once (defect 7)
    assert {r.config.steps for r in first.runs} == {20} and len(calls) == 3
    assert [r.run_id for r in looked.runs] == [r.run_id for r in first.runs]
    assert (first.results_dir / "budget.json").exists()
    monkeypatch.setattr(compute, "time_step_robustly", lambda *a, **k: pytest.fail("timed again"))
    again = load_planned_suite(path, tmp_path / "results")
    assert [r.run_id for r in again.runs] == [r.run_id for r in first.runs]


@pytest.mark.parametrize("text, fragment", [
    ("budget: {flops: 1.0e+12}\n    steps: 10", "either `steps` or `budget`"),
    ("budget: {flop: 5}", "did you mean 'flops'"),
    ("budget: {flops: -1}", "positive number"),
    ("budget: {flops: 5, seconds: 3}", "exactly one"),
    ("analysis: {primary: fid_fmnst}", "did you mean 'fid_fmnist'"),
])
def test_bad_budget_or_analysis_is_named(tmp_path, text, fragment):
    with pytest.raises(SuiteError, match=fragment):
        load_suite(write(tmp_path, BASE.replace("steps: 10", text)), tmp_path / "results")


def test_a_suite_on_cifar10_gets_the_colour_net_unless_it_sets_one(tmp_path):
    from ganbench.execution.sweep import design_lines

    text = BASE.replace("dataset: fake", "dataset: cifar10")
    suite = load_suite(write(tmp_path, text), tmp_path)
    assert {(r.config.arch, r.config.image_size, r.config.channels) for r in suite.runs} == {("radford", 32, 3)}
    assert any(line.startswith("cifar10: the Radford 32-px colour net") for line in design_lines(suite))
    own = load_suite(write(tmp_path, text + "    base: {image_size: 64}\n", "own.yaml"), tmp_path)
    assert {(r.config.arch, r.config.image_size) for r in own.runs} == {("radford", 64)}


def test_explicit_arms_can_be_a_part_with_its_reference_and_set_overrides_every_arm(tmp_path):
    from ganbench.study.suite import SuiteError, load_suite

    path = tmp_path / "p.yaml"
    path.write_text("name: p\ndataset: fake\npreset: dcgan\ndesigns:\n"
                    "  mine: {type: arms, reference: base, arms: {base: {}, smooth: {hacks: [label_smoothing]}}}\n"
                    "  loo: {type: leave_one_out, hacks: [leaky_relu]}\nseeds: 2\nsteps: 4\n"
                    "evaluation: {metrics: none}\n")
    suite = load_suite(path, tmp_path / "r", overrides={"steps": 6, "lr_g": 3e-4})
    assert [d.reference_arm for d in suite.designs] == ["mine:base", "loo:all"]
    assert {(r.config.steps, r.config.lr_g) for r in suite.runs} == {(6, 3e-4)}
    assert {r.run_id for r in suite.runs}.isdisjoint(r.run_id for r in load_suite(path, tmp_path / "r").runs)
    with pytest.raises(SuiteError, match="--seeds"):
        load_suite(path, tmp_path / "r", overrides={"seed": 3})
    path.write_text("name: q\ndataset: fake\narms: {a: {}, b: {}}\nreference: c\nevaluation: {metrics: none}\n")
    with pytest.raises(SuiteError, match="reference: no arm named 'c'"):
        load_suite(path, tmp_path / "r")


def test_a_suite_with_several_unknown_keys_names_them_all_at_once(tmp_path):
    from ganbench.study.suite import SuiteError, load_suite
    from ganbench.study.suite_keys import TOP, sections

    path = tmp_path / "typo.yaml"
    path.write_text("name: typo\nseed: 3\nstep: 10\nevaluaton: {}\narms: {a: {hack: [x]}}\n"
                    "designs_: {}\nanalysis: {primry: fid}\n")
    with pytest.raises(SuiteError) as err:
        load_suite(path, tmp_path / "r")
    text = str(err.value)
    for expected in ("6 unknown keys", "seed: unknown key (did you mean 'seeds'?)", "step: unknown key (did you mean "
                     "'steps'?)", "evaluaton: unknown key (did you mean 'evaluation'?)",
                     "arms.a.hack: unknown key (did you mean 'hacks'?)", "analysis.primry"):
        assert expected in text, text
    listed = cli_process("suite-keys", "--json", cwd=tmp_path)
    keys = json.loads(listed.stdout)
    assert set(keys) == set(sections({})) and set(keys["(top)"]) == set(TOP) and keys["arms.NAME"]["set"]["type"] == "mapping"


def test_every_arms_problem_is_reported_together(tmp_path):
    from ganbench.study.suite import SuiteError, load_suite

    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ndataset: fake\narms: {a: {hacks: [label_smoothin]}, b: {hacks: [noisy_lables]}}\n")
    with pytest.raises(SuiteError, match=r"2 problems:\n  arms.a.hacks\[0\]: unknown hack 'label_smoothin' \(did you "
                                         r"mean 'label_smoothing'\?\)\n  arms.b.hacks\[0\]: unknown hack 'noisy_lables'"):
        load_suite(path, tmp_path / "r")
    path.write_text("name: bad\ndataset: fake\narms: {a: {}, b: {set: {lr_d: -1}}, c: {set: {lr_g: 0}}}\nseeds: 3\n")
    with pytest.raises(SuiteError) as err:
        load_suite(path, tmp_path / "r")
    text = str(err.value)
    assert "2 problems" in text and "arm 'b': bad value -1.0 for 'lr_d'" in text and "arm 'c'" in text
    assert text.count("arm 'b'") == 1  # once per arm, not once per seed


def test_every_section_of_a_suite_is_checked_before_it_fails(tmp_path):
    """A bad budget, base value, hack, seed count, results directory and metric: one run of `plan` names all six."""
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ndataset: fake\npreset: dcgan\nbase: {lr_d: -1}\nseeds: 0\nbudget: {flop: 3}\n"
                    "results: ../outside\narms: {a: {hacks: [no_such_hack]}, b: {}}\nanalysis: {primary: fidd}\n")
    result = cli_process("plan", str(path), "--no-estimate", "--results-root", "r", cwd=tmp_path)
    assert result.returncode == 2
    text = " ".join(result.stderr.split())
    for expected in ("6 problems", "budget.flop: unknown key (did you mean 'flops'?)", "base: bad value -1.0 for "
                     "'lr_d'", "arms.a.hacks[0]: unknown hack 'no_such_hack'", "seeds: the seed count must be >= 1",
                     "results: '../outside' must name a directory inside the results root",
                     "analysis: 'fidd' is not a scored metric value"):
        assert expected in text, text
    assert not (tmp_path / "r").exists()  # a check writes nothing


def test_a_design_declares_its_options_in_one_place(tmp_path):
    """A plugin's design with an option: registered once, its key is in the grammar (`suite-keys`, the
    unknown-key check with did-you-mean), it reaches the builder, and a ConfigError naming it is said there."""
    from ganbench.errors import ConfigError
    from ganbench.study.design import DESIGNS, design_options, leave_one_out, register_design
    from ganbench.study.suite_keys import sections

    def deep(preset, studied, options):
        if not isinstance(options.get("depth"), int):
            raise ConfigError(f"design 'deep' needs an integer depth, got {options.get('depth')!r}")
        return leave_one_out(preset, studied[:options["depth"]])

    register_design("deep", deep, options={"depth": ("int", "how many of the hacks to leave out in turn")})
    try:
        listed = json.loads(cli_process("suite-keys", "--json", cwd=tmp_path).stdout)
        assert listed["design"]["depth"]["type"] == "int" and "depth" in listed["designs.PART"]
        text = ("name: d\ndataset: fake\npreset: dcgan\nhacks: [label_smoothing, noisy_labels]\n"
                "design: {type: deep, %s}\nsteps: 2\nevaluation: {metrics: none}\n")
        path = tmp_path / "d.yaml"
        path.write_text(text % "depth: 1")
        assert [a.name for a in load_suite(path, tmp_path / "r").designs[0].arms] == ["all", "-label_smoothing"]
        path.write_text(text % "dpeth: 1")
        with pytest.raises(SuiteError, match=r"design.dpeth: unknown key \(did you mean 'depth'\?\)"):
            load_suite(path, tmp_path / "r")
        path.write_text(text % "depth: deep")
        with pytest.raises(SuiteError, match=r"design.depth.*needs an integer depth"):
            load_suite(path, tmp_path / "r")
    finally:
        DESIGNS.unregister("deep")
    assert "depth" not in sections(design_options())["design"]
