"""The one JSON loader for untrusted text: request bodies (the API's parser), tag
messages, files given to commands.

``json.loads`` recurses in C and raises ``RecursionError`` near Python's recursion limit:
a body of a few kilobytes of ``[`` would otherwise be a 500, and a document a little
shallower than that limit would break whatever walks it next (serializers, audit
snapshots, deep copies). Documents are refused past :data:`~fleet.core.yaml.MAX_DEPTH`
levels, the same bound YAML has (a JSON document is a YAML one).
"""

from __future__ import annotations

import json
from typing import Any

from fleet.core.errors import FleetError
from fleet.core.yaml import MAX_DEPTH


class JsonError(FleetError):
    """Text that is not JSON (``invalid``) or nests too deep (``too-deep``)."""

    domain = "json"
    code = "invalid"


def depth_error(data: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """Why ``data`` (parsed JSON) nests too deep, or None; iterative, containers only."""
    if not isinstance(data, (dict, list)):
        return None
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, level = stack.pop()
        if level > max_depth:
            return f"nested deeper than {max_depth} levels"
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH, source: str = "") -> Any:
    """Parse ``text``; :class:`JsonError` names the line and column of a syntax error."""
    where = f"{source}: " if source else ""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise JsonError(f"{where}JSON nested deeper than {max_depth} levels", code="too-deep") from None
    except json.JSONDecodeError as exc:
        raise JsonError(f"{where}invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except UnicodeDecodeError:
        raise JsonError(f"{where}invalid JSON: not UTF-8 text") from None
    except ValueError as exc:  # NaN and Infinity, which JSON does not have
        raise JsonError(f"{where}invalid JSON: {exc}") from None
    problem = depth_error(data, max_depth)
    if problem:
        raise JsonError(f"{where}JSON {problem}", code="too-deep")
    return data
