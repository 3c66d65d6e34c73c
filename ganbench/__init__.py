"""ganbench: measure which GAN training hacks matter.

The public API, re-exported here: the config, the hack registry, the models and the trainer.
"""

from ganbench.config import ConfigError, TrainConfig
from ganbench.hacks import HACKS, PRESETS, Hack, compose, register_hack, resolve
from ganbench.models import Discriminator, Generator, build_models
from ganbench.train import train

__all__ = [
    "ConfigError", "TrainConfig", "HACKS", "PRESETS", "Hack", "compose", "register_hack", "resolve",
    "Discriminator", "Generator", "build_models", "train",
]
