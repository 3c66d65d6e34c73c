"""Runs the selftest's parts, each in its own subprocess with its own timeout, and writes
`selftest.json` and `selftest.md` after every part; `python -m ganbench.selftest.runner --part P …` is
one part's process. `smoke_gate` is what `ganbench run --device cuda` asks before its first group."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from ganbench.files import read_json, write_json
from ganbench.selftest import PARTS

# Seconds each part may take: at toy sizes (a CPU) and at full sizes (a GPU). A part past its time is
# killed and reported 'timed out' with whatever it had recorded.
TIMEOUTS = {"toy": {"env": 60, "smoke": 60, "structures": 60, "engine": 60, "eval": 120},
            "full": {"env": 60, "smoke": 150, "structures": 150, "engine": 240, "eval": 240}}
STRUCTURES_BUDGET = 0.8  # of its timeout, the structures part spends on structures (then it stops, saying so)
DEFAULT_SUITE = Path("suites/hacks.yaml")


class SelftestFailed(RuntimeError):
    """A selftest part that `run` needs (smoke) failed: training on this device cannot be trusted."""


def run_selftest(device: str, parts: Sequence[str], out: Path, suite: Path = DEFAULT_SUITE, data_root: str | None = None,
                 toy: bool | None = None, on_part: Callable[[str, dict[str, Any]], None] | None = None,
                 timeouts: dict[str, float] | None = None) -> dict[str, Any]:
    """Run `parts` on `device` into `out`; the summary {device, toy_sizes, parts: {part: result}}. Toy sizes
    by default on a CPU (code paths, not figures), full sizes on a GPU; `timeouts` (seconds per part)
    replace TIMEOUTS' where given (the GPU window caps its parts to fit one device call)."""
    toy = device == "cpu" if toy is None else toy
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"device": device, "toy_sizes": toy, "suite": str(suite), "started_at": time.time(),
                               "parts": {}}
    for part in parts:
        timeout = (timeouts or {}).get(part, TIMEOUTS["toy" if toy else "full"][part])
        result = _run_part(part, device, out, suite, data_root, toy, timeout)
        summary["parts"][part] = result
        summary["passed"] = all(r["status"] == "passed" for r in summary["parts"].values())
        write_json(out / "selftest.json", summary)
        (out / "selftest.md").write_text(markdown(summary))
        if on_part:
            on_part(part, result)
    return summary


def _run_part(part: str, device: str, out: Path, suite: Path, data_root: str | None, toy: bool,
              timeout: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "ganbench.selftest.runner", "--part", part, "--out", str(out), "--device", device,
               "--suite", str(suite), "--budget-s", str(STRUCTURES_BUDGET * timeout)]
    command += (["--toy"] if toy else []) + (["--data-root", data_root] if data_root else [])
    start = time.perf_counter()
    with open(out / f"{part}.log", "w", encoding="utf-8") as log:
        try:
            code: int | None = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = None
    seconds = round(time.perf_counter() - start, 1)
    try:
        record = read_json(out / f"{part}.json", "a selftest part's record")
    except Exception:  # noqa: BLE001 - the part died before writing anything: its log says why
        record = {"checks": {}, "figures": {}, "skipped": {}}
    failed = [name for name, check in record.get("checks", {}).items() if not check["ok"]]
    status = ("timed out" if code is None else "crashed" if record.get("error") or code not in (0, 1)
              else "failed" if failed or code else "passed")
    result = {"status": status, "seconds": seconds, "timeout_s": timeout, "exit_code": code, "failed_checks": failed,
              "checks": record.get("checks", {}), "figures": record.get("figures", {}),
              "skipped": record.get("skipped", {})}
    if status in ("crashed", "timed out"):
        tail = (out / f"{part}.log").read_text(errors="replace")[-3000:]
        result["error"] = record.get("error") or (f"no result within {timeout} s" if code is None else
                                                  f"exit code {code}") + f"; log tail:\n{tail}"
    return result


def markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown report: one table of parts, then each part's checks and figures."""
    lines = [f"# ganbench selftest on {summary['device']}" + (" (toy sizes: code paths, not figures)"
                                                              if summary["toy_sizes"] else ""), "",
             "| part | status | seconds | failed checks |", "|---|---|---|---|"]
    for part, result in summary["parts"].items():
        lines.append(f"| {part} | {result['status']} | {result['seconds']} | {', '.join(result['failed_checks']) or '—'} |")
    for part, result in summary["parts"].items():
        lines += ["", f"## {part}: {result['status']}", ""]
        for name, check in result["checks"].items():
            bound = f" (bound: {check['bound']})" if check.get("bound") else ""
            lines.append(f"- {'✓' if check['ok'] else '✗'} {name}: `{json.dumps(check['value'], default=str)[:300]}`{bound}")
        for name, value in result["figures"].items():
            lines.append(f"- {name}: `{json.dumps(value, default=str)[:600]}`")
        for name, reason in result["skipped"].items():
            lines.append(f"- skipped {name}: {reason}")
        if result.get("error"):
            lines += ["", "```", result["error"][-2000:], "```"]
    return "\n".join(lines) + "\n"


def smoke_gate(device: str, cache: Path, data_root: str | None = None,
               on_start: Callable[[str], None] | None = None) -> str | None:
    """Run the smoke part once per (GPU name, torch, ganbench version) and remember a pass in `cache`;
    raise `SelftestFailed` naming the failed checks when it fails. Returns a line saying what was done,
    or None when an earlier pass covers this machine."""
    import torch

    from ganbench.provenance import package_versions

    versions = package_versions()
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
    key = {"device": name, "torch": versions["torch"], "ganbench": versions["ganbench"]}
    marker = cache / ("smoke-" + "-".join(str(v) for v in key.values()).replace(" ", "_").replace("/", "_") + ".json")
    if marker.exists():
        return None
    if on_start:
        on_start(name)
    out = cache / f"smoke-{int(time.time())}"
    summary = run_selftest(device, ["smoke"], out, toy=device == "cpu", data_root=data_root)
    result = summary["parts"]["smoke"]
    if result["status"] != "passed":
        raise SelftestFailed(f"the smoke selftest failed on {name} ({result['status']}: "
                             f"{', '.join(result['failed_checks']) or result.get('error', '')[:500]}); the fused "
                             f"engine cannot be trusted on this device. Report: {out / 'selftest.md'}. "
                             "--no-selftest skips this check")
    write_json(marker, {**key, "report": str(out / "selftest.md"), "at": time.time()})
    return f"smoke selftest passed on {name} in {result['seconds']} s (once per GPU, torch and ganbench version)"


def _part_main(args: argparse.Namespace) -> int:
    from ganbench import devices
    from ganbench.selftest import checks, figures
    from ganbench.selftest.record import PartRecord

    device = devices.resolve(args.device)
    devices.bind(device)
    record = PartRecord(args.part, args.out, str(device), args.toy)
    runs = {"env": lambda: figures.part_env(record, device, args.data_root),
            "smoke": lambda: checks.part_smoke(record, device, args.toy),
            "structures": lambda: checks.part_structures(record, device, args.toy, args.suite, args.budget_s),
            "engine": lambda: figures.part_engine(record, device, args.toy, args.out),
            "eval": lambda: figures.part_eval(record, device, args.toy, args.suite, args.data_root)}
    try:
        runs[args.part]()
    except Exception as err:  # noqa: BLE001 - what it measured is saved; the error says where it stopped
        record.error(f"{type(err).__name__}: {err}\n{traceback.format_exc()[-3000:]}")
        traceback.print_exc()
        return 2
    finally:
        record.data["seconds"] = round(time.time() - record.data["started_at"], 1)
        record.save()
    return 0 if all(c["ok"] for c in record.data["checks"].values()) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One part of `ganbench selftest` (its own process).")
    parser.add_argument("--part", required=True, choices=PARTS)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE)
    parser.add_argument("--data-root")
    parser.add_argument("--toy", action="store_true")
    parser.add_argument("--budget-s", type=float, default=120.0)
    return _part_main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
