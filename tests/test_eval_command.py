"""`ganbench eval`: images made elsewhere (an image folder, a TorchScript generator) scored with ganbench's
references and provenance, and an outside generator checked on its first batch."""

from __future__ import annotations

import warnings

import pytest

from ganbench import rundir

from conftest import cli_process

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
    result = cli_process("eval", str(folder), "--metrics", "fid_fmnist,prc_fmnist", "--reference-samples", "300",
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
    result = cli_process("eval", "g.pt", "--metrics", "fid_fmnist", "--samples", "256", "--reference-samples", "300",
                      "--device", "cpu", "--set", "latent_dist=gaussian", "--set", "data_range=-1_1", "--set",
                      "seed=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{direct:.5g}" in result.stdout
    assert not (tmp_path / "g.pt.jsonl").exists()  # without --out nothing is written
    missing = cli_process("eval", "nothing_here", cwd=tmp_path)
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
