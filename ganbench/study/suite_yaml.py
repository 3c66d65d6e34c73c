"""Reading a suite file's YAML: data only, every key once, aliases bounded.

`yaml.safe_load` builds data, never objects, but two things in it betray a user: a key written twice
in one mapping silently keeps the last (`steps: 4 … steps: 400000`), and aliases of aliases ("billion
laughs") make a few hundred bytes stand for billions of values, which any code that walks or prints
them (a description turned into text) expands until memory runs out. This loader refuses both, with
the line; YAML merge keys (`<<: *base`, then keys that override it) stay allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 4 * 1024 * 1024  # a suite is a page of text; the largest shipped is a few kB
MAX_VALUES = 200_000  # scalars and collections after expanding every alias; a 10 000-run suite needs < 1 000

_MERGE = "tag:yaml.org,2002:merge"


class SuiteYamlError(ValueError):
    """The text is not a suite's YAML (the message says where and why)."""


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first_line.get(key)
                except TypeError:  # an unhashable key: safe_load's own error says so
                    continue
                if seen is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key '{key}' is given twice in one mapping (first on line {seen}); YAML "
                        "would silently keep the last", key_node.start_mark)
                first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand to more than MAX_VALUES nodes, or that refers to itself."""
    size: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in size:
            continue
        children = _children(node)
        if not children_done:
            if id(node) in open_nodes:
                raise SuiteYamlError(f"line {node.start_mark.line + 1}: an alias refers to a value that "
                                     "contains it (a recursive structure)")
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in size)
            continue
        open_nodes.discard(id(node))
        size[id(node)] = 1 + sum(size[id(child)] for child in children)
        if size[id(node)] > MAX_VALUES:
            raise SuiteYamlError(f"line {node.start_mark.line + 1}: its aliases expand to more than {MAX_VALUES:,} "
                                 "values (aliases of aliases?); write the values out")


def load_yaml(path: Path) -> Any:
    """The suite file's data; `SuiteYamlError` naming the line for anything else."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise SuiteYamlError(f"{path.stat().st_size:,} bytes: a suite file is at most {MAX_FILE_BYTES:,}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SuiteYamlError(f"not UTF-8 text ({err})") from None
    try:
        loader = _Loader(text)  # its reader refuses control characters already
    except yaml.YAMLError as err:
        raise SuiteYamlError(f"not valid YAML: {err}") from None
    loader.name = str(path)  # marks say the file, not '<unicode string>'
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _check_expansion(root)
        return loader.construct_document(root)
    except yaml.YAMLError as err:
        raise SuiteYamlError(f"not valid YAML: {err}") from None
    except RecursionError:
        raise SuiteYamlError("nested too deeply to be a suite") from None
    finally:
        loader.dispose()
