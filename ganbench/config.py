"""`TrainConfig`: the one object that describes a training run.

Every knob a hack or the trainer needs is a field here, with a trailing comment giving
its unit and its "off" value (the value it has when no hack touches it: the `vanilla`
preset is exactly the defaults). Precedence, lowest first:

    defaults < preset < suite `base` < hacks (in order) < arm `set` < CLI `--set k=v`

Unknown keys and bad values raise `ConfigError` naming the key, the allowed values and,
for typos, the closest valid name.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass
from typing import Any, Callable, Literal

from ganbench.errors import ConfigError, did_you_mean
from ganbench.knob_checks import KIND_WORDS, broken_rule, range_words, type_problem, within

__all__ = ["ConfigError", "did_you_mean", "TrainConfig", "knob", "run_id", "fusion_key"]  # ConfigError's home is errors.py

# --- Knob categories: what each knob is for (every field's `knob(default, category, …)` says one) ---
#
# execution  how a run executes, not what it computes: left out of the run id, so a suite can
#            move between machines and still find its finished runs. (The CPU thread count does
#            change float reductions: sweeps therefore train single-threaded unless a suite sets
#            `threads`, and a resumed run keeps the thread count it started with.)
# cadence    when a run logs, samples and checkpoints. In the run id: they decide what its files
#            hold (stats rows are interval means), although the training trajectory is the same.
# evaluation what a run measures (metrics, samples, reference). In the run id; training unchanged.
# structure  network shapes, control flow and the data: runs that differ here cannot be trained
#            as one fused network (this tuple is the fusion key) and cost different time per step.
# numeric    only numbers (rates, label targets, seeds, distributions): a fused trainer holds them
#            as per-run tensors, so runs of different arms fuse.
CATEGORIES = ("execution", "cadence", "evaluation", "structure", "numeric")


def knob(default: Any, category: str, *, at_least: float | None = None, above: float | None = None,
         below: float | None = None, note: str = "", fuses: bool = True,
         shape: Callable[[Any], Any] | None = None) -> Any:
    """A `TrainConfig` field with everything the package knows about the knob, in one place:
    its default ("off") value, its category, its range (`at_least` <= value, `above` < value,
    value < `below`, `note` explains the rule) and whether the fused trainer implements it (a run
    that sets a `fuses=False` knob away from its default trains alone). `shape`: the knob changes the
    networks only through shape(value) (dropout: bool); runs that agree on it fuse, values per run."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown knob category '{category}'{did_you_mean(category, CATEGORIES)}")
    if not fuses and category != "structure":
        raise ValueError("only a structure knob can keep a run out of a fused group")
    return dataclasses.field(default=default, metadata={
        "category": category, "at_least": at_least, "above": above, "below": below, "note": note, "fuses": fuses,
        "shape": shape})


@dataclass(frozen=True)
class TrainConfig:
    # Data.
    dataset: str = knob("fashion-mnist", "structure")  # dataset name (see `ganbench data list`); off: fashion-mnist
    data_split: Literal["train", "train+test"] = knob("train", "structure")  # images trained on; off: train (test kept for evaluation)
    resize: Literal["center_crop", "squash"] = knob("center_crop", "structure")  # photos: shorter side to image_size then centre crop (seed 002), or squash to a square (seeds 000, 003); off: center_crop
    data_limit: int = knob(0, "structure", at_least=0)  # train on the first N images of the split only (seed 003 loads 10 000); 0 = all; off: 0
    data_memory_mb: int = knob(4096, "execution", at_least=0)  # training images larger than this (MiB) are memory-mapped, not loaded; 0 = always load; off: 4096
    # Architecture.
    arch: Literal["dcgan28", "radford"] = knob("dcgan28", "structure")  # family: dcgan28 = seed 001's 7→14→28 net, radford = 4→8→…→size; off: dcgan28
    image_size: int = knob(28, "structure")  # pixels per side (28 for dcgan28; 32 or 64 for radford); off: 28
    channels: int = knob(1, "structure")  # image channels, 1 (gray) or 3 (colour); off: 1
    g_width: int = knob(0, "structure", at_least=0)  # generator base channels (feature maps of its last hidden conv); 0 = family default (32 / 64); off: 0
    d_width: int = knob(0, "structure", at_least=0)  # discriminator base channels (its first conv); 0 = family default (32 / 64); off: 0
    g_start_side: int = knob(0, "structure", at_least=0)  # side of G's first feature map (= D's last); 0 = family default (7 / 4); off: 0
    g_output_layer: Literal["upsample", "conv"] = knob("upsample", "structure")  # G's last layer is the final stride-2 upsampling, or a stride-1 conv after a hidden block at full size (seeds 000, 003); off: upsample
    latent_dim: int = knob(100, "structure", at_least=1)  # size of z; off: 100
    latent_dist: Literal["uniform", "gaussian"] = knob("uniform", "numeric")  # z ~ U(-1, 1) or N(0, 1); off: uniform
    d_activation: Literal["relu", "leaky_relu"] = knob("relu", "structure")  # hidden activation of D; off: relu
    g_activation: Literal["relu", "leaky_relu"] = knob("relu", "structure")  # hidden activation of G (seed 003: leaky_relu); off: relu
    leaky_slope: float = knob(0.2, "numeric", at_least=0)  # negative slope of LeakyReLU; off: 0.2
    g_batch_norm: bool = knob(False, "structure")  # batch norm in G's hidden layers (never on its output layer); off: False
    d_batch_norm: bool = knob(False, "structure")  # batch norm in D's hidden layers; off: False
    d_input_batch_norm: bool = knob(False, "structure")  # batch norm on D's first layer too (Radford leaves it out; seed 003 has it); off: False
    d_block_convs: Literal[1, 2] = knob(1, "structure")  # convs per D block: 2 adds a stride-1 conv (+BN) before each downsampling (seed 003); off: 1
    d_head: Literal["flatten", "avgpool"] = knob("flatten", "structure")  # D flattens its last map, or global-average-pools it (seed 003); off: flatten
    bn_position: Literal["before_act", "after_act"] = knob("before_act", "structure")  # Radford: conv→BN→act; seed 001: conv→act→BN; off: before_act
    init: Literal["default", "normal_002"] = knob("default", "numeric")  # PyTorch's default init or N(0, 0.02) (BN gamma ~ N(1, 0.02)); off: default
    kernel_size: Literal[4, 5] = knob(5, "structure")  # conv kernel side in px; off: 5
    sampling: Literal["pooled", "strided"] = knob("pooled", "structure")  # pooled = avg-pool down / nearest-upsample+conv up; off: pooled
    g_fc_hidden: int = knob(512, "structure", at_least=0)  # units of G's hidden fully connected layer before the projection; 0 = none; off: 512
    d_fc_hidden: int = knob(512, "structure", at_least=0)  # units of D's hidden fully connected layer before the logit; 0 = none; off: 512
    d_dropout: float = knob(0.0, "structure", at_least=0, below=1, shape=bool)  # dropout probability after each D hidden layer; off: 0.0
    output_activation: Literal["sigmoid", "tanh"] = knob("sigmoid", "structure")  # G's output nonlinearity; off: sigmoid
    spectral_norm: bool = knob(False, "structure", fuses=False)  # spectral normalisation of every conv/linear weight of D (one power iteration per forward); off: False
    minibatch_std: bool = knob(False, "structure", fuses=False)  # D appends the minibatch standard deviation as one more feature map before its head; off: False
    g_dropout: float = knob(0.0, "structure", at_least=0, below=1, shape=bool)  # dropout probability after each hidden layer of G (in training); off: 0.0
    data_range: Literal["auto", "0_1", "-1_1"] = knob("auto", "numeric")  # pixel range fed to D; auto follows output_activation; off: auto
    # Optimisation.
    lr_d: float = knob(2e-4, "numeric", above=0)  # Adam learning rate of D; off: 2e-4
    lr_g: float = knob(2e-4, "numeric", above=0)  # Adam learning rate of G; off: 2e-4
    beta1: float = knob(0.9, "numeric", at_least=0, below=1)  # Adam β1 for both nets; off: 0.9 (Adam's default)
    beta2: float = knob(0.999, "numeric", at_least=0, below=1)  # Adam β2 for both nets; off: 0.999
    lr_decay: float = knob(0.0, "numeric", at_least=0)  # Keras-style inverse-time decay per step, lr_t = lr / (1 + lr_decay·t); off: 0.0
    d_steps: int = knob(1, "structure", at_least=1)  # D updates per iteration; off: 1
    g_steps: int = knob(1, "structure", at_least=1)  # G updates per iteration; off: 1
    g_loss: Literal["minimax", "nonsaturating"] = knob("minimax", "numeric")  # with d_loss=bce: G minimises log(1−D(G(z))) or maximises log D(G(z)); off: minimax
    d_loss: Literal["bce", "hinge", "least_squares", "wasserstein"] = knob("bce", "structure", fuses=False)  # D's objective; G's follows it except under bce (−D(G(z)) for hinge and wasserstein, ½(D(G(z))−1)² for least_squares); off: bce
    gp_weight: float = knob(0.0, "structure", at_least=0, fuses=False)  # λ of the WGAN-GP gradient penalty λ·E[(‖∇D(x̂)‖ − 1)²] on real/fake interpolates; off: 0.0
    r1_gamma: float = knob(0.0, "structure", at_least=0, fuses=False)  # γ of the R1 penalty γ/2·E[‖∇D(x)‖²] on real images; off: 0.0
    g_ema: float = knob(0.0, "structure", at_least=0, below=1, note="a decay such as 0.999; 0 = no EMA", fuses=False)  # decay of an exponential moving average of G's weights (warmed up: min(decay, (1+t)/(10+t)) at step t), which then makes samples and metrics; 0 = none; off: 0.0
    instance_noise: float = knob(0.0, "structure", at_least=0, fuses=False)  # std of Gaussian noise added to every image D sees, annealed linearly to 0 at the last step; off: 0.0
    diffaugment: Literal["off", "translation,cutout", "color,translation,cutout"] = knob("off", "structure", fuses=False)  # differentiable augmentation of every image D sees, real and fake; off: off
    replay_buffer: int = knob(0, "structure", at_least=0, fuses=False)  # past fakes kept; half of each D fake batch is drawn from them; 0 = none; off: 0
    g_latents: Literal["reuse", "fresh"] = knob("reuse", "structure")  # G's first update reuses the D step's fakes (pytorch/examples) or draws new z (Keras seeds); off: reuse
    # Labels of the D loss (BCE on logits, so any target value is numerically safe).
    real_label: float = knob(1.0, "numeric")  # target for real images before smoothing; off: 1.0
    fake_label: float = knob(0.0, "numeric")  # target for fake images; off: 0.0
    label_smoothing: float = knob(0.0, "numeric", at_least=0)  # one-sided: real target = real_label − this; off: 0.0
    real_label_jitter: float = knob(0.0, "numeric", at_least=0)  # real target += U[0, this) per image (seed 000: 0.05); off: 0.0
    fake_label_jitter: float = knob(0.0, "numeric", at_least=0)  # fake target += U[0, this) per image (seed 004: 0.3); off: 0.0
    label_flip_p: float = knob(0.0, "numeric", at_least=0, below=1)  # probability that a D target is swapped real↔fake; off: 0.0
    d_batch: Literal["mixed", "separate"] = knob("mixed", "structure")  # one shuffled real+fake batch, or separate real and fake batches; off: mixed
    # Budget and run.
    batch_size: int = knob(128, "structure", at_least=1)  # images per batch (real and fake each); off: 128
    steps: int = knob(1500, "numeric", at_least=1)  # training iterations (each: d_steps D updates, g_steps G updates); off: 1500
    seed: int = knob(0, "numeric", at_least=0, below=2**63, note="torch takes 64-bit seeds; ganbench offsets them")  # seeds init, data order, latents and label noise; off: 0
    device: str = knob("auto", "execution")  # auto (CUDA when present), cpu, cuda or cuda:N; off: auto
    precision: Literal["fp32", "bf16"] = knob("fp32", "structure")  # bf16 = autocast to bfloat16 for convs/matmuls; off: fp32
    threads: int = knob(0, "execution", at_least=0)  # torch intra-op CPU threads; 0 = torch's default; off: 0
    # Logging.
    log_every: int = knob(50, "cadence", at_least=1)  # steps per stats.jsonl row (means over the interval); off: 50
    sample_every: int = knob(250, "cadence", at_least=0)  # steps per sample grid (also written at the last step); 0 = last step only; off: 250
    sample_grid: int = knob(64, "cadence", at_least=1)  # images in each sample grid (a square number); off: 64
    checkpoint_every: int = knob(500, "cadence", at_least=0)  # steps per resumable checkpoint (also at the end); 0 = end only; off: 500
    # Evaluation (metrics.jsonl; the last evaluation also goes into status.json).
    metrics: str = knob("auto", "evaluation")  # comma-separated metric names, 'auto' (fmnist set on Fashion-MNIST, else fid,kid) or 'none'; off: auto
    eval_every: int = knob(500, "evaluation", at_least=0)  # steps per evaluation (also at the last step); 0 = last step only; off: 500
    eval_samples: int = knob(5000, "evaluation", at_least=1)  # generated images per evaluation; off: 5000
    eval_split: str = knob("test", "evaluation")  # reference split of the dataset; off: test
    eval_reference_samples: int = knob(0, "evaluation", at_least=0)  # real reference images (a seeded subset); 0 = the whole split; off: 0
    inception_weights: str = knob("", "evaluation")  # Inception weights file; '' = the resolution order of ganbench.metrics.extractors; off: ''
    eval_draws: int = knob(3, "evaluation", at_least=1)  # independent latent draws at the final evaluation (the run's value is their mean; their spread is the evaluation noise); off: 3
    eval_protocol: str = knob("", "evaluation")  # a literature protocol the evaluation follows ('lucic2018'; see ganbench.metrics.protocols): its knobs are checked and its name goes into every metric row; '' = none; off: ''
    fid_infinity: bool = knob(False, "evaluation")  # also report FID∞ at the final evaluation (Chong & Forsyth 2020: FID at several N, extrapolated to 1/N = 0); off: False

    def __post_init__(self) -> None:
        _check(self)

    # Derived values: functions of knobs, never knobs themselves.
    @property
    def pixel_range(self) -> tuple[float, float]:
        """(low, high) of the images D sees and G must produce."""
        mode = self.data_range
        if mode == "auto":
            mode = "-1_1" if self.output_activation == "tanh" else "0_1"
        return (-1.0, 1.0) if mode == "-1_1" else (0.0, 1.0)

    @property
    def start_side(self) -> int:
        """Side of G's first feature map after resolving the family default."""
        return self.g_start_side or (7 if self.arch == "dcgan28" else 4)

    @property
    def base_widths(self) -> tuple[int, int]:
        """(G, D) base channel counts after resolving the family defaults."""
        default = 32 if self.arch == "dcgan28" else 64
        return (self.g_width or default, self.d_width or default)

    @property
    def real_target(self) -> float:
        """The real class's BCE target after one-sided smoothing (before jitter and flips)."""
        return self.real_label - self.label_smoothing

    def expected_targets(self) -> tuple[float, float]:
        """(real, fake) BCE targets in expectation over jitter and flips (`training.update.draw_targets`
        draws them; a flipped target is the other class's un-jittered one)."""
        real = self.real_target + self.real_label_jitter / 2
        fake = self.fake_label + self.fake_label_jitter / 2
        flip = self.label_flip_p
        return (1 - flip) * real + flip * self.fake_label, (1 - flip) * fake + flip * self.real_target

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with `changes` applied (names and values checked)."""
        return apply_overrides(self, changes)

    def with_seed(self, seed: Any) -> "TrainConfig":
        """A copy with another seed, only that knob checked: a suite makes a copy per arm and seed, and
        checking every knob again cost a millisecond a run (100 s for a 100 000-run suite)."""
        problem = knob_type_problem("seed", seed) or (
            None if in_range("seed", seed) else f"bad value {seed!r} for 'seed': must be {range_rule('seed')}")
        if problem:
            raise ConfigError(problem)
        clone = copy.copy(self)
        object.__setattr__(clone, "seed", seed)  # frozen: the one sanctioned write, on a fresh copy
        return clone


KNOBS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))
_HINTS = typing.get_type_hints(TrainConfig)

_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
KNOB_CATEGORIES: dict[str, str] = {name: f.metadata["category"] for name, f in _FIELDS.items()}


def knobs_in(*categories: str) -> tuple[str, ...]:
    """The knobs of the given categories, in TrainConfig's order."""
    for category in categories:
        if category not in CATEGORIES:
            raise ValueError(f"unknown knob category '{category}'{did_you_mean(category, CATEGORIES)}")
    return tuple(k for k in KNOBS if KNOB_CATEGORIES[k] in categories)


EXECUTION_KNOBS = knobs_in("execution")
IDENTITY_KNOBS = knobs_in("cadence", "evaluation", "structure", "numeric")  # what the run id hashes
STRUCTURE_KNOBS = knobs_in("structure")


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}  # every default is a plain value
RUN_ID_VERSION = 2  # 2: eval_draws (default 3) changed what a run's final evaluation holds


def run_id(cfg: TrainConfig) -> str:
    """A hash of everything that determines a run's results and files (identity knobs, seed included).

    Only knobs that differ from their default ("off") value enter the hash, so adding a
    knob whose default keeps the old behaviour leaves existing run ids valid. (Changing a
    default is therefore a breaking change: it must bump RUN_ID_VERSION.) Knob values are plain
    (numbers, text, bools), so reading them directly equals `to_dict()` without its deep copy.
    """
    knobs = {k: getattr(cfg, k) for k in IDENTITY_KNOBS if getattr(cfg, k) != _DEFAULTS[k]}
    payload = json.dumps({"version": RUN_ID_VERSION, "knobs": knobs}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def structure_key(cfg: TrainConfig) -> tuple[Any, ...]:
    """Runs with equal keys have the same shapes and control flow (fusable; same step cost); a knob
    declared with `shape=` enters through it (dropout: on or off; its probability is per run)."""
    return tuple(_SHAPES[k](getattr(cfg, k)) if k in _SHAPES else getattr(cfg, k) for k in STRUCTURE_KNOBS)

_SHAPES = {name: f.metadata["shape"] for name, f in _FIELDS.items() if f.metadata["shape"] is not None}


# Structure knobs the fused trainer does not implement (`fuses=False`): a run that sets one away from
# its default trains alone (GanTrainer): they add state or passes (penalties, EMA, replay, spectral
# norm's power iteration, the minibatch statistic) the stacked update lacks.
NOT_FUSED = tuple(name for name, f in _FIELDS.items() if not f.metadata["fuses"])


def trains_alone(cfg: TrainConfig) -> tuple[str, ...]:
    """The knobs that keep this run out of a fused group (empty: it can fuse)."""
    return tuple(k for k in NOT_FUSED if getattr(cfg, k) != _DEFAULTS[k])


def fusion_key(cfg: TrainConfig) -> tuple[Any, ...] | None:
    """Runs with equal keys can be trained as one fused network; None: this run trains alone
    (`trains_alone` says why). The thread count changes CPU numbers, so it is part of the key; so
    is the checkpoint interval (see below)."""
    if trains_alone(cfg):
        return None
    # checkpoint_every too: runs of one group must checkpoint at the same steps, or a resume after a
    # kill finds them at different steps and has to split the group (other numbers than uninterrupted)
    return structure_key(cfg) + (cfg.threads, cfg.checkpoint_every)


def training_only(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """`cfg` with evaluation off (and so no evaluation protocol to follow, nor FID∞), for timing or
    counting its training step."""
    return cfg.replace(metrics="none", eval_protocol="", fid_infinity=False, **changes)


def knob_choices(name: str) -> tuple[Any, ...] | None:
    """The allowed values of a `Literal` knob, else None."""
    hint = _HINTS[name]
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else None


def check_knob(name: str) -> None:
    if name not in KNOBS:
        raise ConfigError(f"unknown knob '{name}'{did_you_mean(name, KNOBS)}; see `ganbench knobs`")


def parse_value(name: str, raw: Any) -> Any:
    """Convert `raw` (a CLI/YAML string or a Python value) to the knob's type and check its choices."""
    check_knob(name)
    choices = knob_choices(name)
    kind = type(choices[0]) if choices else _HINTS[name]
    try:
        value = _convert(raw, kind)
        if choices is not None and value not in choices:
            raise ValueError
        return value
    except (TypeError, ValueError):
        allowed = f"one of {list(choices)}" if choices else KIND_WORDS.get(kind, kind.__name__)
        hint = did_you_mean(str(raw), [str(c) for c in choices]) if choices else ""
        raise ConfigError(f"bad value {raw!r} for '{name}': expected {allowed}{hint}") from None


def _convert(raw: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(raw)
    if isinstance(raw, bool):  # YAML's `yes` is not a number
        raise ValueError(raw)
    if kind is int:
        if isinstance(raw, float) and not raw.is_integer():
            raise ValueError(raw)
        return int(raw.strip()) if isinstance(raw, str) else int(raw)
    if kind is float:
        return float(raw)
    return raw.strip() if isinstance(raw, str) else raw


def apply_overrides(cfg: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """`cfg` with `overrides` applied; every name and value is checked."""
    parsed = {name: parse_value(name, value) for name, value in overrides.items()}
    return dataclasses.replace(cfg, **parsed)


def parse_assignments(items: typing.Iterable[str]) -> dict[str, Any]:
    """['k=v', ...] → {'k': parsed v}; the CLI's `--set` syntax."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--set expects knob=value, got {item!r}")
        out[name.strip()] = parse_value(name.strip(), value)
    return out


def knob_type_problem(name: str, value: Any) -> str | None:
    """Why `value` cannot be knob `name`'s value by its type (or choices), or None."""
    return type_problem(name, value, _HINTS[name], knob_choices(name))


def in_range(name: str, value: float) -> bool:
    """Whether `value` lies in knob `name`'s declared range."""
    return within(_FIELDS[name].metadata, value)


def range_rule(name: str) -> str | None:
    """A knob's declared range in words ('>= 1', 'in [0, 1)', …), None when it declares none."""
    return range_words(_FIELDS[name].metadata)


def _check(cfg: TrainConfig) -> None:
    """Every knob's type, then its range, then the rules between knobs: the first problem, named."""
    for name in KNOBS:
        problem = knob_type_problem(name, getattr(cfg, name))
        if problem:
            raise ConfigError(problem)
    for name in KNOBS:
        rule = range_rule(name)
        if rule is not None and not within(_FIELDS[name].metadata, getattr(cfg, name)):
            raise ConfigError(f"bad value {getattr(cfg, name)!r} for '{name}': must be {rule}")
    broken = broken_rule(cfg)
    if broken:
        raise ConfigError(f"bad value {getattr(cfg, broken[0])!r} for '{broken[0]}': must be {broken[1]}")


def knob_docs() -> dict[str, str]:
    """knob → its trailing comment in this file (unit and off value), for `ganbench knobs`."""
    import inspect

    docs: dict[str, str] = {}
    for line in inspect.getsource(TrainConfig).splitlines():
        head, _, comment = line.partition("  # ")
        name = head.strip().split(":")[0]
        if name in KNOBS and comment:
            docs[name] = comment.strip()
    return docs
