"""Loading a `torch.export` archive (`.pt2`) without running anything pickled in it.

`torch.export.load` unpickles some of an archive's parts with `weights_only=False` (weights and
constants marked `use_pickle`, "opaque" constants, and the legacy format's fallback) and can load
AOTInductor's compiled native code, so a crafted `.pt2` runs code when it is loaded. ganbench reads
the archive's directory first and accepts only what a plain exported program holds — its graph
(JSON), raw tensor payloads with their JSON configs, sample inputs and extra files — refusing any
entry marked `use_pickle` and any other kind of entry by name; the load itself then runs with every
`torch.load` forced to `weights_only=True` (sample inputs are tensors).
"""

from __future__ import annotations

import contextlib
import json
import re
import zipfile
from pathlib import Path
from typing import Iterator

import torch

from ganbench.metrics.registry import MetricError

# Entries of a plain program, by their path below the archive's root folder.
_PLAIN = re.compile(r"(archive_format|archive_version|byteorder|\.data/[^/]+|models/[^/]+\.json|"
                    r"data/weights/(weight_\d+|[^/]+_weights_config\.json)|"
                    r"data/constants/(tensor_\d+|[^/]+_constants_config\.json)|"
                    r"data/sample_inputs/[^/]+\.pt|extra/.+)")
_CONFIG = re.compile(r"data/(weights|constants)/[^/]+_config\.json")


def _below_root(name: str) -> str:
    return name.split("/", 1)[1] if "/" in name else name


def pickled_parts(path: Path) -> list[str]:
    """The entries of the archive at `path` that loading would unpickle or execute (empty: safe)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise MetricError(f"{path}: not a torch.export archive ({err}); save the program with torch.export.save") \
            from None
    found: list[str] = []
    with archive:
        for name in archive.namelist():
            inner = _below_root(name)
            if not _PLAIN.fullmatch(inner):
                found.append(f"{name} (not part of a plain exported program)")
            elif _CONFIG.fullmatch(inner):
                try:
                    config = json.loads(archive.read(name)).get("config", {})
                    marked = [key for key, meta in config.items() if meta.get("use_pickle")]
                except (ValueError, AttributeError) as err:
                    found.append(f"{name} (unreadable: {err})")
                    continue
                found += [f"{name}: {key} (stored as a pickle)" for key in marked]
    return found


@contextlib.contextmanager
def _torch_load_tensors_only() -> Iterator[None]:
    """Every `torch.load` inside: `weights_only=True` (torch.export's fallback would retry without it)."""
    original = torch.load

    def tensors_only(*args, **kwargs):
        kwargs["weights_only"] = True
        return original(*args, **kwargs)

    torch.load = tensors_only
    try:
        yield
    finally:
        torch.load = original


def load_exported_program(path: Path) -> torch.nn.Module:
    """The module of the `.pt2` at `path`, refused (`MetricError` naming the entries) if loading it
    would unpickle or execute any of its parts."""
    refused = pickled_parts(path)
    if refused:
        shown = "; ".join(refused[:5]) + (f"; and {len(refused) - 5} more" if len(refused) > 5 else "")
        raise MetricError(f"{path}: refusing to load: it holds parts that loading would unpickle or execute "
                          f"({shown}). ganbench scores .pt2 files whose weights are plain tensors "
                          "(torch.export.save of an ordinary module)")
    try:
        with _torch_load_tensors_only():
            return torch.export.load(str(path)).module()
    except Exception as err:  # torch.export raises many kinds: say the one line that matters
        raise MetricError(f"{path}: not a loadable torch.export program ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''})") from None
