"""`ganbench` command line: each command parses its options, then calls one library function.

One module per command group, each registering its commands on the one Typer `app`:
registry (hacks, knobs) · train (train, eval) · plan (plan, status) · run · results (report,
compare, tensorboard) · assets (weights, classifier, data). Options, consoles, the error exit
and suite loading are shared in `common`; tables and durations in `tables`.
"""

from __future__ import annotations

from ganbench.cli.common import app

# Each module registers its commands on `app`, in the order `ganbench --help` lists them.
from ganbench.cli import registry, train, plan, run, results, assets  # noqa: E402,F401,I001

__all__ = ["app", "main"]


def main() -> None:
    app()
