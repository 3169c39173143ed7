"""The one YAML loader: every YAML Fleet reads from outside goes through here.

YAML aliases make a small text stand for a huge (or, with a recursive anchor, endless)
structure: a 1 KB "billion laughs" document expands to 10^9 nodes once anything walks
it (JSON encoding for OPA, a validator, a deep copy). PyYAML builds the aliased graph
cheaply and leaves the explosion to whoever reads it, so limits belong at the load.

Each document is composed by libyaml (C: fast, and it caps nesting itself), then the
composed graph is measured before any Python object is made: its nesting depth, the
alias references it holds, and the number of nodes it has once aliases are expanded.
The measuring walk expands aliases as a consumer would and stops at the first bound
crossed, so it costs at most the node bound, and a bomb is refused in milliseconds.
Only then is the document constructed, with PyYAML's safe constructor (no Python tags).
The text's size is checked before parsing.

:class:`YamlLimits` holds the four bounds; each entry point passes its own size (a
kubeconfig is small, a rendered release large). By default expanded nodes may not
exceed the text's length: an alias-free document never has more nodes than bytes, so
aliases may repeat content but never amplify it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml as pyyaml

from fleet.core.errors import FleetError

# Deep enough for any Kubernetes object (a CRD's schema included), shallow enough that
# code walking the result recursively never meets Python's recursion limit.
MAX_DEPTH = 128
MAX_ALIASES = 1_000
_NODE_FLOOR = 10_000  # small documents may always have this many expanded nodes

Node = pyyaml.Node
ScalarNode, SequenceNode, MappingNode = pyyaml.ScalarNode, pyyaml.SequenceNode, pyyaml.MappingNode


class YamlError(FleetError):
    """YAML that is malformed or exceeds a limit; ``line`` is 1-based where known.

    Codes: ``invalid`` (not YAML), ``too-large`` (text size), ``too-deep``,
    ``too-many-aliases``, ``too-many-nodes`` (aliases expand too far, or forever).
    """

    domain = "yaml"
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, source: str = "", line: int | None = None):
        self.source, self.line = source, line
        super().__init__(message, code=code, detail={"line": line} if line else None)

    def where(self) -> str:
        if self.source and self.line:
            return f"{self.source}:{self.line}"
        return self.source or (f"line {self.line}" if self.line else "")


@dataclass(frozen=True)
class YamlLimits:
    max_bytes: int = 1024 * 1024
    max_depth: int = MAX_DEPTH
    max_aliases: int = MAX_ALIASES
    max_nodes: int | None = None  # None: the text's length (at least _NODE_FLOOR)

    def nodes_for(self, text: str) -> int:
        return self.max_nodes if self.max_nodes is not None else max(len(text), _NODE_FLOOR)


DEFAULT_LIMITS = YamlLimits()


def _line(node_or_error: Any) -> int | None:
    mark = getattr(node_or_error, "start_mark", None) or getattr(node_or_error, "problem_mark", None) \
        or getattr(node_or_error, "context_mark", None)
    return mark.line + 1 if mark is not None else None


def check_node(root: Node, limits: YamlLimits, *, max_nodes: int, source: str = "",
               anchors: bool = True) -> int:
    """Refuse a composed document that nests deeper than ``limits.max_depth``, refers to
    collections by alias more than ``limits.max_aliases`` times, or has more than
    ``max_nodes`` nodes with its aliases expanded (a recursive anchor expands forever);
    return its expanded node count.

    The walk expands aliases as a consumer would, and stops at the first bound crossed,
    so it costs at most ``max_nodes`` steps, whatever the document expands to.
    ``anchors=False`` (the text has no ``&``, so no alias can exist) skips alias tracking.
    """
    if root.value.__class__ is str:
        return 1
    nodes, aliases = 1, 0
    seen: set[int] = set()  # collections met so far: meeting one again is an alias
    # Collections only (scalars are counted, not walked), with their level and whether
    # they are inside an alias's expansion (where a repeat is not another alias written).
    stack: list[tuple[Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, level, expanding = stack.pop()
        if level > limits.max_depth:
            raise YamlError(f"nested deeper than {limits.max_depth} levels", code="too-deep",
                            source=source, line=_line(node))
        if anchors and not expanding:
            key = id(node)
            if key in seen:
                expanding = True
                aliases += 1
                if aliases > limits.max_aliases:
                    raise YamlError(f"more than {limits.max_aliases} aliases", code="too-many-aliases",
                                    source=source, line=_line(node))
            else:
                seen.add(key)
        children = node.value
        if node.__class__ is MappingNode:
            children = [part for pair in children for part in pair]
        nodes += len(children)
        if nodes > max_nodes:
            raise YamlError(f"expands to more than {max_nodes} nodes (aliases repeat too much content)",
                            code="too-many-nodes", source=source, line=_line(node))
        level += 1
        stack.extend([(child, level, expanding) for child in children if child.value.__class__ is not str])
    return nodes


class _Loader(pyyaml.CSafeLoader):
    """libyaml's parser and composer with PyYAML's safe constructor."""


def _check_size(text: str | bytes, limits: YamlLimits, source: str) -> None:
    if len(text) > limits.max_bytes:
        raise YamlError(f"is {len(text)} bytes; the limit is {limits.max_bytes}", code="too-large", source=source)


def _invalid(exc: pyyaml.YAMLError, source: str) -> YamlError:
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc).splitlines()[0]
    return YamlError(f"invalid YAML: {problem}", source=source, line=_line(exc))


def compose_all(text: str, limits: YamlLimits = DEFAULT_LIMITS, *, source: str = "") -> Iterator[Node]:
    """The checked node graph of every non-empty document of ``text`` (for callers that
    need the nodes' positions); raises :class:`YamlError`. The node bound is for the
    whole stream, so many small documents cannot each expand to it."""
    _check_size(text, limits, source)
    budget, anchors = limits.nodes_for(text), "&" in text
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                budget -= check_node(node, limits, max_nodes=budget, source=source, anchors=anchors)
                yield node
    except pyyaml.YAMLError as exc:
        raise _invalid(exc, source) from None
    finally:
        loader.dispose()


def construct(node: Node) -> Any:
    """The Python value of a node :func:`compose_all` returned (PyYAML's safe types only)."""
    constructor = _Loader("")
    try:
        return constructor.construct_document(node)
    except pyyaml.YAMLError as exc:
        raise _invalid(exc, "") from None
    finally:
        constructor.dispose()


def load_all(text: str, limits: YamlLimits = DEFAULT_LIMITS, *, source: str = "") -> list[Any]:
    """Every non-empty document of ``text``, checked against ``limits``, as Python data
    (PyYAML's safe types only)."""
    constructor = _Loader("")
    try:
        documents = [constructor.construct_document(node) for node in compose_all(text, limits, source=source)]
    except pyyaml.YAMLError as exc:
        raise _invalid(exc, source) from None
    finally:
        constructor.dispose()
    return [document for document in documents if document is not None]


def load(text: str, limits: YamlLimits = DEFAULT_LIMITS, *, source: str = "") -> Any:
    """The one document of ``text`` (``None`` if empty); more than one is an error."""
    documents = load_all(text, limits, source=source)
    if len(documents) > 1:
        raise YamlError(f"expected one YAML document, found {len(documents)}", source=source)
    return documents[0] if documents else None


def dump(data: Any) -> str:
    """Block-style YAML of plain data, keys in their given order (what Fleet writes)."""
    return pyyaml.safe_dump(data, sort_keys=False)
