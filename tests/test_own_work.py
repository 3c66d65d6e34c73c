"""A researcher's own work and habits (issue 25): their hacks reach every command — plugins (-p,
$GANBENCH_PLUGINS, entry points) loaded by the driver and by every worker, knob-only hacks declared in
the suite (`define:`); explicit arms with a reference; `--set` and `--fresh` over a suite; every
unknown key at once; logs and tables that read well; the Python API; scoring images made elsewhere;
TTUR as its citation means; `--version`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from ganbench import rundir

PLUGIN = '''
import os
from ganbench import Hack, register_hack
register_hack(Hack("ttur_sagan_plugin", "D 4e-4, G 1e-4", "Zhang et al. 2019 (SAGAN), section 5",
                   {"lr_d": 4e-4, "lr_g": 1e-4}))
if os.environ.get("PLUGIN_MARKER"):  # which processes imported this plugin
    with open(os.environ["PLUGIN_MARKER"], "a") as f:
        f.write(f"{os.getpid()}\\n")
'''

SUITE = """
name: own
dataset: fake
preset: dcgan
arms: {base: {}, sagan: {hacks: [ttur_sagan_plugin]}}
reference: base
seeds: 2
steps: 4
base: {batch_size: 8, log_every: 2, sample_every: 0, checkpoint_every: 0}
evaluation: {every: 4, samples: 64, reference_samples: 64, metrics: fid_fmnist}
"""


def ganbench(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, timeout=600)


def cli(*args: str, cwd: Path):
    """The command in this process (typer's runner): what `ganbench` would do, without the ~8 s of a new
    interpreter importing torch. Plugin tests use `ganbench` (a subprocess): a plugin's registrations live
    for the process."""
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from ganbench.cli import app

    here = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    finally:
        os.chdir(here)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


@pytest.fixture()
def project(tmp_path):
    (tmp_path / "myhacks.py").write_text(PLUGIN)
    (tmp_path / "own.yaml").write_text(textwrap.dedent(SUITE))
    return tmp_path


@pytest.mark.integration
def test_a_plugin_hack_trains_in_the_workers_and_every_suite_command_sees_it(project):
    marker = project / "imported.txt"
    env = {"PLUGIN_MARKER": str(marker)}
    unknown = ganbench("plan", "own.yaml", "--no-estimate", cwd=project, env=env)
    assert unknown.returncode == 2 and "unknown hack 'ttur_sagan_plugin'" in unknown.stderr
    run = ganbench("-p", "myhacks", "run", "own.yaml", "--device", "cpu", "--workers", "1", cwd=project, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    pids = set(marker.read_text().split())
    assert len(pids) >= 2  # the driver and its worker process both imported it
    # suite.json records the plugin; a command without it says which -p loads it (it never imports it itself).
    assert json.loads((project / "results" / "own" / "suite.json").read_text())["plugins"] == ["myhacks"]
    forgot = ganbench("report", "own.yaml", "--out", "rep", cwd=project, env=env)
    assert forgot.returncode == 2 and "load them again with -p myhacks" in forgot.stderr, forgot.stderr
    for command in (["status", "own.yaml"], ["plan", "own.yaml", "--no-estimate"], ["report", "own.yaml", "--out", "rep"]):
        result = ganbench(*command, cwd=project, env={**env, "GANBENCH_PLUGINS": str(project / "myhacks.py")})
        assert result.returncode == 0, (command, result.stderr)
    configs = [json.loads(p.read_text())["config"] for p in (project / "results" / "own" / "runs").glob("*/config.json")]
    assert sorted((c.get("lr_d"), c.get("lr_g")) for c in configs) == [(0.0002, 0.0002)] * 2 + [(0.0004, 0.0001)] * 2
    readme = (project / "rep" / "README.md").read_text()
    assert "reference arm `base`" in readme and "`sagan` against `base`" in readme, readme[:2000]
    assert "No arm could be compared" not in readme


@pytest.mark.integration
def test_a_plugin_file_whose_path_holds_a_comma_trains_in_the_workers(tmp_path):
    # L01 (issue 36): $GANBENCH_PLUGINS was joined and split on commas: every run failed as "worker
    # process died (exit code 1)". The list ganbench hands its children is JSON now.
    folder = tmp_path / "my,plugins"
    folder.mkdir()
    (folder / "myhacks.py").write_text(PLUGIN)
    (tmp_path / "own.yaml").write_text(textwrap.dedent(SUITE).replace("seeds: 2", "seeds: 1"))
    marker = tmp_path / "imported.txt"
    run = ganbench("-p", str(folder / "myhacks.py"), "run", "own.yaml", "--device", "cpu", "--workers", "1",
                   cwd=tmp_path, env={"PLUGIN_MARKER": str(marker)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(set(marker.read_text().split())) >= 2  # the driver and its worker both imported it


def test_a_plugin_that_exits_while_imported_is_named(tmp_path):
    # L02b (issue 36): a plugin calling sys.exit(3) made `ganbench hacks` exit 3 with no message.
    (tmp_path / "quits.py").write_text("import sys\nsys.exit(3)\n")
    result = ganbench("-p", "quits.py", "hacks", cwd=tmp_path)
    assert result.returncode == 2 and "plugin 'quits.py' (from --plugin) called sys.exit(3)" in result.stderr


def test_plugins_from_an_installed_package_load_through_the_entry_point_group(tmp_path):
    site = tmp_path / "site"
    (site / "myplugin-1.0.dist-info").mkdir(parents=True)
    (site / "myplugin-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
    (site / "myplugin-1.0.dist-info" / "entry_points.txt").write_text("[ganbench.plugins]\nmine = myplugin_hacks\n")
    (site / "myplugin_hacks.py").write_text(PLUGIN)
    result = ganbench("hacks", "ttur_sagan_plugin", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert result.returncode == 0 and "lr_d=0.0004" in result.stdout, result.stderr


def test_a_plugin_that_cannot_be_imported_is_named_with_what_was_expected(tmp_path):
    result = ganbench("-p", "no_such_plugin", "hacks", cwd=tmp_path)
    assert result.returncode == 2 and "plugin 'no_such_plugin' (from --plugin)" in result.stderr
    (tmp_path / "broken.py").write_text("raise RuntimeError('oops')\n")
    result = ganbench("hacks", cwd=tmp_path, env={"GANBENCH_PLUGINS": "broken.py"})
    assert result.returncode == 2 and "broken.py" in result.stderr and "RuntimeError: oops" in result.stderr


def test_a_knob_only_hack_declared_in_the_suite_is_checked_like_a_registered_one(tmp_path):
    from ganbench.hacks import HACKS
    from ganbench.study.suite import SuiteError, load_suite

    def suite(define: str, arms: str = "{base: {}, mine: {hacks: [suite_ttur]}}") -> Path:
        path = tmp_path / "d.yaml"
        path.write_text(f"name: d\ndataset: fake\npreset: dcgan\ndefine: {define}\narms: {arms}\nreference: base\n"
                        "seeds: 1\nsteps: 2\nevaluation: {metrics: none}\n")
        return path

    try:
        ok = load_suite(suite('{suite_ttur: {summary: "D 4e-4, G 1e-4", source: "SAGAN", sets: {lr_d: 4.0e-4, '
                              'lr_g: 1.0e-4}}}'), tmp_path / "r")
        assert {r.config.lr_d for r in ok.runs} == {2e-4, 4e-4} and ok.designs[0].reference_arm == "base"
        load_suite(suite('{suite_ttur: {summary: "same knobs", source: "again", sets: {lr_d: 4.0e-4, lr_g: 1.0e-4}}}'),
                   tmp_path / "r")  # the same knobs again: fine
        cases = {'{suite_ttur: {summary: "x", source: "y", sets: {lr_d: 1.0e-3}}}': "already registered",
                 '{other: {summary: "x", source: "y", sets: {lr_dd: 1.0e-3}}}': "did you mean 'lr_d'",
                 '{other: {summary: "x", source: "", sets: {lr_d: 1.0e-3}}}': "needs a non-empty source",
                 '{other: {summary: "x", source: "y", sets: {lr_d: 1.0e-3}, seeds: 3}}': "define.other.seeds"}
        for define, message in cases.items():
            with pytest.raises(SuiteError, match=message):
                load_suite(suite(define, "{base: {}}"), tmp_path / "r")
    finally:
        for name in ("suite_ttur", "other"):
            if name in HACKS:
                HACKS.unregister(name)


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


@pytest.mark.integration
def test_run_and_plan_take_set_and_record_it(tmp_path):
    (tmp_path / "s.yaml").write_text("name: s\ndataset: fake\npreset: dcgan\narms: {a: {}}\nreference: a\nseeds: 1\n"
                                     "steps: 4\nbase: {batch_size: 8, log_every: 2, sample_every: 0, "
                                     "checkpoint_every: 0}\nevaluation: {metrics: none}\n")
    plan = cli("plan", "s.yaml", "--no-estimate", "--set", "steps=2", cwd=tmp_path)
    assert plan.returncode == 0 and "--set over every arm: steps=2" in plan.stdout and "0/2" in plan.stdout
    bad = cli("run", "s.yaml", "--set", "stpes=2", cwd=tmp_path)
    assert bad.returncode == 2 and "did you mean 'steps'" in bad.stderr
    run = cli("run", "s.yaml", "--device", "cpu", "--workers", "1", "--set", "steps=2", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    # stdout is a pipe here, as a log file: plain lines, one when the run starts and one when it ends
    assert "started a seed 0 (" in run.stdout and "completed a seed 0 (" in run.stdout and "at step 2/2" in run.stdout
    manifest = rundir.read_json(tmp_path / "results" / "s" / "suite.json")
    assert manifest["overrides"] == {"steps": 2}
    (status,) = [rundir.read_json(p) for p in (tmp_path / "results" / "s" / "runs").glob("*/status.json")]
    assert status["status"] == "completed" and status["step"] == 2


def test_ttur_means_what_its_citation_means_and_the_seed_keeps_its_own():
    from ganbench.hacks import HACKS

    ttur, seed = HACKS["ttur"].sets, HACKS["ttur_seed000"].sets
    assert (ttur["lr_d"], ttur["lr_g"]) == (4e-4, 1e-4) and "Heusel" in HACKS["ttur"].source
    assert (seed["lr_d"], seed["lr_g"]) == (1e-4, 3e-4) and "000" in HACKS["ttur_seed000"].source
    text = (Path(__file__).resolve().parents[1] / "suites" / "seeds" / "seed000_zalando_dcgan.yaml").read_text()
    assert "ttur_seed000" in text


def test_version(tmp_path):
    import ganbench

    result = cli("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith(f"ganbench {ganbench.__version__}")
    assert ganbench.__version__ != "0+unknown"


def test_the_log_file_progress_summarises_runs_rate_and_eta():
    from types import SimpleNamespace

    from rich.console import Console

    from ganbench.cli.progress import PlainProgress

    def state(rid, status, step):
        return SimpleNamespace(run=SimpleNamespace(run_id=rid, arm="a", seed=int(rid[-1]),
                                                   config=SimpleNamespace(steps=100)), status=status, step=step,
                               error=None)

    todo = [state("r0", "pending", 0), state("r1", "pending", 0)]
    now = [0.0]
    progress = PlainProgress(Console(file=open(os.devnull, "w")), todo, every_s=0, clock=lambda: now[0])
    now[0] = 10.0
    line = progress.summary([state("r0", "completed", 100), state("r1", "running", 50)])
    # no plan (a cluster executor): the run-steps rate, 150 in 10 s, leaves 50 for 3.3 s
    assert line.startswith("progress: 1/2 runs done, 0 failed, 1 running; 150/200 run-steps, 15.0 run-steps/s, "
                           "ETA 0m03s (≈ "), line


def test_compare_prints_for_people_and_for_scripts(monkeypatch):
    from typer.testing import CliRunner

    from ganbench.cli import app
    from ganbench.cli.tables import sig

    repo = Path(__file__).resolve().parents[1]
    if not (repo / "results" / "quick" / "suite.json").exists():
        pytest.skip("needs the committed quick study")
    monkeypatch.chdir(repo)
    runner = CliRunner()
    arms = runner.invoke(app, ["compare", "--suite", "suites/quick.yaml", "--", "-label_smoothing", "all"],
                         env={"COLUMNS": "200"})
    as_json = runner.invoke(app, ["compare", "--suite", "suites/quick.yaml", "--json", "--", "-label_smoothing", "all"])
    rows = {row["arm"]: row for row in json.loads(as_json.output)}
    assert set(rows) == {"all", "-label_smoothing"}
    reference = rows["all"]  # the table shows the JSON's numbers, rounded for people
    assert arms.exit_code == 0 and "(reference)" in arms.output
    assert f"{sig(reference['mean'])} ± {sig(reference['std'], 3)}" in arms.output
    runs = runner.invoke(app, ["compare", "results/quick/runs/d5a0d9247cf7", "results/quick/runs/92591174d270"],
                         env={"COLUMNS": "200"})
    assert runs.exit_code == 0
    assert not any(len(token) > 8 and token.replace(".", "").isdigit() for token in runs.output.split())


@pytest.mark.integration
def test_the_python_api_gives_the_clis_runs_and_numbers(tmp_path, capsys):
    import ganbench

    (tmp_path / "api.yaml").write_text(textwrap.dedent(SUITE).replace("hacks: [ttur_sagan_plugin]",
                                                                      "hacks: [label_smoothing]"))
    with pytest.raises(ganbench.ConfigError, match="could not be imported"):  # the API's -p
        ganbench.load(tmp_path / "api.yaml", tmp_path / "by_api", plugins=["no_such_plugin_module"])
    suite = ganbench.load(tmp_path / "api.yaml", tmp_path / "by_api", set={"steps": "2"})
    assert [p["status"] for p in ganbench.plan(suite, estimate=False).runs] == ["pending"] * 4
    states = ganbench.run(suite, device="cpu", workers=1)
    assert [s.status for s in states] == ["completed"] * 4
    said = capsys.readouterr().out  # what `ganbench run` says in a log, in a notebook too
    assert "planned: ≈ " in said and said.count("completed ") == 4
    by_cli = cli("run", "api.yaml", "--device", "cpu", "--workers", "1", "--set", "steps=2", "--results-root", "by_cli",
                 cwd=tmp_path)
    assert by_cli.returncode == 0, by_cli.stderr

    def numbers(root: str) -> dict:
        runs = tmp_path / root / "own" / "runs"
        return {p.name: [{k: v for k, v in row.items() if k != "step_time_s"} for row in rundir.read_jsonl(p / "stats.jsonl")]
                for p in runs.iterdir()}

    assert numbers("by_api") == numbers("by_cli") and len(numbers("by_api")) == 4
    frame = ganbench.results(suite)
    assert set(frame["run_id"]) == set(numbers("by_api")) and "hack_label_smoothing" in frame
    assert ganbench.report(suite, out=tmp_path / "rep").name == "README.md"


def test_eval_scores_an_image_folder_and_a_torchscript_generator_with_provenance(tmp_path):
    """What `fidelity --input1 DIR` does, with ganbench's references and rows: the numbers equal
    `evaluate` on the same images / the same generator."""
    import torch
    from PIL import Image

    from ganbench.data.sampler import load_labelled
    from ganbench.hacks import resolve
    from ganbench.metrics.backend import FidelityGenerator
    from ganbench.metrics.fidelity import evaluate
    from ganbench.metrics.reference import Reference
    from ganbench.models import build_models

    images, _ = load_labelled("fashion-mnist", "train")
    folder = tmp_path / "samples"
    folder.mkdir()
    for i in range(200):
        Image.fromarray(images[i, 0].numpy()).save(folder / f"{i:04d}.png")
    reference = Reference("fashion-mnist", "test", 300, 28, 1)
    direct = {r["metric"]: r["value"] for r in evaluate(images[:200], ["fid_fmnist", "prc_fmnist"], reference,
                                                         samples=200)}
    result = cli("eval", str(folder), "--metrics", "fid_fmnist,prc_fmnist", "--reference-samples", "300",
                      "--device", "cpu", "--out", "rows.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = rundir.read_jsonl(tmp_path / "rows.jsonl")
    assert {r["metric"]: r["value"] for r in rows} == pytest.approx(direct, rel=1e-9)
    assert {r["scored"]["kind"] for r in rows} == {"image folder"} and rows[0]["scored"]["images"] == 200

    cfg, _ = resolve("dcgan", [], {"device": "cpu", "latent_dist": "gaussian", "seed": 3})
    torch.manual_seed(0)
    net_g = build_models(cfg)[0].eval()
    with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.14; generators made elsewhere still use it
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.trace(net_g, torch.zeros(2, cfg.latent_dim)), str(tmp_path / "g.pt"))
    direct = evaluate(FidelityGenerator(net_g, cfg), ["fid_fmnist"], reference, samples=256, seed=3)[0]["value"]
    result = cli("eval", "g.pt", "--metrics", "fid_fmnist", "--samples", "256", "--reference-samples", "300",
                      "--device", "cpu", "--set", "latent_dist=gaussian", "--set", "data_range=-1_1", "--set",
                      "seed=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{direct:.5g}" in result.stdout
    assert not (tmp_path / "g.pt.jsonl").exists()  # without --out nothing is written
    missing = cli("eval", "nothing_here", cwd=tmp_path)
    assert missing.returncode == 2 and "no such image folder or generator file" in missing.stderr


def test_eval_checks_an_outside_generator_on_its_first_batch(tmp_path):
    """A tanh generator scored without a declared range is detected as [-1, 1] and said (not scored as
    [0, 1] silently); a declared range it leaves is refused; a latent size it does not take is a
    two-line error naming the knob, not a TorchScript traceback."""
    import torch
    from typer.testing import CliRunner

    from ganbench.cli import app
    from ganbench.hacks import resolve
    from ganbench.models import build_models

    cfg, _ = resolve("dcgan", [], {"device": "cpu", "latent_dist": "gaussian"})
    assert cfg.output_activation == "tanh"
    torch.manual_seed(0)
    net_g = build_models(cfg)[0].eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.trace(net_g, torch.zeros(2, cfg.latent_dim)), str(tmp_path / "g.pt"))
    common = ["eval", str(tmp_path / "g.pt"), "--metrics", "fid_fmnist", "--samples", "128", "--reference-samples",
              "200", "--device", "cpu", "--set", "latent_dist=gaussian"]

    def invoke(*extra):
        return CliRunner().invoke(app, [*common, *extra], env={"COLUMNS": "200"})

    detected = invoke("--out", str(tmp_path / "detected.jsonl"))
    assert detected.exit_code == 0, detected.output
    assert "scored as pixels in [-1, 1]" in detected.output
    declared = invoke("--set", "data_range=-1_1", "--out", str(tmp_path / "declared.jsonl"))
    rows = {name: rundir.read_jsonl(tmp_path / f"{name}.jsonl")[0] for name in ("detected", "declared")}
    assert rows["detected"]["value"] == rows["declared"]["value"]  # the same scoring as the declared range
    assert rows["detected"]["scored"]["pixel_range"] == [-1.0, 1.0] and "note" in rows["detected"]["scored"]
    assert "scored as" not in declared.output
    refused = invoke("--set", "data_range=0_1")
    assert refused.exit_code == 2 and "outside the declared pixel range [0, 1]" in refused.output
    wrong_z = invoke("--set", "latent_dim=64")
    assert wrong_z.exit_code == 2 and "--set latent_dim=N" in wrong_z.output
    assert len(wrong_z.output.strip().splitlines()) <= 3 and "Traceback" not in wrong_z.output


@pytest.mark.integration
def test_run_fresh_starts_over_and_keeps_the_earlier_files(tmp_path):
    (tmp_path / "f.yaml").write_text("name: f\ndataset: fake\npreset: dcgan\narms: {a: {}, b: {set: {beta1: 0.8}}}\n"
                                     "reference: a\nseeds: 1\nsteps: 2\nbase: {batch_size: 8, log_every: 1, "
                                     "sample_every: 0, checkpoint_every: 0}\nevaluation: {metrics: none}\n")
    first = cli("run", "f.yaml", "--device", "cpu", "--workers", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = cli("run", "f.yaml", "--device", "cpu", "--workers", "1", cwd=tmp_path)
    assert "2 already finished, 0 to train" in again.stdout
    runs = tmp_path / "results" / "f" / "runs"
    before = {p.name: (p / "stats.jsonl").read_text() for p in runs.iterdir()}
    fresh = cli("run", "f.yaml", "--device", "cpu", "--workers", "1", "--fresh", "--only", "b", cwd=tmp_path)
    assert fresh.returncode == 0 and "1 to train" in fresh.stdout, fresh.stdout + fresh.stderr
    (kept,) = [p for p in runs.iterdir() if (p / "replaced").exists()]
    (aside,) = list((kept / "replaced").iterdir())
    assert (aside / "stats.jsonl").read_text() == before[kept.name]  # nothing lost
    assert rundir.read_json(kept / "status.json")["status"] == "completed"
    assert (kept / "stats.jsonl").read_text().splitlines()[0].split('"step_time_s"')[0] == \
        before[kept.name].splitlines()[0].split('"step_time_s"')[0]  # the same numbers again


def test_a_suite_with_several_unknown_keys_names_them_all_at_once(tmp_path):
    from ganbench.study.suite import SuiteError, load_suite
    from ganbench.study.suite_keys import SECTIONS, TOP

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
    listed = cli("suite-keys", "--json", cwd=tmp_path)
    keys = json.loads(listed.stdout)
    assert set(keys) == set(SECTIONS) and set(keys["(top)"]) == set(TOP) and keys["arms.NAME"]["set"]["type"] == "mapping"


@pytest.mark.integration
def test_plan_of_a_big_suite_prints_each_alias_chain_once_and_counts_its_runs(tmp_path):
    from ganbench.execution.sweep import distinct_chains

    assert distinct_chains(["AB = CG = DH", "CG = AB = DH", "AC = BG", "I = ABCG = … (2047 words in all)"]) == \
        ["AB = CG = DH", "AC = BG", "I = ABCG = … (2047 words in all)"]
    repo = Path(__file__).resolve().parents[1]
    plan = cli("plan", str(repo / "suites" / "hacks.yaml"), "--no-estimate", "--results-root", "r", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "1472 runs (1472 pending); --runs lists each of them" in plan.stdout and len(plan.stdout.splitlines()) < 150
    assert plan.stdout.count("AB = CG = DH = EJ = FK = LR") == 1 and "\n    CG = " not in plan.stdout
    listed = cli("plan", str(repo / "suites" / "hacks.yaml"), "--no-estimate", "--runs", "--results-root", "r",
                      cwd=tmp_path)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) > 1472
    status = cli("status", str(repo / "suites" / "hacks.yaml"), "--results-root", "r", cwd=tmp_path)
    assert status.returncode == 0 and "one row per arm; --runs lists" in status.stdout
    assert "loo:all" in status.stdout and "16 pending" in status.stdout and len(status.stdout.splitlines()) < 250


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
    result = cli("plan", str(path), "--no-estimate", "--results-root", "r", cwd=tmp_path)
    assert result.returncode == 2
    text = " ".join(result.stderr.split())
    for expected in ("6 problems", "budget.flop: unknown key (did you mean 'flops'?)", "base: bad value -1.0 for "
                     "'lr_d'", "arms.a.hacks[0]: unknown hack 'no_such_hack'", "seeds: the seed count must be >= 1",
                     "results: '../outside' must name a directory inside the results root",
                     "analysis: 'fidd' is not a scored metric value"):
        assert expected in text, text
    assert not (tmp_path / "r").exists()  # a check writes nothing
