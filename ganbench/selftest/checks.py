"""The correctness parts: `smoke` (the fused engine's promises on two groups that use every per-run
tensor) and `structures` (every network structure of a suite captured and replayed once).

On a GPU a captured CUDA graph must give what the eager step gives (cuDNN deterministic, TF32 off, so
the two are the same kernels); on a CPU there is no graph, and those checks are skipped with the reason.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from ganbench.selftest.record import PartRecord

GRAPH_VS_EAGER = 1e-4  # relative: the same kernels in the same order, captured or not (TF32 off, deterministic)
RESUME = 1e-5  # relative: a resumed run's next step against the uninterrupted one's (same arithmetic)

# Every per-run tensor of the stacked engine (dropout, slope, smoothing, β1, lr decay, flips, G loss) in
# one group; the mixed real/fake batch (a per-run shuffle), two D steps and fresh latents in the other.
SMOKE_GROUPS: dict[str, list[dict[str, Any]]] = {
    "per_run_tensors": [
        dict(d_dropout=p, g_dropout=q, leaky_slope=s, label_smoothing=ls, beta1=b1, lr_decay=dec, label_flip_p=fl,
             g_loss=gl)
        for p, q, s, ls, b1, dec, fl, gl in [(0.1, 0.1, 0.2, 0.0, 0.5, 0.0, 0.0, "nonsaturating"),
                                             (0.3, 0.2, 0.1, 0.1, 0.9, 1e-3, 0.05, "minimax"),
                                             (0.5, 0.3, 0.2, 0.0, 0.5, 1e-4, 0.0, "nonsaturating"),
                                             (0.2, 0.1, 0.3, 0.2, 0.7, 0.0, 0.1, "minimax")]],
    "mixed_batch_two_d_steps": [dict(d_batch="mixed", d_steps=2, g_latents="fresh", label_smoothing=ls)
                                for ls in (0.0, 0.1, 0.2, 0.0)],
}


def dcgan(seed: int, **changes: Any) -> Any:
    from ganbench.hacks import resolve

    return resolve("dcgan", [], {"metrics": "none", "seed": seed, **changes})[0]


def fake_images(n: int, channels: int, side: int, device: torch.device) -> torch.Tensor:
    """uint8 images of the run's shape (the data path is not what is checked)."""
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, channels, side, side), dtype=torch.uint8, generator=generator).to(device)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float(((a - b).abs() / b.abs().clamp_min(1e-6)).max())


@contextmanager
def exact_kernels(device: torch.device) -> Iterator[None]:
    """cuDNN deterministic, no benchmark, no TF32: a captured graph and the eager step run the same kernels."""
    if device.type != "cuda":
        yield
        return
    flags = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = True, False, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = flags


def fused(cfgs: Sequence[Any], images: torch.Tensor, device: torch.device, graphs: bool) -> Any:
    from ganbench.training.fused import FusedTrainer

    return FusedTrainer(cfgs, images, device, graphs=graphs and device.type == "cuda")


def part_smoke(record: PartRecord, device: torch.device, toy: bool) -> None:
    steps, batch = (4, 16) if toy else (12, 128)
    images = fake_images(64 * batch, 1, 28, device)  # 64 steps an epoch: no epoch boundary (a designed sync)
    cuda = device.type == "cuda"
    with exact_kernels(device):
        for name, changes in SMOKE_GROUPS.items():
            cfgs = [dcgan(seed, batch_size=batch, device=str(device), **c) for seed, c in enumerate(changes)]
            try:
                _smoke_group(record, name, cfgs, images, device, steps)
            except Exception as err:  # noqa: BLE001 - recorded as a failed check; the next group still runs
                record.check(f"{name}: trains", False, f"{type(err).__name__}: {err}")
                record.figure(f"{name}: traceback", traceback.format_exc()[-3000:])
    if cuda:
        _memory(record, device, images)
    else:
        record.skip("graph_vs_eager, sync_free_steady_state, peak memory", "no CUDA graph or GPU memory on a CPU")


def _smoke_group(record: PartRecord, name: str, cfgs: list[Any], images: torch.Tensor, device: torch.device,
                 steps: int) -> None:
    from ganbench.training.single import GanTrainer

    cuda = device.type == "cuda"
    graph, eager = fused(cfgs, images, device, True), fused(cfgs, images, device, False)
    diffs = [relative(graph.step(s), eager.step(s)) for s in range(1, steps + 1)]
    if cuda:
        params = max(relative(a.flat.values, b.flat.values) for a, b in ((graph.g, eager.g), (graph.d, eager.d)))
        record.check(f"{name}: graph = eager (statistics)", max(diffs) <= GRAPH_VS_EAGER, max(diffs),
                     f"≤ {GRAPH_VS_EAGER} relative")
        record.check(f"{name}: graph = eager (parameters)", params <= GRAPH_VS_EAGER, params, f"≤ {GRAPH_VS_EAGER} relative")
    before = [net.flat.values.clone() for net in (graph.g, graph.d)]
    graph.stop(1)
    for step in range(steps + 1, steps + 4):
        graph.step(step)
    moved = [(net.flat.values - old).abs().amax(1) for net, old in zip((graph.g, graph.d), before)]
    frozen = max(float(m[1]) for m in moved)
    others = min(float(torch.cat([m[:1], m[2:]]).min()) for m in moved)
    record.check(f"{name}: a stopped run stays frozen", frozen == 0.0, frozen, "0 change")
    record.check(f"{name}: the other runs still train", others > 0.0, others, "> 0 change")
    fresh = fused(cfgs, images, device, True)
    fresh.load_state_dict(0, eager.state_dict(0))
    resumed = relative(fresh.step(steps + 1)[0], eager.step(steps + 1)[0])
    record.check(f"{name}: resumed run takes the same next step", resumed <= RESUME, resumed, f"≤ {RESUME} relative")
    if cuda:
        record.check(f"{name}: no host sync in steady-state steps", *_sync_free(graph, range(steps + 4, steps + 9)))
    singles = [GanTrainer(c, images, device) for c in cfgs]
    together = fused(cfgs, images, device, True)
    worst = 0.0
    for step in range(1, steps + 1):
        rows = together.step(step)
        worst = max([worst] + [relative(rows[k], single.step(step)[0]) for k, single in enumerate(singles)])
    record.figure(f"{name}: fused vs alone, worst statistic over {steps} steps (relative)", worst)


def _sync_free(trainer: Any, steps: range) -> tuple[bool, str]:
    """Steps under `torch.cuda.set_sync_debug_mode("error")`: any host synchronisation raises."""
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in steps:
            trainer.step(step)
        return True, f"{len(steps)} steps"
    except Exception as err:  # noqa: BLE001 - the sync's place is the finding
        return False, f"{type(err).__name__}: {err}: {traceback.format_exc()[-1200:]}"
    finally:
        torch.cuda.set_sync_debug_mode(0)


def _memory(record: PartRecord, device: torch.device, images: torch.Tensor) -> None:
    """Peak GPU memory per run: a fused group of 32 (graph) against one run alone (what the sweep's
    `auto_max_fused` assumes per run)."""
    from ganbench.training.single import GanTrainer

    figures = {}
    for k in (1, 32):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        cfgs = [dcgan(s, batch_size=128, device=str(device)) for s in range(k)]
        trainer = GanTrainer(cfgs[0], images, device) if k == 1 else fused(cfgs, images, device, True)
        for step in range(1, 6):
            trainer.step(step)
        torch.cuda.synchronize(device)
        figures[f"K={k}"] = {"peak_mib_per_run": round((torch.cuda.max_memory_allocated(device) - base) / 2**20 / k, 1)}
        del trainer
    record.figure("peak memory per run", figures)


def suite_structures(suite_path: Path) -> list[Any]:
    """The first run of each fusion key of a suite (loading it writes nothing)."""
    from ganbench.config import fusion_key
    from ganbench.study.suite import load_suite

    suite = load_suite(suite_path, Path(tempfile.mkdtemp(prefix="ganbench-selftest-")))
    firsts: dict[Any, Any] = {}
    for run in suite.runs:
        firsts.setdefault(fusion_key(run.config), run)
    return [run for key, run in firsts.items() if key is not None]


def part_structures(record: PartRecord, device: torch.device, toy: bool, suite: Path, budget_s: float) -> None:
    from ganbench.config import training_only

    structures = suite_structures(suite)[: 3 if toy else None]
    record.figure("structures", len(structures))
    failed: dict[str, str] = {}
    started, done = time.perf_counter(), 0
    with exact_kernels(device):
        for run in structures:
            arm, config = run.arm, run.config
            if time.perf_counter() - started > budget_s:
                record.skip("the rest", f"time budget {budget_s:g} s reached after {done} of {len(structures)}")
                break
            cfg = training_only(config, device=str(device), **({"batch_size": 16} if toy else {}))
            cfgs = [cfg.replace(seed=s) for s in range(4)]
            try:
                images = fake_images(8 * cfg.batch_size, cfg.channels, cfg.image_size, device)
                graph, eager = fused(cfgs, images, device, True), fused(cfgs, images, device, False)
                diff = max(relative(graph.step(s), eager.step(s)) for s in (1, 2, 3))
                if device.type == "cuda" and not diff <= GRAPH_VS_EAGER:
                    failed[arm] = f"graph vs eager {diff:.3g} relative"
            except Exception as err:  # noqa: BLE001 - one structure's failure is recorded; the loop goes on
                failed[arm] = f"{type(err).__name__}: {str(err)[:300]}"
            done += 1
            record.figure("failed", failed)
    record.check("every structure trains" + (" and replays its graph exactly" if device.type == "cuda" else ""),
                 not failed and done == len(structures), f"{done - len(failed)} of {len(structures)} passed",
                 "all" + (f" (graph = eager ≤ {GRAPH_VS_EAGER})" if device.type == "cuda" else ""))
