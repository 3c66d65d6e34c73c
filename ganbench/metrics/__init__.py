"""Metrics: the torch-free registry (`registry`), torch-fidelity's computation (`backend`, `fidelity`),
and the metrics ganbench computes itself, one module each. Importing any of them registers these
(timm's habit: the package lists its built-in modules)."""

from ganbench.metrics import modes  # noqa: F401 (registers modes_fmnist)
