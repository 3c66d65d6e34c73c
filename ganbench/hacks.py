"""The registry of GAN training hacks and the presets built from them.

A hack is data: a name, a one-line summary, the source it comes from, and the knob
values it sets on `TrainConfig`. The trainer never sees hack names, only knobs, so a
run's config.json fully describes it. To add your own hack:

    register_hack(Hack(
        name="my_hack",
        summary="What it does, in one line.",
        source="Author et al. 2024, §3 (or a ganhacks item, or a seed tutorial)",
        sets={"lr_d": 4e-4},
        tags=("optimiser",),
    ))
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ganbench.checks import check_resolved
from ganbench.config import TrainConfig, parse_value
from ganbench.data.datasets import get_dataset
from ganbench.errors import ConfigError, Registry

RADFORD = "Radford, Metz & Chintala 2015, 'Unsupervised Representation Learning with DCGANs' (arXiv:1511.06434)"
GANHACKS = "Chintala et al., 'How to Train a GAN? Tips and tricks' (github.com/soumith/ganhacks)"
SALIMANS = "Salimans et al. 2016, 'Improved Techniques for Training GANs' (arXiv:1606.03498)"
GOODFELLOW = "Goodfellow et al. 2014, 'Generative Adversarial Nets' (arXiv:1406.2661)"
HEUSEL = "Heusel et al. 2017, 'GANs Trained by a Two Time-Scale Update Rule' (arXiv:1706.08500)"
SEED_000 = "seed 000: PyImageSearch 2021, 'GAN Training Challenges: DCGAN for Color Images'"
SEED_001 = "seed 001: PyImageSearch 2020, 'GANs with Keras and TensorFlow' (citing Chollet 2017)"
SEED_004 = "seed 004: Machine Learning Mastery 2019, 'How to Implement GAN Hacks in Keras'"
MIYATO = "Miyato et al. 2018, 'Spectral Normalization for Generative Adversarial Networks' (arXiv:1802.05957)"
KARRAS = "Karras et al. 2018, 'Progressive Growing of GANs' (arXiv:1710.10196)"


@dataclass(frozen=True)
class Hack:
    name: str  # registry key, snake_case
    summary: str  # one line: what turning it on changes
    source: str  # where the folklore comes from (paper, ganhacks item, seed tutorial)
    sets: Mapping[str, Any]  # knob → value when the hack is on
    tags: tuple[str, ...] = field(default=())  # e.g. architecture, optimiser, labels, loss


def _check_hack(name: str, hack: Hack) -> None:
    """A hack must be an identifier, cite its source and set knobs that exist, to values they allow."""
    if not name.isidentifier() or name != hack.name:
        raise ConfigError(f"hack name {name!r} must be a non-empty identifier")
    if not hack.source.strip():
        raise ConfigError(f"hack '{name}' needs a non-empty source (paper, ganhacks item or seed)")
    if not hack.sets:
        raise ConfigError(f"hack '{name}' sets no knob")


def _check_preset(name: str, hacks: tuple[str, ...]) -> None:
    for hack in hacks:
        HACKS[hack]  # an unknown hack fails, with a suggestion


HACKS: Registry[Hack] = Registry("hack", "see `ganbench hacks`", _check_hack)
PRESETS: Registry[tuple[str, ...]] = Registry("preset", check=_check_preset)


def checked_hack(hack: Hack) -> Hack:
    """`hack` as the registry holds it: name and source checked, values parsed to the knobs' types
    (parsed once, here, not again on every config they build). Raises ConfigError."""
    _check_hack(hack.name, hack)
    try:
        sets = {knob: parse_value(knob, value) for knob, value in hack.sets.items()}
    except ConfigError as err:
        raise ConfigError(f"hack '{hack.name}': {err}") from None
    return dataclasses.replace(hack, sets=sets)


def register_hack(hack: Hack) -> Hack:
    """Add `hack` to the registry after checking its name, source and knobs (`checked_hack`)."""
    return HACKS.register(hack.name, checked_hack(hack))


def get_hack(name: str) -> Hack:
    return HACKS[name]


def register_preset(name: str, hacks: Iterable[str]) -> None:
    PRESETS.register(name, tuple(hacks))


def preset_hacks(name: str) -> tuple[str, ...]:
    return PRESETS[name]


def _merged_settings(hacks: Iterable[str]) -> dict[str, Any]:
    """knob → value over `hacks`, refusing two hacks that set one knob differently
    (the result would depend on their order, which a reader of a suite cannot see)."""
    chosen: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for name in hacks:
        for knob, value in get_hack(name).sets.items():
            if knob in chosen and chosen[knob] != value:
                raise ConfigError(
                    f"hacks '{owner[knob]}' and '{name}' both set '{knob}' "
                    f"({chosen[knob]!r} vs {value!r}); keep one of them"
                )
            chosen[knob], owner[knob] = value, name
    return chosen


def compose(hacks: Iterable[str], base: TrainConfig | None = None) -> TrainConfig:
    """Apply `hacks` in order on `base` (default: every knob off)."""
    return (base or TrainConfig()).replace(**_merged_settings(hacks))


def resolve(preset: str = "vanilla", hacks: Iterable[str] = (), overrides: Mapping[str, Any] | None = None,
            base: Mapping[str, Any] | None = None) -> tuple[TrainConfig, tuple[str, ...]]:
    """The config of a run and its full hack list.

    Precedence, lowest first: defaults < preset < `base` (a suite's base knobs) < extra
    `hacks` (in order) < `overrides` (an arm's `set`, then the CLI's `--set`).
    """
    return resolve_layers(preset_hacks(preset), hacks, base, overrides)


def resolve_layers(preset_layer: Iterable[str], hacks: Iterable[str] = (), base: Mapping[str, Any] | None = None,
                   overrides: Mapping[str, Any] | None = None) -> tuple[TrainConfig, tuple[str, ...]]:
    """`resolve` with the preset given as its hacks: a suite arm's preset layer is the part of
    its preset the design kept (a leave-one-out arm drops one), and its other hacks go above `base`."""
    from_preset = tuple(preset_layer)
    names = tuple(dict.fromkeys(from_preset + tuple(hacks)))
    _merged_settings(names)  # conflicts between preset and extra hacks fail here, before anything runs
    # The layers as one mapping (a later layer wins), applied at once: a layer may need another's
    # knobs to be valid (image_size 64 needs the radford arch, which the dataset may supply).
    changes = {**_merged_settings(from_preset), **dict(base or {}),
               **_merged_settings(n for n in names if n not in from_preset), **dict(overrides or {})}
    dataset = str(changes.get("dataset", TrainConfig.dataset))
    return check_resolved(TrainConfig().replace(**{**dataset_defaults(dataset, changes), **changes})), names


def dataset_defaults(dataset: str, explicit: Iterable[str] = ()) -> dict[str, Any]:
    """The network knobs `dataset` calls for (CIFAR-10: the Radford 32-px colour net; CelebA: 64 px),
    except those a preset, base, hack or override set (`explicit`)."""
    explicit = set(explicit)
    return {k: v for k, v in get_dataset(dataset).net_defaults.items() if k not in explicit}


# The registry. Each hack's "off" state is TrainConfig's default for the knobs it sets.
for _hack in (
    Hack("strided_conv", "Strided convolutions in D and fractionally strided (transposed) ones in G, "
         "instead of average pooling / nearest upsampling + conv.",
         f"{RADFORD}, architecture guideline 1; {SEED_001}", {"sampling": "strided"}, ("architecture",)),
    Hack("leaky_relu", "LeakyReLU(0.2) instead of ReLU in the discriminator.",
         f"{RADFORD}, guideline 5; {GANHACKS}, tip 5", {"d_activation": "leaky_relu", "leaky_slope": 0.2},
         ("architecture",)),
    Hack("batch_norm", "Batch norm in G and D (not on G's output nor D's input), conv→BN→act.",
         f"{RADFORD}, guideline 2; {SEED_004}, hack 'use batch norm'",
         {"g_batch_norm": True, "d_batch_norm": True, "bn_position": "before_act"}, ("architecture", "normalisation")),
    Hack("gaussian_init", "Initialise conv/linear weights from N(0, 0.02) (BN gamma from N(1, 0.02)).",
         f"{RADFORD}, §4 'Details of adversarial training'; {SEED_004}, hack 5", {"init": "normal_002"},
         ("initialisation",)),
    Hack("adam_beta1_05", "Adam with β1 = 0.5 instead of 0.9.",
         f"{RADFORD}, §4; {GANHACKS}, tip 9", {"beta1": 0.5}, ("optimiser",)),
    Hack("gaussian_latent", "Sample z from N(0, 1) instead of U(−1, 1).",
         f"{GANHACKS}, tip 3; {SEED_004}, hack 'use a Gaussian latent space'", {"latent_dist": "gaussian"},
         ("latent",)),
    Hack("separate_batches", "Update D on an all-real and an all-fake batch instead of one shuffled mixed batch.",
         f"{GANHACKS}, tip 4; {SEED_004}, hack 'separate batches of real and fake images'",
         {"d_batch": "separate"}, ("batches", "normalisation")),
    Hack("label_smoothing", "One-sided label smoothing: real targets 0.9 instead of 1 (fakes stay 0).",
         f"{SALIMANS}, §3.4; {GANHACKS}, tip 6; {SEED_004}", {"label_smoothing": 0.1}, ("labels",)),
    Hack("noisy_labels", "Flip 5 % of D's targets (real↔fake) at random.",
         f"{GANHACKS}, tip 6; {SEED_004}, hack 'use noisy labels' (5 %)", {"label_flip_p": 0.05}, ("labels",)),
    Hack("kernel_4", "Kernel size 4 (divisible by the stride 2) instead of 5, against checkerboard artefacts.",
         f"{SEED_001}, Chollet's tip 4; {SEED_000}", {"kernel_size": 4}, ("architecture",)),
    Hack("tanh_output", "tanh output with data in [−1, 1] instead of sigmoid with data in [0, 1].",
         f"{RADFORD}, guideline 4; {GANHACKS}, tip 1", {"output_activation": "tanh"}, ("architecture", "data")),
    Hack("d_dropout", "Dropout (p = 0.3) after each hidden layer of the discriminator.",
         f"{SEED_001}, Chollet's tip 2 (dropout in D; ganhacks' tip 17 puts it in G: see g_dropout)",
         {"d_dropout": 0.3}, ("regularisation",)),
    # TTUR as most people know it (SAGAN's setting: D learns 4× faster). Seed 000 sets the rates the
    # other way round; that recipe keeps its own name (same knobs, so its run ids did not change).
    Hack("ttur", "Two time-scale update rule: D 4e-4, G 1e-4 (D learns faster).",
         f"{HEUSEL}; Zhang et al. 2019, 'Self-Attention GANs' (arXiv:1805.08318), §5: lr_D = 0.0004, lr_G = 0.0001",
         {"lr_d": 4e-4, "lr_g": 1e-4}, ("optimiser",)),
    Hack("ttur_seed000", "Two learning rates the colour-DCGAN seed's way: D 1e-4, G 3e-4 (G learns faster).",
         f"{SEED_000}, D_LR = 0.0001, G_LR = 0.0003", {"lr_d": 1e-4, "lr_g": 3e-4}, ("optimiser",)),
    Hack("nonsaturating_loss", "G maximises log D(G(z)) instead of minimising log(1 − D(G(z))).",
         f"{GOODFELLOW}, §3; {GANHACKS}, tip 2", {"g_loss": "nonsaturating"}, ("loss",)),
    Hack("no_fc_hidden", "No hidden fully connected layers: z is projected straight to the first conv "
         "volume and D's last conv feeds the logit.",
         f"{RADFORD}, guideline 3; {SEED_001}", {"g_fc_hidden": 0, "d_fc_hidden": 0}, ("architecture",)),
    Hack("multiple_d_steps", "Two D updates per G update.",
         f"{GOODFELLOW}, Algorithm 1 (k steps); seed 003's DISC_UPDATES", {"d_steps": 2}, ("schedule",)),
    Hack("lr_decay", "Inverse-time learning-rate decay lr / (1 + 4e-6·t), Keras' `decay` as in seed 001.",
         f"{SEED_001}, decay = INIT_LR / NUM_EPOCHS", {"lr_decay": 4e-6}, ("optimiser", "schedule")),
    # The stabilisers that replaced much of the folklore (Kurach et al. 2019, arXiv:1807.04720), and
    # the three ganhacks tips the first registry left out.
    Hack("spectral_norm", "Spectral normalisation of every weight of D (one power iteration per forward).",
         MIYATO, {"spectral_norm": True}, ("normalisation", "modern")),
    Hack("hinge_loss", "Hinge loss: D minimises relu(1 − D(x)) + relu(1 + D(G(z))), G minimises −D(G(z)).",
         f"Lim & Ye 2017, 'Geometric GAN' (arXiv:1705.02894); {MIYATO} (its hinge-loss models)", {"d_loss": "hinge"},
         ("loss", "modern")),
    Hack("ls_loss", "Least-squares loss: ½(D(x) − 1)² + ½D(G(z))² for D, ½(D(G(z)) − 1)² for G (label knobs still act).",
         "Mao et al. 2017, 'Least Squares Generative Adversarial Networks' (arXiv:1611.04076)",
         {"d_loss": "least_squares"}, ("loss", "modern")),
    Hack("wgan_gp", "Wasserstein critic loss with gradient penalty λ = 10 and 5 critic updates per G update "
         "(the recipe's optimiser is kept).",
         "Gulrajani et al. 2017, 'Improved Training of Wasserstein GANs' (arXiv:1704.00028), Algorithm 1",
         {"d_loss": "wasserstein", "gp_weight": 10.0, "d_steps": 5}, ("loss", "regularisation", "modern")),
    Hack("r1_penalty", "R1 gradient penalty γ/2·‖∇D(x)‖² on real images, γ = 10.",
         "Mescheder, Geiger & Nowozin 2018, 'Which Training Methods for GANs do actually Converge?' "
         "(arXiv:1801.04406)", {"r1_gamma": 10.0}, ("regularisation", "modern")),
    Hack("g_ema", "Samples and metrics come from an exponential moving average of G's weights (decay 0.999, "
         "warmed up over the first steps).",
         f"{KARRAS}; Yazıcı et al. 2019, 'The Unusual Effectiveness of Averaging in GAN Training' "
         "(arXiv:1806.04498)", {"g_ema": 0.999}, ("evaluation", "modern")),
    Hack("instance_noise", "Gaussian noise (σ 0.1, annealed linearly to 0) on every image D sees, real and fake.",
         "Sønderby et al. 2017, 'Amortised MAP Inference for Image Super-resolution' (arXiv:1610.04490); "
         f"{GANHACKS}, tip 13 (add noise to inputs, decay over time)", {"instance_noise": 0.1},
         ("regularisation", "modern")),
    Hack("diffaugment", "DiffAugment: colour, translation and cutout on every image D sees, real and fake.",
         "Zhao et al. 2020, 'Differentiable Augmentation for Data-Efficient GAN Training' (arXiv:2006.10738)",
         {"diffaugment": "color,translation,cutout"}, ("augmentation", "modern")),
    Hack("minibatch_std", "D gets the minibatch standard deviation as an extra feature map before its head.",
         f"{KARRAS}, §3", {"minibatch_std": True}, ("architecture", "modern")),
    Hack("soft_fake_labels", "Two-sided soft labels: fake targets drawn from [0, 0.3) instead of 0.",
         f"{SEED_004}, hack 'use soft labels' (fake in [0.0, 0.3]); {GANHACKS}, tip 6", {"fake_label_jitter": 0.3},
         ("labels",)),
    Hack("replay_buffer", "Experience replay: half of each D fake batch comes from a buffer of 1024 past fakes.",
         f"{GANHACKS}, tip 8 (experience replay); Shrivastava et al. 2017, 'Learning from Simulated and "
         "Unsupervised Images through Adversarial Training' (arXiv:1612.07828)",
         {"replay_buffer": 1024}, ("batches",)),
    Hack("g_dropout", "Dropout (p = 0.5) after each hidden layer of G while training (the tip also keeps it at "
         "test time; here samples and metrics use G without it).",
         f"{GANHACKS}, tip 17 (dropout in G, after Isola et al. 2017)", {"g_dropout": 0.5}, ("regularisation",)),
):
    register_hack(_hack)

register_preset("vanilla", ())
# Radford's reference code also feeds D real and generated batches separately (with batch
# norm in D a mixed batch lets D read "real or fake" off the batch statistics), and uses
# the non-saturating G loss, so both belong to the recipe.
register_preset("dcgan", ("strided_conv", "leaky_relu", "batch_norm", "gaussian_init", "adam_beta1_05",
                          "tanh_output", "no_fc_hidden", "nonsaturating_loss", "separate_batches"))
register_preset("ganhacks", PRESETS["dcgan"] + ("gaussian_latent", "label_smoothing", "noisy_labels"))
# The DCGAN recipe with the three stabilisers most modern baselines start from (SNGAN's D, its
# hinge loss, and an EMA of G for evaluation; cf. Kurach et al. 2019 and StudioGAN's baselines).
register_preset("modern", PRESETS["dcgan"] + ("spectral_norm", "hinge_loss", "g_ema"))
