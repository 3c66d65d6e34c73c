"""Third-party code joins ganbench the ecosystem's way (pytest's, torch-fidelity's): a plugin is a
module that registers hacks, metrics or datasets when imported (`register_hack(Hack(...))`, …).

Plugins come from, in this order:
- installed packages, through the entry-point group `ganbench.plugins`
  (`[project.entry-points."ganbench.plugins"] mine = "my_package.ganbench_hacks"`);
- `$GANBENCH_PLUGINS`: module names separated by commas (a module on the Python path);
- `ganbench -p MODULE` (repeatable), which also adds MODULE to `$GANBENCH_PLUGINS`, so every
  process the command starts (local workers, Ray tasks, SLURM jobs) loads the same plugins.

A suite never names code to import: suites are data (a knob-only hack can be declared in the
suite itself, under `define:`).
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points
from typing import Sequence

from ganbench.errors import ConfigError

ENTRY_POINT_GROUP = "ganbench.plugins"
ENV = "GANBENCH_PLUGINS"

_loaded: dict[str, str] = {}  # module name → where it came from


class PluginError(ConfigError):
    """A plugin that cannot be imported: its name, where it was named, and why."""


def env_plugins() -> list[str]:
    return [name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip()]


def load_plugins(modules: Sequence[str] = ()) -> dict[str, str]:
    """Import every plugin not imported yet (entry points, $GANBENCH_PLUGINS, then `modules`);
    returns {module: origin} of all plugins loaded in this process."""
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        _import(entry.value.split(":")[0], f"entry point '{entry.name}' of {entry.dist.name if entry.dist else '?'}")
    for name in env_plugins():
        _import(name, f"${ENV}")
    for name in modules:
        _import(name, "--plugin")
    if modules:  # child processes (workers, Ray tasks, SLURM jobs) inherit the environment
        os.environ[ENV] = ",".join(dict.fromkeys(env_plugins() + list(modules)))
    return dict(_loaded)


def _import(name: str, origin: str) -> None:
    if name in _loaded:
        return
    try:
        importlib.import_module(name)
    except Exception as err:  # noqa: BLE001 - any failure of a plugin's import is the plugin's, said so
        raise PluginError(f"plugin '{name}' (from {origin}) could not be imported: {type(err).__name__}: {err}. "
                          "Expected a module on the Python path that registers hacks, metrics or datasets "
                          "when imported") from None
    _loaded[name] = origin
