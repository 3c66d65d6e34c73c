"""A seeded fuzz of the suite loader (issue 36): random mutations of the shipped suites — values of
the wrong type or range, removed, added and misspelled keys, unicode, repeated keys, alias bombs,
truncated text — either load or fail with an error naming the file; never another exception, never
seconds per case or hundreds of MB."""

from __future__ import annotations

import random
import resource
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ganbench.study.suite import load_suite

SUITES = sorted(p for p in (Path(__file__).parent.parent / "suites").glob("*.yaml"))
ODD_VALUES: list[Any] = [-1, 0, 1, 2**70, 1e309, -1e309, float("nan"), "many", "", "\u200b", "plain\u202e",
                         None, True, [], {}, [1, "x"], {"a": {"b": []}}, "x" * 5000, 0.5, "1e999", "../..", "a/b"]
ODD_KEYS = ["stepz", "seedz", "arms", "\u200bsteps", "ste\u0301ps", "", "x" * 300, "1", "null"]


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of nested mappings and lists in `data`."""
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += _paths(value, (*prefix, i))
    return found


def _parent(data: Any, path: tuple) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


def _mutated_text(rng: random.Random, text: str) -> str:
    data = yaml.safe_load(text)
    kind = rng.choice(["value", "value", "delete", "add", "rename", "repeat", "bomb", "truncate", "unicode"])
    paths = _paths(data)
    if kind in ("value", "delete", "add", "rename") and paths:
        path = rng.choice(paths)
        parent = _parent(data, path)
        if kind == "value":
            parent[path[-1]] = rng.choice(ODD_VALUES)
        elif kind == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            if kind == "add":
                parent[rng.choice(ODD_KEYS)] = rng.choice(ODD_VALUES)
            else:
                parent[f"{path[-1]}{rng.choice(['s', '_', 'x'])}"] = parent.pop(path[-1])
        return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    lines = text.splitlines()
    if kind == "repeat":
        top = [line for line in lines if line and not line[0].isspace() and ":" in line and not line.startswith("#")]
        return text + "\n" + rng.choice(top) + "\n" if top else text
    if kind == "bomb":
        bomb = "lols:\n  - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
            f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9))
        return text + "\n" + bomb.replace("lols:", rng.choice(["description:", "name:", "lols:", "steps:"]))
    if kind == "truncate":
        return text[:rng.randrange(len(text))]
    where = rng.randrange(len(text))
    return text[:where] + rng.choice(["\u200b", "\u202e", "\x00", "\ufeff", "é", "\U0001f600", "\t", "'"]) + text[where:]


@pytest.mark.parametrize("seed", range(4))
def test_suite_loader_fuzz_never_a_traceback(tmp_path, seed):
    rng = random.Random(seed)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(60):
        source = rng.choice(SUITES)
        path = tmp_path / f"case{case}.yaml"
        path.write_text(_mutated_text(rng, source.read_text()), encoding="utf-8", errors="surrogatepass")
        start = time.perf_counter()
        try:
            load_suite(path, tmp_path / "results", planner=lambda budget, suite_dir: lambda arm, cfg: 8)
            outcomes["loaded"] += 1
        except ValueError as err:  # SuiteError, ConfigError: the CLI's clean "error: …" exit 2
            assert str(path) in str(err), (source.name, path.read_text()[:2000], err)
            outcomes["refused"] += 1
        except Exception as err:  # noqa: BLE001 — the point: anything else is a defect
            pytest.fail(f"{type(err).__name__} loading a mutation of {source.name} (seed {seed}, case {case}): "
                        f"{err}\n---\n{path.read_text()[:3000]}")
        assert time.perf_counter() - start < 5, (source.name, case)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300, grown_mb
    assert outcomes["refused"] > 0 and outcomes["loaded"] > 0, outcomes  # the fuzz reaches both outcomes
