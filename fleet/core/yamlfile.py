"""YAML files that remember where each value came from, for errors with line numbers.

Loaded through the one YAML loader (``fleet.core.yaml``), with its limits on size,
depth, aliases and expanded nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.core import yaml
from fleet.core.yaml import YamlError, YamlLimits

Path_ = tuple[str | int, ...]


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

    def error(self, path: Path_, message: str) -> YamlError:
        where = ".".join(str(p) for p in path)
        return YamlError(f"{where}: {message}" if where else message, source=self.file, line=self.line_of(path))


def _build(node: yaml.Node, path: Path_, lines: dict[Path_, int], file: str) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError("mapping keys must be scalars", source=file, line=key_node.start_mark.line + 1)
            key = key_node.value
            if key in result:
                raise YamlError(f"duplicate key {key!r}", source=file, line=key_node.start_mark.line + 1)
            lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = _build(value_node, path + (key,), lines, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), lines, file) for i, item in enumerate(node.value)]
    return yaml.construct(node)


def load_single_document(file: Path, max_bytes: int = 256 * 1024) -> LocatedDocument:
    """Load exactly one YAML document, refusing oversize files and duplicate keys."""
    size = file.stat().st_size
    if size > max_bytes:
        raise YamlError(f"file is {size} bytes; the limit is {max_bytes}", code="too-large", source=str(file))
    try:
        text = file.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise YamlError("file is not UTF-8 text", source=str(file)) from None
    nodes = list(yaml.compose_all(text, YamlLimits(max_bytes=max_bytes), source=str(file)))
    if len(nodes) != 1:
        raise YamlError(f"expected exactly one YAML document, found {len(nodes)}", source=str(file))
    lines: dict[Path_, int] = {}
    data = _build(nodes[0], (), lines, str(file))
    return LocatedDocument(str(file), data, lines)
