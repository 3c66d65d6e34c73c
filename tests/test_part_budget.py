"""A design part with its own budget: `{flops: reference}` trains every arm to the FLOPs its reference
arm spends in the suite's steps (the equal-compute answer trained, not read off a curve), and the
report counts each comparison once (an arm trained the reference's steps there is the equal-steps one)."""

import textwrap

import numpy as np
import pandas as pd
import pytest

from ganbench.execution.plan import family_size, load_planned_suite
from ganbench.study.suite import SuiteError, load_suite
from ganbench.training.compute import step_compute

SUITE = """
    name: twoparts
    dataset: fake
    hacks: [strided_conv, label_smoothing]
    designs:
      steps: {type: leave_one_out, preset: dcgan}
      flops: {type: leave_one_out, preset: dcgan, budget: {flops: reference}}
    seeds: 2
    steps: 40
    base: {batch_size: 16, threads: 1}
    evaluation: {every: 10, samples: 64, reference_samples: 0, metrics: fid_fmnist}
"""


def _suite(tmp_path, text=SUITE):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text))
    return load_planned_suite(path, tmp_path / "results")


def test_every_arm_of_the_part_gets_the_reference_arms_flops(tmp_path):
    suite = _suite(tmp_path)
    config = {run.arm: run.config for run in suite.runs}
    reference = step_compute(config["flops:all"])["flops_per_step"] * 40
    assert config["flops:all"].steps == 40 and config["flops:-label_smoothing"].steps == 40
    pooled = config["flops:-strided_conv"]  # pooling instead of strides: more FLOPs per step, fewer steps
    per_step = step_compute(pooled)["flops_per_step"]
    assert pooled.steps == round(reference / per_step) < 40
    assert abs(pooled.steps * per_step - reference) <= per_step / 2
    ids = {run.arm: {r.run_id for r in suite.runs if r.arm == run.arm} for run in suite.runs}
    # the same config is the same run: only -strided_conv trains anew in the FLOPs part
    assert ids["flops:all"] == ids["steps:all"] and ids["flops:-label_smoothing"] == ids["steps:-label_smoothing"]
    assert ids["flops:-strided_conv"].isdisjoint(ids["steps:-strided_conv"])
    budget = next(d for d in suite.designs if d.name == "flops").budget
    assert budget.reference == "flops:all" and "FLOPs `flops:all` spends" in budget.describe()


def test_a_part_budget_is_checked(tmp_path):
    bad = SUITE.replace("budget: {flops: reference}", "budget: {seconds: 60}")
    with pytest.raises(SuiteError, match=r"designs\.flops\.budget: a seconds budget is the suite's"):
        _suite(tmp_path, bad)
    top = SUITE.replace("steps: 40\n", "budget: {flops: reference}\n")
    with pytest.raises(SuiteError, match=r"budget\.flops: 'reference' .* is for a design part's budget"):
        _suite(tmp_path, top)
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(SUITE))
    with pytest.raises(SuiteError, match="planned into steps by"):
        load_suite(path, tmp_path / "results")  # no planner: the FLOPs part cannot be planned
    fixed = _suite(tmp_path, SUITE.replace("budget: {flops: reference}", "budget: {steps: 12}"))
    assert {run.config.steps for run in fixed.runs if run.arm.startswith("flops:")} == {12}


def test_the_report_counts_each_comparison_once_and_plan_agrees(tmp_path):
    """analyse() on synthetic values for the suite's own runs: the FLOPs part adds only -strided_conv (the
    others are the steps part's runs), no equal-FLOPs reading off curves, and plan's family size is the same."""
    from ganbench.analysis.report import analysis as rep, sections

    suite = _suite(tmp_path, SUITE.replace("seeds: 2", "seeds: 6"))
    rng = np.random.default_rng(1)
    rows = []
    for run in suite.runs:
        shift = {"steps:-strided_conv": 4.0, "flops:-strided_conv": 8.0}.get(run.arm, 0.0)
        for step in (run.config.steps // 2, run.config.steps):
            rows.append({"part": run.arm.split(":")[0], "arm": run.arm, "seed": run.seed, "run_id": run.run_id,
                         "status": "completed", "step": step, "metric": "fid_fmnist",
                         "value": 30 + shift + rng.normal(0, 0.3), "higher_is_better": False,
                         "knob_steps": run.config.steps, "flops_per_step": step_compute(run.config)["flops_per_step"],
                         "params_g": 1, "params_d": 1, "draw_sd": 0.1})
    frame = pd.DataFrame(rows)
    manifest = {"designs": [{"part": d.name, "kind": d.kind, "reference_arm": d.reference_arm, "resolution": None,
                             "arms": [{"name": a.name, "factors": dict(a.factors)} for a in d.arms],
                             **({"budget": {"kind": d.budget.kind, "text": d.budget.describe()}} if d.budget else {})}
                            for d in suite.designs],
                "analysis": {"primary": "fid_fmnist", "verdicts": ["fid_fmnist"]}}
    result = rep.analyse(frame, pd.DataFrame(), manifest, ["fid_fmnist"])
    steps, flops = result.parts
    assert list(steps.comparisons["fid_fmnist"]["arm"]) == ["steps:-strided_conv", "steps:-label_smoothing"]
    assert list(flops.comparisons["fid_fmnist"]["arm"]) == ["flops:-strided_conv"]
    assert set(flops.comparisons["fid_fmnist"]["basis"]) == {"equal FLOPs (trained)"}
    assert flops.compared_elsewhere == ["flops:-label_smoothing"]
    assert steps.equal_compute.empty and flops.equal_compute.empty  # trained, so nothing is interpolated
    assert result.family_size == 3 == family_size(suite, ["fid_fmnist"])
    assert flops.comparisons["fid_fmnist"]["verdict"].iloc[0] == "worse"
    text = "\n".join(sections.findings(result))
    assert "**flops:-strided_conv** is worse than `flops:all` at equal FLOPs (trained)" in text


@pytest.mark.parametrize("preset_layer, hacks", [(("dcgan",), ()), (("dcgan",), ("wgan_gp",)),
                                                 (("dcgan",), ("minibatch_std",)), (("vanilla",), ("kernel_4",))])
def test_a_bf16_step_counts_what_its_fp32_step_counts(preset_layer, hacks):
    """`step_compute` counts a bf16 run's step in fp32 (8-15x faster on a CPU without native bf16): the
    counter reads shapes, so both counts must be one number, whatever the structure."""
    from ganbench.config import training_only
    from ganbench.hacks import preset_hacks, resolve_layers
    from ganbench.training.compute import _counted

    cfg, _ = resolve_layers(preset_hacks(preset_layer[0]), hacks, {"batch_size": 8, "dataset": "fake"})
    bf16, fp32 = (dict(_counted(training_only(cfg, device="cpu", seed=0, precision=p))) for p in ("bf16", "fp32"))
    assert bf16["flops_per_step"] == fp32["flops_per_step"] > 0
    assert step_compute(cfg.replace(precision="bf16")) == fp32
