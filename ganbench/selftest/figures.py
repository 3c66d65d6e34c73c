"""The measuring parts: `env` (what this machine is), `engine` (run-steps/s of the stacked engine
against the dense ceiling), `eval` (a group's evaluation at a suite's own settings, in pieces, and the
device metric path against torch-fidelity's own code)."""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganbench.selftest.checks import dcgan, fake_images
from ganbench.selftest.record import PartRecord

# The device metric path against torch-fidelity's CPU code on the same features (issue 33's tolerances).
# KID: torch-fidelity's float32 sums are themselves ~1e-7 off at these sizes (the CPU toy case: 1.18e-7 from a float64
# KID, ganbench's Gram blocks 3.3e-10), so the check against it allows 1e-6; tests hold ganbench to float64.
AGREEMENT = {"fid": ("relative", 1e-4), "kid": ("absolute", 1e-6), "precision": ("absolute", 2e-4),
             "recall": ("absolute", 2e-4)}


def part_env(record: PartRecord, device: torch.device, data_root: str | None) -> None:
    from ganbench.devices import cpu_capability
    from ganbench.provenance import package_versions

    record.figure("versions", {**package_versions(), "cuda": torch.version.cuda,
                               "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None})
    for module in ("torch_fidelity", "tqdm"):  # a worker needs both; say so here, not at the first evaluation
        try:
            importlib.import_module(module)
            record.check(f"{module} imports", True, "yes")
        except Exception as err:  # noqa: BLE001
            record.check(f"{module} imports", False, f"{type(err).__name__}: {err}")
    record.figure("cpu", {**cpu_capability(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads()})
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        record.figure("gpu", {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                              "free_gib": round(torch.cuda.mem_get_info(device)[0] / 2**30, 1),
                              "multiprocessors": props.multi_processor_count, "visible": torch.cuda.device_count()})
    record.figure("flags", {"cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                            "matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                            "cudnn.benchmark (default; sweep workers turn it on)": torch.backends.cudnn.benchmark})
    _data_and_weights(record, data_root)


def _data_and_weights(record: PartRecord, data_root: str | None) -> None:
    from ganbench.data.datasets import get_dataset
    from ganbench.metrics.extractors import weights_status

    try:
        record.check("Fashion-MNIST found", True, str(get_dataset("fashion-mnist").locate(data_root, download=False)))
    except Exception as err:  # noqa: BLE001 - said, not fatal: a suite of another dataset needs other files
        record.check("Fashion-MNIST found", False, str(err).splitlines()[0])
    record.figure("weights", [{k: row[k] for k in ("extractor", "present", "allows", "path")} for row in weights_status()])


def _rate(k: int, device: torch.device, steps: int, batch: int = 128, **changes: Any) -> dict[str, float]:
    """Run-steps/s of K dcgan runs fused (K = 1 with batch K·128: the dense ceiling), setup seconds, peak GiB."""
    from ganbench.training.fused import FusedTrainer

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    cfgs = [dcgan(s, batch_size=batch, device=str(device), **changes) for s in range(k)]
    trainer = FusedTrainer(cfgs, fake_images(max(4 * batch, 1024), 1, 28, device), device)
    for step in range(1, 4):  # warm-up and (on a GPU) the capture
        trainer.step(step)
    trainer.step(4).tolist()  # waits for the device
    setup = time.perf_counter() - start
    start = time.perf_counter()
    for step in range(5, 5 + steps):
        trainer.step(step)
    trainer.step(5 + steps).tolist()
    out = {"run_steps_per_s": round(k * (steps + 1) / (time.perf_counter() - start), 1), "setup_s": round(setup, 2)}
    if device.type == "cuda":
        out["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return out


def part_engine(record: PartRecord, device: torch.device, toy: bool, out: Path) -> None:
    ks, precisions, steps = ([2], ["fp32"], 2) if toy else ([16, 32, 64, 128], ["fp32", "bf16"], 30)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # what sweep workers run with (training/loop.py)
    rows = []
    for k in ks:
        for precision in precisions:
            row: dict[str, Any] = {"K": k, "precision": precision}
            for label, kwargs in (("ceiling", {"k": 1, "batch": 128 * k}), ("stacked", {"k": k})):
                try:
                    row[label] = _rate(device=device, steps=steps, precision=precision, **kwargs)
                except Exception as err:  # noqa: BLE001 - recorded; the next configuration still runs
                    row[label] = f"unavailable: {type(err).__name__}: {str(err)[:300]}"
            if isinstance(row["stacked"], dict) and isinstance(row["ceiling"], dict):
                row["stacked_vs_ceiling"] = round(row["stacked"]["run_steps_per_s"] / row["ceiling"]["run_steps_per_s"], 3)
            rows.append(row)
            record.figure("engine (run-steps/s)", rows)
    record.check("the engine trains at every K", all(isinstance(r["stacked"], dict) for r in rows),
                 f"{sum(isinstance(r['stacked'], dict) for r in rows)} of {len(rows)} configurations")
    _profile(record, device, 2 if toy else 32, out)


def _profile(record: PartRecord, device: torch.device, k: int, out: Path) -> None:
    """The top kernels of 3 eager steps of K runs (where a step's time goes), as torch's profiler tables them."""
    from torch.profiler import ProfilerActivity, profile

    from ganbench.selftest.checks import fused

    cfgs = [dcgan(s, device=str(device), batch_size=128 if k > 2 else 16) for s in range(k)]
    trainer = fused(cfgs, fake_images(1024, 1, 28, device), device, graphs=False)  # eager: kernels keep their op names
    for step in (1, 2):
        trainer.step(step)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for step in (3, 4, 5):
            trainer.step(step)
        trainer.step(6).tolist()
    sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=20, max_name_column_width=60)
    (out / "engine-profile.txt").write_text(table)
    record.figure(f"profile of K={k} (top kernels)", str(out / "engine-profile.txt"))


def device_path_agreement(generated: torch.Tensor, reference: torch.Tensor, device: torch.device,
                          subset_size: int) -> dict[str, dict[str, float]]:
    """FID, KID and precision/recall of the same features by the device path (`on_device.py`, ganbench's
    `prc`, `kid`) on `device` and by torch-fidelity's own CPU functions: {metric: {ours, theirs,
    seconds}} (seconds: the device path's)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric
    from torch_fidelity.metric_prc import calculate_precision_recall_part

    from ganbench.metrics.kid import KidSettings
    from ganbench.metrics.kid import kid as kid_from_blocks
    from ganbench.metrics.on_device import fid_statistics
    from ganbench.metrics.prc import precision_recall, reference_radii

    kid_args = {"kid_subsets": 100, "kid_subset_size": subset_size, "rng_seed": 0, "verbose": False}
    theirs_ref = fid_features_to_statistics(reference)
    timed: dict[str, Any] = {}

    def clock(name: str, compute: Any) -> Any:
        start = time.perf_counter()
        value = compute()
        timed[name] = time.perf_counter() - start
        return value

    fid = clock("fid", lambda: fid_statistics_to_metric(fid_statistics(generated, device), theirs_ref, False))
    kid = clock("kid", lambda: kid_from_blocks(generated.to(device), reference.to(device),
                                              KidSettings(kid_args["kid_subsets"], subset_size, 0)))
    prc = clock("prc", lambda: precision_recall(generated.to(device), reference.to(device),
                                                reference_radii(reference.to(device), 3, 10_000), 3, 10_000))
    their_fid = fid_statistics_to_metric(fid_features_to_statistics(generated), theirs_ref, False)
    their_kid = kid_features_to_metric(generated, reference, **kid_args)
    their_precision, their_recall = calculate_precision_recall_part(generated, reference, 3, 10_000)
    key = "frechet_inception_distance"
    return {"fid": {"ours": fid[key], "theirs": their_fid[key], "seconds": timed["fid"]},
            "kid": {"ours": kid["kernel_inception_distance_mean"], "theirs": their_kid["kernel_inception_distance_mean"],
                    "seconds": timed["kid"]},
            "precision": {"ours": prc["precision"], "theirs": their_precision, "seconds": timed["prc"]},
            "recall": {"ours": prc["recall"], "theirs": their_recall, "seconds": timed["prc"]}}


def agrees(metric: str, ours: float, theirs: float) -> tuple[bool, float]:
    """(within AGREEMENT's tolerance, the difference measured the way the tolerance is stated)."""
    kind, tolerance = AGREEMENT[metric]
    diff = abs(ours - theirs) / abs(theirs) if kind == "relative" else abs(ours - theirs)
    return diff <= tolerance, diff


def part_eval(record: PartRecord, device: torch.device, toy: bool, suite: Path, data_root: str | None) -> None:
    from ganbench.execution.jobs import run_threads
    from ganbench.metrics.evaluator import evaluate_together, make_evaluator
    from ganbench.models import build_models
    from ganbench.selftest.checks import suite_structures

    run = suite_structures(suite)[0]
    arm, config, threads = run.arm, run.config, run_threads(run)  # a sweep worker's thread count
    torch.set_num_threads(threads)
    k, samples, references = (2, 256, 512) if toy else (4, config.eval_samples, config.eval_reference_samples)
    cfgs = [config.replace(seed=s, device=str(device), eval_samples=samples, eval_reference_samples=references)
            for s in range(k)]
    record.figure("settings", {"suite": str(suite), "arm": arm, "runs": k, "samples": samples, "metrics": config.metrics,
                               "reference_samples": references or "whole split", "torch_threads": threads})
    evaluators = [make_evaluator(c, device, data_root) for c in cfgs]
    nets = []
    for cfg in cfgs:
        torch.manual_seed(cfg.seed)
        nets.append(build_models(cfg)[0].to(device))
    start = time.perf_counter()
    evaluate_together(evaluators[:1], nets[:1], 1, [None])  # extractor, reference features and radii, noise floor
    record.figure("first evaluation of a process, one run (s): builds what later ones reuse", round(time.perf_counter() - start, 2))
    start = time.perf_counter()
    rows = evaluate_together(evaluators, nets, 1, [None] * k)
    seconds = time.perf_counter() - start
    record.figure(f"one evaluation pass of a group of {k} (s)", round(seconds, 2))
    record.figure("per run and pass (s)", round(seconds / k, 3))
    record.check("every run has its metric rows", all(rows), [len(r) for r in rows])
    _pieces(record, device, nets[0], cfgs[0], samples, toy)


def feature_width(cfg: Any) -> int:
    """The width of the features the run's metrics compare: Inception's 2048, else the fmnist classifier's."""
    from ganbench.metrics.classifier import FashionCNN
    from ganbench.metrics.registry import METRICS, parse_metrics

    extractors = {METRICS[name].extractor for name in parse_metrics(cfg.metrics, cfg.dataset)}
    return 2048 if "inception" in extractors else FashionCNN.FEATURES


def feature_extractor(cfg: Any, device: torch.device) -> Any:
    """torch-fidelity's extractor of the run's metrics (its feature layer only), on `device`."""
    from torch_fidelity.utils import create_feature_extractor

    from ganbench.metrics.fidelity import checked_weights
    from ganbench.metrics.registry import METRICS, parse_metrics

    extractor = "inception" if feature_width(cfg) == 2048 else METRICS[parse_metrics(cfg.metrics, cfg.dataset)[0]].extractor
    name, weights = checked_weights(extractor, False, cfg.inception_weights or None)
    layer = "2048" if extractor == "inception" else "features"
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        return create_feature_extractor(name, [layer], cuda=device.type == "cuda", verbose=False,
                                        feature_extractor_weights_path=str(weights.path) if weights.path else None)


def _pieces(record: PartRecord, device: torch.device, net_g: torch.nn.Module, cfg: Any, samples: int, toy: bool) -> None:
    """Generation alone, feature extraction alone, then each metric on features of the suite's sizes, and
    the device path's agreement."""
    from ganbench.metrics.backend import FidelityGenerator
    from ganbench.metrics.fidelity import EVAL_BATCH
    from ganbench.training.update import sample_latent

    source, images = FidelityGenerator(net_g, cfg), []
    start = time.perf_counter()
    for chunk in range(0, samples, EVAL_BATCH):
        images.append(source(sample_latent(cfg, min(EVAL_BATCH, samples - chunk), None, device)))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    record.figure(f"generation of {samples} images (s)", round(time.perf_counter() - start, 3))
    extractor = feature_extractor(cfg, device)
    start = time.perf_counter()
    with torch.no_grad():
        for batch in images:
            extractor(batch)[0].cpu()  # to the host, as `backend.generated_features` does (and it waits)
    record.figure(f"features of {samples} images (s)", round(time.perf_counter() - start, 3))
    width = feature_width(cfg)
    rng = np.random.default_rng(0)
    n = 512 if toy else samples
    generated = torch.from_numpy(rng.normal(0.1, 1.1, (n, width)).astype(np.float32))
    reference = torch.from_numpy(rng.normal(0.0, 1.0, (n, width)).astype(np.float32))
    result = device_path_agreement(generated, reference, device, min(1000, n))
    record.figure(f"metrics on {device.type} of {n} × {width} features (s)", {m: round(v["seconds"], 3) for m, v in result.items()})
    for metric, value in result.items():
        ok, diff = agrees(metric, value["ours"], value["theirs"])
        kind, tolerance = AGREEMENT[metric]
        record.check(f"{metric} on {device.type} = torch-fidelity's", ok, {"ours": value["ours"], "theirs": value["theirs"],
                                                                       "difference": diff}, f"≤ {tolerance:g} {kind}")
