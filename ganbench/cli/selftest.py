"""`ganbench selftest`: check this machine before a long sweep (each part in its own process)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ganbench.cli.common import DataRootOpt, DeviceOpt, app, console, data_root_str, escape, exit_on_error, fail, print_json
from ganbench.selftest import PARTS

STYLE = {"passed": "green", "failed": "red", "crashed": "red", "timed out": "red"}


@app.command("selftest")
def selftest_command(
    device: DeviceOpt = "auto",
    suite: Annotated[Path, typer.Option(help="The suite whose network structures (structures) and evaluation "
                                              "settings (eval) are checked.")] = Path("suites/hacks.yaml"),
    parts: Annotated[Optional[list[str]], typer.Option("--part", help=(
        f"Only this part (repeatable): {', '.join(PARTS)}. Default: all, in that order."))] = None,
    out: Annotated[Path, typer.Option(help="Where each part's JSON and log, selftest.json and selftest.md go.")]
        = Path("ganbench-selftest"),
    toy: Annotated[Optional[bool], typer.Option("--toy/--full", help=(
        "Toy sizes (code paths in about a minute; the default on a CPU) or the sweep's own sizes (figures; the "
        "default on a GPU)."))] = None,
    data_root: DataRootOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")] = False,
) -> None:
    """Check this machine before a long sweep: versions and data (env); the fused engine's correctness —
    captured graph = eager, frozen runs, resume, no host sync (smoke); every network structure of a suite
    (structures); run-steps/s against the dense ceiling (engine); evaluation cost and the device metric path
    against torch-fidelity (eval). Each part runs in its own process with its own timeout; a crash, hang or
    out-of-memory loses only that part. Exit 1 when any check fails."""
    from ganbench import devices
    from ganbench.selftest.runner import run_selftest

    chosen = parts or list(PARTS)
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        fail(f"unknown part(s) {', '.join(unknown)}; parts: {', '.join(PARTS)}")
    if not suite.is_file() and {"structures", "eval"} & set(chosen):
        fail(f"suite {suite} not found: the structures and eval parts read it (--suite, or run from the repository)")
    with exit_on_error():
        name = str(devices.resolve(device))
    if not as_json:
        console.print(f"selftest on [bold]{name}[/] → {out}", highlight=False)

    def show(part: str, result: dict[str, Any]) -> None:
        if as_json:
            return
        style = STYLE[result["status"]]
        console.print(f"  [{style}]{result['status']:>9}[/] {part:<11} {result['seconds']:>6.1f} s", highlight=False)
        for check in result["failed_checks"]:
            console.print(f"             ✗ {escape(check)}: {escape(str(result['checks'][check]['value'])[:200])}",
                          highlight=False)
        if result.get("error"):
            console.print(f"             {escape(result['error'].splitlines()[0][:300])} (log: {out / (part + '.log')})",
                          highlight=False)

    summary = run_selftest(name, chosen, out, suite, data_root_str(data_root), toy, show)
    if as_json:
        print_json(summary)
    else:
        console.print(f"{'passed' if summary['passed'] else 'FAILED'}: report in {out / 'selftest.md'}", highlight=False)
    if not summary["passed"]:
        raise typer.Exit(1)
