"""`ganbench` command line: each command parses its options, then calls one library function.

One module per command group, each registering its commands on the one Typer `app`:
registry (hacks, knobs) · train (train, eval) · plan (plan, status) · run · results (report,
compare, tensorboard) · assets (weights, classifier, data) · selftest. Options, consoles, the error exit
and suite loading are shared in `common`; tables and durations in `tables`.
"""

from __future__ import annotations

from ganbench.cli.common import app

# Each module registers its commands on `app`, in the order `ganbench --help` lists them.
from ganbench.cli import registry, train, plan, run, results, assets, selftest  # noqa: E402,F401,I001

__all__ = ["app", "main"]


def usage_hint(argv: list[str]) -> str | None:
    """The fix for two slips click can only call unknown options or extra arguments: `--set steps 200`
    (KNOB=VALUE is one word) and a leave-one-out arm written bare (`-kernel_4`, read as an option)."""
    for i, word in enumerate(argv):
        if word == "--":
            break
        if word == "--set" and i + 1 < len(argv) and "=" not in argv[i + 1]:
            value = argv[i + 2] if i + 2 < len(argv) and not argv[i + 2].startswith("-") else "VALUE"
            return f"--set takes KNOB=VALUE as one word: --set {argv[i + 1]}={value}"
        if len(word) > 2 and word[0] == "-" and word[1] != "-" and ("_" in word or len(word) > 3):
            return (f"'{word}' reads as an option; an arm whose name starts with '-' goes after `--` "
                    f"(ganbench compare --suite S.yaml -- {word} all) or as --only={word}")
    return None


def _plain_warnings() -> None:
    """ganbench's own warnings (a damaged row skipped, a cache rebuilt, a budget planned again) print as
    one `warning: …` line, not Python's file:line: Category: form."""
    import warnings

    python_form = warnings.formatwarning

    def formatted(message, category, filename, lineno, line=None):  # noqa: ANN001 — warnings' own signature
        if category.__module__.split(".")[0] == "ganbench":
            return f"warning: {message}\n"
        return python_form(message, category, filename, lineno, line)

    warnings.formatwarning = formatted


def main() -> None:
    """The `ganbench` command. A torchvision built for another torch breaks the first command that
    imports it: said in two lines (`installation.pair_problem`) instead of a traceback, exit 2."""
    import sys

    _plain_warnings()
    try:
        app()
    except SystemExit as stop:  # click's usage errors exit 2: add what ganbench knows of the usual slips
        hint = usage_hint(sys.argv[1:]) if stop.code == 2 else None
        if hint:
            from ganbench.cli.common import err_console, escape

            err_console.print(f"[yellow]hint:[/] {escape(hint)}", highlight=False, soft_wrap=True)
        raise
    except (ImportError, OSError, RuntimeError) as err:
        from ganbench.installation import pair_problem

        problem = pair_problem(err)
        if problem is None:
            raise
        from ganbench.cli.common import err_console, escape

        err_console.print(f"[bold red]error:[/] {escape(problem)}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
