"""The checks a resolved config must pass against the registries before any work starts.

`TrainConfig` checks what its own fields declare (types, ranges, rules between knobs) and
imports no registry; whether its dataset exists, its metrics can be computed from its images
and its evaluation follows the protocol it names is asked here, where configs are resolved
(`hacks.resolve_layers`, the trainer's entry, `ganbench eval`). Kept apart so that the config
module sits below the dataset, metric and protocol registries (no import cycle).
"""

from __future__ import annotations

from ganbench.config import TrainConfig
from ganbench.errors import ConfigError
from ganbench.data.datasets import get_dataset
from ganbench.metrics.protocols import protocol_problems
from ganbench.metrics.registry import check_evaluation


def check_resolved(cfg: TrainConfig) -> TrainConfig:
    """`cfg` unchanged, or a `ConfigError` naming the knob: an unknown dataset, metric or protocol
    (with a suggestion), too few images to evaluate, FID∞ without FID, a protocol not followed."""
    get_dataset(cfg.dataset)
    check_evaluation(cfg)
    if cfg.eval_protocol:
        problems = protocol_problems(cfg.eval_protocol, cfg.to_dict())  # an unknown name raises, with a suggestion
        if problems:
            raise ConfigError(f"bad value {cfg.eval_protocol!r} for 'eval_protocol': must be followed by the "
                              "evaluation knobs: " + "; ".join(problems))
    return cfg
