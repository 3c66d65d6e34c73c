"""`TrainConfig`: the one object that describes a training run.

Every knob a hack or the trainer needs is a field here, with a trailing comment giving
its unit and its "off" value (the value it has when no hack touches it: the `vanilla`
preset is exactly the defaults). Precedence, lowest first:

    defaults < preset < suite `base` < hacks (in order) < arm `set` < CLI `--set k=v`

Unknown keys and bad values raise `ConfigError` naming the key, the allowed values and,
for typos, the closest valid name.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import typing
from dataclasses import dataclass
from typing import Any, Literal

from ganbench.devices import SYNTAX, is_device_name


class ConfigError(ValueError):
    """A bad knob name or value; the message says which and what would be valid."""


def did_you_mean(name: str, choices: typing.Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass(frozen=True)
class TrainConfig:
    # Data.
    dataset: str = "fashion-mnist"  # dataset name (see `ganbench data list`); off: fashion-mnist
    data_split: Literal["train", "train+test"] = "train"  # images trained on; off: train (test kept for evaluation)
    resize: Literal["center_crop", "squash"] = "center_crop"  # photos: shorter side to image_size then centre crop (seed 002), or squash to a square (seeds 000, 003); off: center_crop
    data_limit: int = 0  # train on the first N images of the split only (seed 003 loads 10 000); 0 = all; off: 0
    data_memory_mb: int = 4096  # training images larger than this (MiB) are memory-mapped, not loaded; 0 = always load; off: 4096
    # Architecture.
    arch: Literal["dcgan28", "radford"] = "dcgan28"  # family: dcgan28 = seed 001's 7→14→28 net, radford = 4→8→…→size; off: dcgan28
    image_size: int = 28  # pixels per side (28 for dcgan28; 32 or 64 for radford); off: 28
    channels: int = 1  # image channels, 1 (gray) or 3 (colour); off: 1
    g_width: int = 0  # generator base channels (feature maps of its last hidden conv); 0 = family default (32 / 64); off: 0
    d_width: int = 0  # discriminator base channels (its first conv); 0 = family default (32 / 64); off: 0
    g_start_side: int = 0  # side of G's first feature map (= D's last); 0 = family default (7 / 4); off: 0
    g_output_layer: Literal["upsample", "conv"] = "upsample"  # G's last layer is the final stride-2 upsampling, or a stride-1 conv after a hidden block at full size (seeds 000, 003); off: upsample
    latent_dim: int = 100  # size of z; off: 100
    latent_dist: Literal["uniform", "gaussian"] = "uniform"  # z ~ U(-1, 1) or N(0, 1); off: uniform
    d_activation: Literal["relu", "leaky_relu"] = "relu"  # hidden activation of D; off: relu
    g_activation: Literal["relu", "leaky_relu"] = "relu"  # hidden activation of G (seed 003: leaky_relu); off: relu
    leaky_slope: float = 0.2  # negative slope of LeakyReLU; off: 0.2
    g_batch_norm: bool = False  # batch norm in G's hidden layers (never on its output layer); off: False
    d_batch_norm: bool = False  # batch norm in D's hidden layers; off: False
    d_input_batch_norm: bool = False  # batch norm on D's first layer too (Radford leaves it out; seed 003 has it); off: False
    d_block_convs: Literal[1, 2] = 1  # convs per D block: 2 adds a stride-1 conv (+BN) before each downsampling (seed 003); off: 1
    d_head: Literal["flatten", "avgpool"] = "flatten"  # D flattens its last map, or global-average-pools it (seed 003); off: flatten
    bn_position: Literal["before_act", "after_act"] = "before_act"  # Radford: conv→BN→act; seed 001: conv→act→BN; off: before_act
    init: Literal["default", "normal_002"] = "default"  # PyTorch's default init or N(0, 0.02) (BN gamma ~ N(1, 0.02)); off: default
    kernel_size: Literal[4, 5] = 5  # conv kernel side in px; off: 5
    sampling: Literal["pooled", "strided"] = "pooled"  # pooled = avg-pool down / nearest-upsample+conv up; off: pooled
    g_fc_hidden: int = 512  # units of G's hidden fully connected layer before the projection; 0 = none; off: 512
    d_fc_hidden: int = 512  # units of D's hidden fully connected layer before the logit; 0 = none; off: 512
    d_dropout: float = 0.0  # dropout probability after each D hidden layer; off: 0.0
    output_activation: Literal["sigmoid", "tanh"] = "sigmoid"  # G's output nonlinearity; off: sigmoid
    spectral_norm: bool = False  # spectral normalisation of every conv/linear weight of D (one power iteration per forward); off: False
    minibatch_std: bool = False  # D appends the minibatch standard deviation as one more feature map before its head; off: False
    g_dropout: float = 0.0  # dropout probability after each hidden layer of G (in training); off: 0.0
    data_range: Literal["auto", "0_1", "-1_1"] = "auto"  # pixel range fed to D; auto follows output_activation; off: auto
    # Optimisation.
    lr_d: float = 2e-4  # Adam learning rate of D; off: 2e-4
    lr_g: float = 2e-4  # Adam learning rate of G; off: 2e-4
    beta1: float = 0.9  # Adam β1 for both nets; off: 0.9 (Adam's default)
    beta2: float = 0.999  # Adam β2 for both nets; off: 0.999
    lr_decay: float = 0.0  # Keras-style inverse-time decay per step, lr_t = lr / (1 + lr_decay·t); off: 0.0
    d_steps: int = 1  # D updates per iteration; off: 1
    g_steps: int = 1  # G updates per iteration; off: 1
    g_loss: Literal["minimax", "nonsaturating"] = "minimax"  # with d_loss=bce: G minimises log(1−D(G(z))) or maximises log D(G(z)); off: minimax
    d_loss: Literal["bce", "hinge", "least_squares", "wasserstein"] = "bce"  # D's objective; G's follows it except under bce (−D(G(z)) for hinge and wasserstein, ½(D(G(z))−1)² for least_squares); off: bce
    gp_weight: float = 0.0  # λ of the WGAN-GP gradient penalty λ·E[(‖∇D(x̂)‖ − 1)²] on real/fake interpolates; off: 0.0
    r1_gamma: float = 0.0  # γ of the R1 penalty γ/2·E[‖∇D(x)‖²] on real images; off: 0.0
    g_ema: float = 0.0  # decay of an exponential moving average of G's weights (warmed up: min(decay, (1+t)/(10+t)) at step t), which then makes samples and metrics; 0 = none; off: 0.0
    instance_noise: float = 0.0  # std of Gaussian noise added to every image D sees, annealed linearly to 0 at the last step; off: 0.0
    diffaugment: Literal["off", "translation,cutout", "color,translation,cutout"] = "off"  # differentiable augmentation of every image D sees, real and fake; off: off
    replay_buffer: int = 0  # past fakes kept; half of each D fake batch is drawn from them; 0 = none; off: 0
    g_latents: Literal["reuse", "fresh"] = "reuse"  # G's first update reuses the D step's fakes (pytorch/examples) or draws new z (Keras seeds); off: reuse
    # Labels of the D loss (BCE on logits, so any target value is numerically safe).
    real_label: float = 1.0  # target for real images before smoothing; off: 1.0
    fake_label: float = 0.0  # target for fake images; off: 0.0
    label_smoothing: float = 0.0  # one-sided: real target = real_label − this; off: 0.0
    real_label_jitter: float = 0.0  # real target += U[0, this) per image (seed 000: 0.05); off: 0.0
    fake_label_jitter: float = 0.0  # fake target += U[0, this) per image (seed 004: 0.3); off: 0.0
    label_flip_p: float = 0.0  # probability that a D target is swapped real↔fake; off: 0.0
    d_batch: Literal["mixed", "separate"] = "mixed"  # one shuffled real+fake batch, or separate real and fake batches; off: mixed
    # Budget and run.
    batch_size: int = 128  # images per batch (real and fake each); off: 128
    steps: int = 1500  # training iterations (each: d_steps D updates, g_steps G updates); off: 1500
    seed: int = 0  # seeds init, data order, latents and label noise; off: 0
    device: str = "auto"  # auto (CUDA when present), cpu, cuda or cuda:N; off: auto
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 = autocast to bfloat16 for convs/matmuls; off: fp32
    threads: int = 0  # torch intra-op CPU threads; 0 = torch's default; off: 0
    # Logging.
    log_every: int = 50  # steps per stats.jsonl row (means over the interval); off: 50
    sample_every: int = 250  # steps per sample grid (also written at the last step); 0 = last step only; off: 250
    sample_grid: int = 64  # images in each sample grid (a square number); off: 64
    checkpoint_every: int = 500  # steps per resumable checkpoint (also at the end); 0 = end only; off: 500
    # Evaluation (metrics.jsonl; the last evaluation also goes into status.json).
    metrics: str = "auto"  # comma-separated metric names, 'auto' (fmnist set on Fashion-MNIST, else fid,kid) or 'none'; off: auto
    eval_every: int = 500  # steps per evaluation (also at the last step); 0 = last step only; off: 500
    eval_samples: int = 5000  # generated images per evaluation; off: 5000
    eval_split: str = "test"  # reference split of the dataset; off: test
    eval_reference_samples: int = 0  # real reference images (a seeded subset); 0 = the whole split; off: 0
    inception_weights: str = ""  # Inception weights file; '' = the resolution order of ganbench.metrics.extractors; off: ''
    eval_draws: int = 3  # independent latent draws at the final evaluation (the run's value is their mean; their spread is the evaluation noise); off: 3
    eval_protocol: str = ""  # a literature protocol the evaluation follows ('lucic2018'; see ganbench.metrics.protocols): its knobs are checked and its name goes into every metric row; '' = none; off: ''
    fid_infinity: bool = False  # also report FID∞ at the final evaluation (Chong & Forsyth 2020: FID at several N, extrapolated to 1/N = 0); off: False

    def __post_init__(self) -> None:
        _check_types(self)
        _check_ranges(self)

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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with `changes` applied (names and values checked)."""
        return apply_overrides(self, changes)


KNOBS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))
_HINTS = typing.get_type_hints(TrainConfig)

# --- Knob categories: the one place that says what each knob is for ---------------------------
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
KNOB_CATEGORIES: dict[str, str] = {
    **dict.fromkeys(("device", "threads", "data_memory_mb"), "execution"),
    **dict.fromkeys(("log_every", "sample_every", "sample_grid", "checkpoint_every"), "cadence"),
    **dict.fromkeys(("metrics", "eval_every", "eval_samples", "eval_split", "eval_reference_samples",
                     "inception_weights", "eval_draws", "fid_infinity", "eval_protocol"), "evaluation"),
    **dict.fromkeys(("dataset", "data_split", "resize", "data_limit", "arch", "image_size", "channels", "g_width",
                     "d_width", "g_start_side", "g_output_layer", "latent_dim", "d_activation", "g_activation",
                     "g_batch_norm", "d_batch_norm", "d_input_batch_norm", "d_block_convs", "d_head", "bn_position",
                     "kernel_size", "sampling", "g_fc_hidden", "d_fc_hidden", "d_dropout", "output_activation",
                     "d_steps", "g_steps", "g_latents", "d_batch", "batch_size", "precision", "spectral_norm",
                     "minibatch_std", "g_dropout", "d_loss", "gp_weight", "r1_gamma", "g_ema", "instance_noise",
                     "diffaugment", "replay_buffer"), "structure"),
    **dict.fromkeys(("latent_dist", "leaky_slope", "init", "data_range", "lr_d", "lr_g", "beta1", "beta2",
                     "lr_decay", "g_loss", "real_label", "fake_label", "label_smoothing", "real_label_jitter",
                     "fake_label_jitter", "label_flip_p", "steps", "seed"), "numeric"),
}
CATEGORIES = ("execution", "cadence", "evaluation", "structure", "numeric")


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
    default is therefore a breaking change: it must bump RUN_ID_VERSION.)
    """
    defaults = TrainConfig().to_dict()
    knobs = {k: v for k, v in cfg.to_dict().items() if k in IDENTITY_KNOBS and v != defaults[k]}
    payload = json.dumps({"version": RUN_ID_VERSION, "knobs": knobs}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def structure_key(cfg: TrainConfig) -> tuple[Any, ...]:
    """Runs with equal keys have the same shapes and control flow (fusable; same step cost)."""
    return tuple(getattr(cfg, k) for k in STRUCTURE_KNOBS)


# Structure knobs the fused trainer does not implement: a run that sets one away from its default
# trains alone (GanTrainer). Dropout masks would have to be drawn per run outside the batched
# forward; the others add state or passes (penalties, EMA, replay) the stacked update lacks.
NOT_FUSED = ("d_dropout", "g_dropout", "spectral_norm", "minibatch_std", "d_loss", "gp_weight", "r1_gamma", "g_ema",
             "instance_noise", "diffaugment", "replay_buffer")


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
        allowed = f"one of {list(choices)}" if choices else f"a {kind.__name__}"
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


def _check_types(cfg: TrainConfig) -> None:
    for name in KNOBS:
        value = getattr(cfg, name)
        choices = knob_choices(name)
        if choices is not None:
            if value not in choices or type(value) is not type(choices[0]):
                hint = did_you_mean(str(value), [str(c) for c in choices])
                raise ConfigError(f"bad value {value!r} for '{name}': expected one of {list(choices)}{hint}")
            continue
        kind = _HINTS[name]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise ConfigError(f"bad value {value!r} for '{name}': expected a {kind.__name__}")


def _check_ranges(cfg: TrainConfig) -> None:
    def need(ok: bool, name: str, rule: str) -> None:
        if not ok:
            raise ConfigError(f"bad value {getattr(cfg, name)!r} for '{name}': must be {rule}")

    for name in ("latent_dim", "batch_size", "steps", "d_steps", "g_steps", "log_every", "sample_grid", "eval_samples",
                 "eval_draws"):
        need(getattr(cfg, name) >= 1, name, ">= 1")
    for name in ("g_width", "d_width", "g_fc_hidden", "d_fc_hidden", "threads", "sample_every", "checkpoint_every", "seed",
                 "eval_every", "eval_reference_samples", "g_start_side", "data_limit", "data_memory_mb"):
        need(getattr(cfg, name) >= 0, name, ">= 0")
    for name in ("lr_d", "lr_g"):
        need(getattr(cfg, name) > 0.0, name, "> 0")
    for name in ("beta1", "beta2"):
        need(0.0 <= getattr(cfg, name) < 1.0, name, "in [0, 1)")
    for name in ("d_dropout", "g_dropout", "label_flip_p"):
        need(0.0 <= getattr(cfg, name) < 1.0, name, "in [0, 1)")
    for name in ("lr_decay", "label_smoothing", "real_label_jitter", "fake_label_jitter", "leaky_slope", "gp_weight",
                 "r1_gamma", "instance_noise", "replay_buffer"):
        need(getattr(cfg, name) >= 0.0, name, ">= 0")
    need(0.0 <= cfg.g_ema < 1.0, "g_ema", "in [0, 1) (a decay such as 0.999; 0 = no EMA)")
    need(cfg.channels in (1, 3), "channels", "1 or 3")
    need(int(cfg.sample_grid**0.5) ** 2 == cfg.sample_grid, "sample_grid", "a square number (16, 64, 256, …)")
    sizes = (28,) if cfg.arch == "dcgan28" else (32, 64)
    need(cfg.image_size in sizes, "image_size", f"one of {list(sizes)} for arch '{cfg.arch}'")
    ratio = cfg.image_size // max(cfg.start_side, 1)
    need(cfg.image_size % max(cfg.start_side, 1) == 0 and ratio >= 2 and ratio & (ratio - 1) == 0, "g_start_side",
         f"image_size ({cfg.image_size}) / 2^k for some k >= 1, e.g. 4 or 8 at 64 px")
    need(is_device_name(cfg.device), "device", SYNTAX)
    need(cfg.batch_size >= 2 or not (cfg.g_batch_norm or cfg.d_batch_norm or cfg.d_input_batch_norm), "batch_size",
         ">= 2 with batch norm (a batch of one image has no batch statistics)")
    from ganbench.metrics.registry import check_evaluation  # lazy: the registry imports this module

    check_evaluation(cfg)  # an unknown metric, too few images or FID∞ without FID fail now, naming the knob
    if cfg.eval_protocol:
        from ganbench.metrics.protocols import protocol_problems

        problems = protocol_problems(cfg.eval_protocol, cfg.to_dict())  # an unknown name raises, with a suggestion
        need(not problems, "eval_protocol", "followed by the evaluation knobs: " + "; ".join(problems))
    from ganbench.data.datasets import get_dataset  # here, not at import: the registry imports this module

    get_dataset(cfg.dataset)  # an unknown name fails now, with a suggestion, before anything is written


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



if set(KNOB_CATEGORIES) != set(KNOBS):  # a new knob must say what it is for
    raise AssertionError(f"knobs without a category: {sorted(set(KNOBS) - set(KNOB_CATEGORIES))}; "
                         f"categories of removed knobs: {sorted(set(KNOB_CATEGORIES) - set(KNOBS))}")
