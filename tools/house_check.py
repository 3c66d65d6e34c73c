"""Print the house limits the issue tracker holds ganbench to: module length, function length, import cycles,
and folder cycles (a folder — analysis/, metrics/, training/, … — that imports, directly or through
other modules, a module that imports it back: a floor that imports upward).

Usage: python tools/house_check.py [--max-module-lines 400] [--max-function-lines 60]
Exits 1 when any limit is broken, so CI (tests/test_house.py) fails on it.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ganbench"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def long_modules(limit: int) -> list[tuple[int, str]]:
    found = []
    for name, path in modules().items():
        lines = len(path.read_text().splitlines())
        if lines > limit:
            found.append((lines, name))
    return sorted(found, reverse=True)


def long_functions(limit: int) -> list[tuple[int, str]]:
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                length = node.end_lineno - start + 1
                if length > limit:
                    found.append((length, f"{name}.{node.name} (line {node.lineno})"))
    return sorted(found, reverse=True)


def _imported(name: str, path: Path, known: set[str]) -> set[str]:
    """Every ganbench module `name` imports, at any depth of its code (a lazy import still couples)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            # `from ganbench import cli` names a module; `from ganbench.config import X` names its module.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target != "ganbench":
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: _imported(name, path, known) for name, path in mods.items()}


def import_cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each a cycle to break."""
    return _components(import_graph())


def folder_cycles() -> list[list[str]]:
    """The import graph with each folder (subpackage) as one node: components of more than one node
    that hold a folder. ARCHITECTURE.md draws the floors top to bottom; a folder may import only from
    what lies below it, so any such component is a floor importing upward."""
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}

    def unit(module: str) -> str:
        parts = module.split(".")
        return f"ganbench.{parts[1]}/" if len(parts) > 1 and parts[1] in folders else module

    condensed: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        condensed.setdefault(unit(module), set()).update(unit(t) for t in targets if unit(t) != unit(module))
    return [c for c in _components(condensed) if any(node.endswith("/") for node in c)]


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    graph = {node: set(targets) for node, targets in graph.items()}
    for targets in list(graph.values()):
        for target in targets:
            graph.setdefault(target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-module-lines", type=int, default=400)
    parser.add_argument("--max-function-lines", type=int, default=60)
    args = parser.parse_args()
    broken = False
    for title, rows in (
        (f"modules over {args.max_module_lines} lines", long_modules(args.max_module_lines)),
        (f"functions over {args.max_function_lines} lines", long_functions(args.max_function_lines)),
    ):
        print(f"{title}: {len(rows)}")
        for length, what in rows:
            print(f"  {length:5d}  {what}")
        broken |= bool(rows)
    cycles = import_cycles()
    print(f"import cycles: {len(cycles)}")
    for cycle in cycles:
        print("  " + " <-> ".join(cycle))
    broken |= bool(cycles)
    folders = folder_cycles()
    print(f"folder cycles (a floor importing upward): {len(folders)}")
    for cycle in folders:
        print("  " + " <-> ".join(cycle))
    broken |= bool(folders)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
