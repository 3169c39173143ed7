"""YAML loading that remembers where each value came from, for errors with line numbers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleet.core.errors import FleetError

Path_ = tuple[str | int, ...]


class YamlFileError(FleetError):
    """A problem in a YAML file, located as ``file:line: message``."""

    domain = "yaml"
    code = "invalid"

    def __init__(self, file: Path | str, line: int | None, message: str):
        self.file, self.line = str(file), line
        super().__init__(message, detail={"file": str(file), "line": line})

    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class LocatedDocument:
    """A parsed document and the 1-based line of every mapping key and sequence item."""

    file: str
    data: Any
    lines: dict[Path_, int]

    def line_of(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def error(self, path: Path_, message: str) -> YamlFileError:
        where = ".".join(str(p) for p in path)
        return YamlFileError(self.file, self.line_of(path), f"{where}: {message}" if where else message)


def _build(node: yaml.Node, path: Path_, lines: dict[Path_, int], file: str) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlFileError(file, key_node.start_mark.line + 1, "mapping keys must be scalars")
            key = key_node.value
            if key in result:
                raise YamlFileError(file, key_node.start_mark.line + 1, f"duplicate key {key!r}")
            lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = _build(value_node, path + (key,), lines, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), lines, file) for i, item in enumerate(node.value)]
    loader = yaml.SafeLoader("")
    return loader.construct_object(node, deep=True)


def load_single_document(file: Path, max_bytes: int = 256 * 1024) -> LocatedDocument:
    """Load exactly one YAML document, refusing oversize files and duplicate keys."""
    size = file.stat().st_size
    if size > max_bytes:
        raise YamlFileError(file, None, f"file is {size} bytes; the limit is {max_bytes}")
    text = file.read_text(encoding="utf-8", errors="strict")
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlFileError(file, mark.line + 1 if mark else None,
                            f"invalid YAML: {exc.problem or exc.context}") from None
    nodes = [n for n in nodes if n is not None]
    if len(nodes) != 1:
        raise YamlFileError(file, None, f"expected exactly one YAML document, found {len(nodes)}")
    lines: dict[Path_, int] = {}
    data = _build(nodes[0], (), lines, str(file))
    return LocatedDocument(str(file), data, lines)
