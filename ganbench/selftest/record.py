"""One part's record: checks (pass / fail against a stated bound), figures and skips, saved after each."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ganbench.files import write_json


class PartRecord:
    """What a part found, written to `<out>/<part>.json` every time something is added to it, so a part
    killed by its timeout (or a crash of the CUDA context) still leaves everything it measured."""

    def __init__(self, part: str, out: Path, device: str, toy: bool) -> None:
        self.path = out / f"{part}.json"
        self.data: dict[str, Any] = {"part": part, "device": device, "toy_sizes": toy, "checks": {}, "figures": {},
                                     "skipped": {}, "started_at": time.time()}
        self.save()

    def save(self) -> None:
        write_json(self.path, json.loads(json.dumps(self.data, default=str)))

    def check(self, name: str, ok: bool, value: Any = None, bound: str | None = None) -> bool:
        """A pass/fail check: `value` measured, `bound` what it had to meet (in words)."""
        self.data["checks"][name] = {"ok": bool(ok), "value": value, **({"bound": bound} if bound else {})}
        print(f"[{self.data['part']}] {'ok  ' if ok else 'FAIL'} {name}: {value}" + (f" ({bound})" if bound else ""),
              flush=True)
        self.save()
        return bool(ok)

    def figure(self, name: str, value: Any) -> None:
        """A measured number (or table) that is reported, not judged."""
        self.data["figures"][name] = value
        print(f"[{self.data['part']}] {name}: {json.dumps(value, default=str)[:300]}", flush=True)
        self.save()

    def skip(self, name: str, reason: str) -> None:
        """A check that cannot run here, with the reason (e.g. graph capture on a CPU)."""
        self.data["skipped"][name] = reason
        self.save()

    def error(self, text: str) -> None:
        self.data["error"] = text
        self.save()
