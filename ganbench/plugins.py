"""Third-party code joins ganbench the ecosystem's way (pytest's, torch-fidelity's): a plugin is a
module that registers hacks, metrics or datasets when imported (`register_hack(Hack(...))`, …).

Plugins come from, in this order:
- installed packages, through the entry-point group `ganbench.plugins`
  (`[project.entry-points."ganbench.plugins"] mine = "my_package.ganbench_hacks"`);
- `$GANBENCH_PLUGINS`: modules separated by commas, each a module name on the Python path or a
  `.py` file (`myhacks.py`, `~/gan/myhacks.py`; a bare name that is not importable but names a
  file `NAME.py` in the working directory is that file);
- `ganbench -p MODULE` (repeatable), which also adds MODULE (a file: its absolute path) to
  `$GANBENCH_PLUGINS` (then written as a JSON list, so a path may hold a comma), so every process the command starts loads the same plugins; a suite's jobs
  carry the list to local workers, Ray tasks and SLURM tasks (`execution.jobs.Job.plugins`).

A suite never names code to import: suites are data (a knob-only hack can be declared in the
suite itself, under `define:`).
"""

from __future__ import annotations

import importlib
import json
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Sequence

from ganbench.errors import ConfigError

ENTRY_POINT_GROUP = "ganbench.plugins"
ENV = "GANBENCH_PLUGINS"

_loaded: dict[str, str] = {}  # module name → where it came from


class PluginError(ConfigError):
    """A plugin that cannot be imported: its name, where it was named, and why."""


def env_plugins() -> list[str]:
    """$GANBENCH_PLUGINS: comma-separated as a user writes it, or the JSON list ganbench writes for its
    child processes (a plugin path may hold a comma)."""
    value = os.environ.get(ENV, "").strip()
    if value.startswith("["):
        try:
            names = json.loads(value)
        except ValueError:
            raise PluginError(f"${ENV}={value[:200]}: not a JSON list of plugin names") from None
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise PluginError(f"${ENV}={value[:200]}: not a JSON list of plugin names")
        return [name for name in names if name.strip()]
    return [name.strip() for name in value.split(",") if name.strip()]


def load_plugins(modules: Sequence[str] = ()) -> dict[str, str]:
    """Import every plugin not imported yet (entry points, $GANBENCH_PLUGINS, then `modules`);
    returns {module or file: origin} of all plugins loaded in this process."""
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        _import(entry.value.split(":")[0], f"entry point '{entry.name}' of {entry.dist.name if entry.dist else '?'}")
    named = [_import(name, f"${ENV}") for name in env_plugins()]
    named += [_import(name, "--plugin") for name in modules]
    if modules:  # child processes (workers, Ray tasks, SLURM jobs) inherit the environment
        os.environ[ENV] = json.dumps(list(dict.fromkeys(named)))
    return dict(_loaded)


def loaded_plugins() -> list[str]:
    """The plugins imported in this process (module names, or .py files as absolute paths)."""
    return list(_loaded)


def _import(name: str, origin: str) -> str:
    """Import plugin `name` (a module name or a .py file) once; returns the form children can load
    (a file's absolute path)."""
    file = _as_file(name)
    key = str(file) if file else name
    if key in _loaded:
        return key
    try:
        if file:
            spec = importlib.util.spec_from_file_location(f"ganbench_plugin_{file.stem}", file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            importlib.import_module(name)
    except SystemExit as stop:  # sys.exit() in a plugin's body would end ganbench silently with its code
        raise PluginError(f"plugin '{name}' (from {origin}) called sys.exit({stop.code!r}) while being imported; a "
                          "plugin module only registers hacks, metrics or datasets") from None
    except Exception as err:  # noqa: BLE001 - any failure of a plugin's import is the plugin's, said so
        raise PluginError(f"plugin '{name}' (from {origin}) could not be imported: {type(err).__name__}: {err}. "
                          "Expected a module on the Python path or a .py file that registers hacks, metrics or "
                          "datasets when imported") from None
    _loaded[key] = origin
    return key


def _as_file(name: str) -> Path | None:
    """`name` as a plugin file: a path ending in .py, or a bare name that is no importable module but
    names NAME.py in the working directory."""
    if name.endswith(".py"):
        return Path(name).expanduser().resolve()
    if name.isidentifier() and importlib.util.find_spec(name) is None and Path(f"{name}.py").is_file():
        return Path(f"{name}.py").resolve()
    return None
