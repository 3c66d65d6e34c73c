"""The CUDA-only failure modes, each caught on the CPU where the logic can be seen: a graph captured on
another device's stream (an empty capture that replays nothing), a worker that cannot import what it
needs, a plan that divides GPU-bound training by the workers sharing the GPU, evaluation that leaves the
device, a group of one trained eagerly, host copies in the step, old checkpoints on a GPU, and the
precision policy a run used."""

from __future__ import annotations

import contextlib
import textwrap

import numpy as np
import pytest
import torch

from conftest import tiny
from ganbench.training.fused import FusedTrainer

CPU = torch.device("cpu")


def group(k: int = 3, **changes):
    cfgs = [tiny(seed=s, **changes) for s in range(k)]
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    return cfgs, images


class FakeStream:
    def __init__(self, device=None):
        self.device = torch.device(device) if device is not None else None

    def wait_stream(self, other):
        pass


def fake_cuda_graphs(monkeypatch, trainer: FusedTrainer, replays: bool) -> dict:
    """torch.cuda's stream and graph API on the CPU. The fake capture records its stream and leaves no
    trace of the computation (as a real capture: captured kernels do not run); its replay runs the
    captured step only if `replays` (an empty capture replays nothing)."""
    seen: dict = {}

    @contextlib.contextmanager
    def graph(cuda_graph, pool=None, stream=None, **kwargs):
        seen["stream"] = stream
        saved = trainer._snapshot()
        yield
        trainer._restore(saved)  # the capture computed nothing

    class Graph:
        def replay(self):
            seen["replays"] = seen.get("replays", 0) + 1
            if replays:
                trainer._compute(trainer._static)

    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: FakeStream(device))
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "graph", graph)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    return seen


@pytest.mark.integration
def test_the_graph_is_captured_on_a_stream_of_the_trainers_own_device(monkeypatch):
    cfgs, images = group()
    trainer = FusedTrainer(cfgs, images, CPU, graphs=True)
    seen = fake_cuda_graphs(monkeypatch, trainer, replays=True)
    before = trainer.g.flat.values.clone()
    trainer.step(1)
    trainer.step(2)
    # without stream=, torch.cuda.graph captures on the *current* device's stream: on a worker bound to
    # cuda:1 with cuda:0 current, an empty graph
    assert seen["stream"] is not None and seen["stream"].device == CPU
    assert seen["replays"] == 2 and not torch.equal(before, trainer.g.flat.values)


def test_a_replay_that_changes_nothing_fails_the_group_loudly(monkeypatch):
    cfgs, images = group()
    trainer = FusedTrainer(cfgs, images, CPU, graphs=True)
    fake_cuda_graphs(monkeypatch, trainer, replays=False)
    with pytest.raises(RuntimeError, match=r"changed no parameter of G or D for run\(s\) \[0, 1, 2\]"):
        trainer.step(1)


def test_an_eager_first_step_that_moves_a_run_nothing_fails_too(monkeypatch):
    cfgs, images = group()
    trainer = FusedTrainer(cfgs, images, CPU, graphs=False)
    adam = type(trainer.d.flat).adam

    def adam_skipping_run_1(self, lr, beta1, beta2, steps, active):
        adam(self, lr, beta1, beta2, steps, active & torch.tensor([True, False, True]))

    monkeypatch.setattr(type(trainer.d.flat), "adam", adam_skipping_run_1)
    with pytest.raises(RuntimeError, match=r"run\(s\) \[1\]"):
        trainer.step(1)


def test_a_stopped_run_is_not_taken_for_a_no_op():
    cfgs, images = group()
    trainer = FusedTrainer(cfgs, images, CPU, graphs=False)
    trainer.stop(1)
    trainer.step(1)  # run 1 stopped before its first step: it must not move, and that is no failure
    assert trainer.active.tolist() == [True, False, True]


def test_a_cuda_run_binds_its_device_before_anything_runs(monkeypatch, tmp_path):
    from ganbench import devices
    from ganbench.training import loop
    from ganbench.training.loop import RunSpec

    bound = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: bound.append(device))
    devices.bind(torch.device("cuda", 1))
    devices.bind(CPU)  # nothing to bind on a CPU
    assert bound == [torch.device("cuda", 1)]

    class Bound(Exception):
        pass

    def stop_at_bind(device):
        raise Bound(device)

    monkeypatch.setattr(devices, "resolve", lambda name: torch.device("cuda", 1))
    monkeypatch.setattr(devices, "bind", stop_at_bind)
    with pytest.raises(Bound, match="cuda:1"):
        loop.train_group([RunSpec(tiny(), tmp_path / "run", None, (), None)])
    with pytest.raises(Bound, match="cuda:1"):
        loop.train(tiny(), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # bound before anything was written


SUITE = """
    name: broken
    dataset: fake
    preset: dcgan
    hacks: [batch_norm]
    design: leave_one_out
    seeds: 1
    steps: 4
    base: {batch_size: 8, log_every: 2, sample_every: 0, checkpoint_every: 0, metrics: none, threads: 1}
"""


def test_a_worker_that_cannot_import_its_stack_stops_the_sweep_before_any_run(tmp_path):
    from ganbench.execution.local import LocalExecutor, WorkerStartError
    from ganbench.execution.sweep import Selection, run_states, select_runs
    from ganbench.study.suite import load_suite

    path = tmp_path / "broken.yaml"
    path.write_text(textwrap.dedent(SUITE))
    suite = load_suite(path, tmp_path / "results")
    states = run_states(suite, select_runs(suite, Selection()))
    executor = LocalExecutor(2, ["cpu"], worker_imports=("ganbench.training.loop", "tqdm_missing_in_this_test"))
    with pytest.raises(WorkerStartError, match="cannot import tqdm_missing_in_this_test: ModuleNotFoundError"):
        executor.execute(states)
    assert all(s.status == "pending" for s in states)
    assert not any((s.run_dir / "status.json").exists() for s in states)  # no run was started


def test_plan_on_a_gpu_does_not_divide_training_by_the_workers_that_share_it():
    from ganbench.execution.costs import parallel_jobs

    assert parallel_jobs(["cpu"], 4)[0] == 4  # one core each
    one_gpu, said = parallel_jobs(["cuda:0"], 4)
    assert one_gpu == 1 and "not divided" in said and "assumed" in said
    assert parallel_jobs(["cuda:0", "cuda:1"], 8)[0] == 2
    assert parallel_jobs(["cuda:0", "cuda:1"], 1)[0] == 1  # one worker uses one GPU at a time


def test_a_group_of_one_trains_as_a_graph_on_a_gpu_and_eagerly_on_a_cpu(monkeypatch):
    from ganbench.training import factory, fused

    made = []
    monkeypatch.setattr(fused, "FusedTrainer", lambda cfgs, images, device: made.append(("fused", len(cfgs))))
    monkeypatch.setattr(factory, "GanTrainer", lambda cfg, images, device: made.append(("single", 1)))
    factory.make_trainer([tiny()], None, torch.device("cuda"))
    factory.make_trainer([tiny()], None, CPU)
    factory.make_trainer([tiny(d_dropout=0.3, g_ema=0.999)], None, torch.device("cuda"))  # trains alone: eager
    assert made == [("fused", 1), ("single", 1), ("single", 1)]


def test_the_eager_trainer_decays_its_rate_on_the_host_without_copying_it():
    """lr decay in GanTrainer: the optimiser reads the host float64 rate the step decays in place (before,
    a capturable Adam on a GPU needed it copied to the device every step: a host synchronisation)."""
    from ganbench.training.single import GanTrainer

    cfg = tiny(lr_decay=0.01)
    trainer = GanTrainer(cfg, torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8), CPU)
    for opt, lr in ((trainer.opt_d, trainer.lr_d), (trainer.opt_g, trainer.lr_g)):
        assert opt.param_groups[0]["lr"] is lr and lr.device == CPU and lr.dtype == torch.float64
        assert not opt.defaults["capturable"]
    trainer.step(1)
    trainer.step(2)
    assert float(trainer.lr_d) == cfg.lr_d * (1 / (1 + 0.01 * 1))
    assert all(state["step"].device == CPU for state in trainer.opt_d.state.values())


def test_no_trainer_copies_a_host_number_to_the_device_per_step(monkeypatch):
    from ganbench.training import update

    # the eager trainer's Adam on a GPU: host lr and steps, nothing captured (it never captures)
    adam = update.make_adam([torch.nn.Parameter(torch.zeros(2))], torch.tensor(1e-3, dtype=torch.float64), tiny(),
                            torch.device("cuda"))
    assert not adam.defaults["capturable"]

    def no_host_tensors(*args, **kwargs):
        raise AssertionError("a tensor made from host numbers in the step (a copy, a sync on a GPU)")

    base, out = torch.full((3,), 2e-4, dtype=torch.float64), torch.empty(3, dtype=torch.float64)
    monkeypatch.setattr(torch, "tensor", no_host_tensors)
    update.decayed_lr(base, 0.01, 4, out)  # one decay for a run
    update.decayed_lr(base, torch.full((3,), 0.01, dtype=torch.float64), 4, out)  # one per run (fused)
    assert torch.allclose(out, base / 1.04)
    cfgs, images = group()
    monkeypatch.undo()
    trainer = FusedTrainer(cfgs, images, CPU)
    monkeypatch.setattr(torch, "tensor", no_host_tensors)
    monkeypatch.setattr(torch.Tensor, "__setitem__", no_host_tensors)  # `active[k] = False` copies a host scalar
    trainer.stop(1)
    assert trainer.active.tolist() == [True, False, True]


def test_old_checkpoints_keep_a_fresh_dropout_stream_on_a_gpu_in_both_trainers():
    from ganbench.training.checkpoint import dropout_state

    old = {"torch_rng": torch.get_rng_state()}  # before dropout_rng: the global CPU RNG
    assert dropout_state(old, torch.device("cuda")) is None  # would be "RNG state is wrong size" there
    assert torch.equal(dropout_state(old, CPU), old["torch_rng"])
    assert torch.equal(dropout_state({"dropout_rng": old["torch_rng"]}, torch.device("cuda")), old["torch_rng"])
    cfgs, images = group(2)
    trainer = FusedTrainer(cfgs, images, CPU)
    state = trainer.state_dict(0)
    state.pop("dropout_rng")
    state["torch_rng"] = torch.get_rng_state()
    trainer.load_state_dict(0, state)  # both trainers go through checkpoint.restore_streams


def test_the_device_metric_path_equals_torch_fidelity_on_the_cpu():
    from ganbench.selftest.figures import AGREEMENT, agrees, device_path_agreement

    rng = np.random.default_rng(3)
    generated = torch.from_numpy(rng.normal(0.1, 1.1, (1200, 64)).astype(np.float32))
    reference = torch.from_numpy(rng.normal(0.0, 1.0, (1500, 64)).astype(np.float32))
    result = device_path_agreement(generated, reference, CPU, 500)
    assert set(result) == set(AGREEMENT)
    for metric, value in result.items():
        ok, diff = agrees(metric, value["ours"], value["theirs"])
        assert ok, (metric, value, diff)
    assert result["fid"]["theirs"] > 1 and 0 < result["precision"]["theirs"] < 1  # not a vacuous agreement


def test_a_run_records_the_precision_policy_it_trained_with(tmp_path):
    from ganbench import rundir
    from ganbench.training.loop import train

    train(tiny(steps=2), tmp_path / "run")
    execution = rundir.read_json(tmp_path / "run" / "config.json")["execution"]
    assert execution["precision_policy"] == {"autocast": "off (fp32)"}
