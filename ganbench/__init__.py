"""ganbench: measure which GAN training hacks matter.

The public API, re-exported here: the config, the hack registry, the models and the
trainer. Importing ganbench imports no torch: the names that need it (models, `train`)
load on first use.
"""

from __future__ import annotations

from typing import Any

# Every public name loads on first use, so `import ganbench.cli` (and `ganbench --help`) reads none of
# the registries it does not need.
_LAZY = {"TrainConfig": "ganbench.config", "ConfigError": "ganbench.errors",
         **{name: "ganbench.hacks" for name in ("HACKS", "PRESETS", "Hack", "compose", "register_hack", "resolve")},
         "Discriminator": "ganbench.models", "Generator": "ganbench.models", "build_models": "ganbench.models",
         "train": "ganbench.training.loop",
         # a suite from a notebook (ganbench.api): the CLI's own library calls
         "load": "ganbench.api", "plan": "ganbench.api", "run": "ganbench.api", "results": "ganbench.api",
         "report": "ganbench.api"}

__all__ = [
    "__version__", "ConfigError", "TrainConfig", "HACKS", "PRESETS", "Hack", "compose", "register_hack", "resolve",
    "Discriminator", "Generator", "build_models", "train", "load", "plan", "run", "results", "report",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":  # importlib.metadata costs a quarter of `ganbench --help`: asked only when read
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("ganbench")
        except PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ganbench' has no attribute '{name}'")
