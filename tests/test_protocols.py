"""Literature protocols: a suite's `evaluation: {protocol: lucic2018}` fixes the evaluation knobs,
every metric row says which protocol it follows, and the report puts the published figures
(with their source and caveats) beside the final and best readings of our runs."""

import math

import numpy as np
import pandas as pd
import pytest

from ganbench.analysis.literature import literature_tables
from ganbench.checks import check_resolved
from ganbench.config import ConfigError, TrainConfig
from ganbench.metrics import evaluator
from ganbench.metrics.protocols import PROTOCOLS
from ganbench.study.suite import SuiteError, load_suite

SUITE = """
name: lit
dataset: fashion-mnist
preset: dcgan
hacks: [label_smoothing]
design: add_one_in
seeds: 2
steps: 10
evaluation: {protocol: lucic2018, every: 5}
"""


def test_protocol_sets_its_knobs_and_refuses_conflicting_ones(tmp_path):
    path = tmp_path / "lit.yaml"
    path.write_text(SUITE)
    cfg = load_suite(path, tmp_path).runs[0].config
    assert (cfg.metrics, cfg.eval_samples, cfg.eval_reference_samples, cfg.eval_split, cfg.eval_protocol,
            cfg.eval_every) == ("fid", 10_000, 10_000, "test", "lucic2018", 5)
    path.write_text(SUITE.replace("every: 5}", "every: 5, samples: 5000}"))
    with pytest.raises(SuiteError, match="evaluation.samples: 5000 conflicts with evaluation.protocol 'lucic2018', "
                                         "which sets eval_samples=10000"):
        load_suite(path, tmp_path)
    path.write_text(SUITE.replace("lucic2018", "lucic2019"))
    with pytest.raises(SuiteError, match="evaluation.protocol.*did you mean 'lucic2018'"):
        load_suite(path, tmp_path)
    with pytest.raises(ConfigError, match="metrics must include fid"):  # checked where configs are resolved
        check_resolved(TrainConfig(eval_protocol="lucic2018", metrics="fid_fmnist", eval_samples=10_000,
                                   eval_reference_samples=10_000))


def test_every_metric_row_names_the_protocol(monkeypatch, imported_inception):
    """The evaluator of a protocol run (real reference set and Inception weights; the metric
    computation itself stubbed: 10 000 Inception images are GPU work) writes the protocol into rows."""
    monkeypatch.setenv("GANBENCH_INCEPTION_WEIGHTS", imported_inception)
    cfg = TrainConfig(eval_protocol="lucic2018", metrics="fid", eval_samples=10_000, eval_reference_samples=10_000,
                      steps=10, device="cpu", eval_draws=1)
    seen = {}

    def fake_evaluate(gens, names, reference, samples, **kw):
        seen.update(samples=samples, reference=reference.samples, channels=reference.channels)
        return [[{"metric": "fid", "value": 30.0, "extractor": "inception"}] for _ in gens]

    monkeypatch.setattr(evaluator, "evaluate_many", fake_evaluate)
    monkeypatch.setattr(evaluator, "uniform_noise_fid", lambda *a, **k: 300.0)
    import torch

    from ganbench.models import Generator

    rows = evaluator.make_evaluator(cfg, torch.device("cpu"))(Generator(cfg), 10)
    assert seen["samples"] == 10_000 and seen["reference"] == 10_000
    assert rows[0]["protocol"].startswith("lucic2018: Lucic et al. 2018: Inception FID, 10 000 generated vs 10 000 test")


def frame_of(values_by_arm, dataset="fashion-mnist"):
    """A tidy frame: per arm and seed, FID at steps 5 and 10 (the step-10 value is the final one)."""
    rows = []
    for arm, runs in values_by_arm.items():
        for seed, (mid, final) in enumerate(runs):
            for step, value in ((5, mid), (10, final)):
                rows.append({"part": "", "arm": arm, "seed": seed, "run_id": f"{arm}{seed}", "status": "completed",
                             "metric": "fid", "step": step, "value": value, "draw_sd": math.nan,
                             "knob_eval_protocol": "lucic2018", "knob_dataset": dataset})
    return pd.DataFrame(rows)


def test_literature_table_puts_published_figures_beside_final_and_best():
    frame = frame_of({"ns_gan": [(30.0, 32.0), (28.0, 29.0), (31.0, 30.0)], "mm_gan": [(40.0, 35.0), (41.0, 36.0)]})
    ((name, lines, table),) = literature_tables(frame, lambda r: f"{r['mean']:.2f} (n={r['n']})")
    assert name == "lucic2018" and "Lucic" in " ".join(lines) and "not as a reproduction" in " ".join(lines)
    ours = table.set_index("setting")
    assert ours.loc["ns_gan", "final fid"] == f"{np.mean([32.0, 29.0, 30.0]):.2f} (n=3)"
    assert ours.loc["ns_gan", "best fid over training"] == f"{np.mean([30.0, 28.0, 30.0]):.2f} (n=3)"
    assert ours.loc["mm_gan", "best fid over training"] == "35.50 (n=2)"
    published = {p.setting: p for p in PROTOCOLS["lucic2018"].published}
    assert ours.loc["NS GAN", "best fid over training"] == "26.5 ± 1.6" == f"{published['NS GAN'].value:g} ± 1.6"
    assert ours.loc["MM GAN", "best fid over training"] == "29.6" and ours.loc["WGAN GP", "final fid"] == "not published"
    # Another dataset: our rows, and no published figure next to them.
    ((_, lines, table),) = literature_tables(frame_of({"ns_gan": [(30.0, 32.0)]}, "mnist"),
                                             lambda r: f"{r['mean']:.2f}")
    assert list(table["setting"]) == ["ns_gan"] and "not shown" in lines[-1]
    assert literature_tables(frame.drop(columns="knob_eval_protocol"), str) == []


def test_a_protocol_run_trains_and_its_rows_name_the_protocol(tmp_path, monkeypatch, imported_inception):
    """A whole run under the protocol (its step timed and counted without evaluation, which
    must not trip the protocol's check); Inception's 10 000-image computation stubbed."""
    from ganbench import rundir
    from ganbench.training.loop import train

    monkeypatch.setenv("GANBENCH_INCEPTION_WEIGHTS", imported_inception)
    monkeypatch.setattr(evaluator, "evaluate_many", lambda gens, *a, **k: [[{"metric": "fid", "value": 30.0,
                                                                            "extractor": "inception"}]])
    monkeypatch.setattr(evaluator, "uniform_noise_fid", lambda *a, **k: 300.0)
    cfg = TrainConfig(eval_protocol="lucic2018", metrics="fid", eval_samples=10_000, eval_reference_samples=10_000,
                      steps=2, batch_size=8, data_limit=64, log_every=1, sample_every=0, device="cpu")
    status = train(cfg, tmp_path)
    assert status["status"] == "completed" and status["compute"]["flops_per_step"] > 0
    rows = rundir.read_jsonl(tmp_path / "metrics.jsonl")
    assert len(rows) == 3 and all(r["protocol"].startswith("lucic2018:") for r in rows)
