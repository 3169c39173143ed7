"""Parsing rendered manifests into objects, validating them, and hashing the set.

An object needs apiVersion, kind and metadata.name; two objects with the same
identity (API group, kind, namespace, name) are a mistake the API server would
resolve silently by letting the last one win, so they are refused. The hash is
over the canonical JSON of the objects sorted by identity, so it changes exactly
when what would be applied changes, whatever the file layout, order or key order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from fleet.core import yaml
from fleet.core.objects import ObjectRef, invalid_reason
from fleet.render.errors import RenderError


def parse_stream(text: str, source: str, max_bytes: int) -> list[Any]:
    """All non-empty YAML documents of ``text`` (JSON is YAML too), through the one YAML
    loader's limits (``max_bytes`` is the caller's: a file, or a render's whole output)."""
    try:
        return yaml.load_all(text, yaml.YamlLimits(max_bytes=max_bytes))
    except yaml.YamlError as exc:
        line = f" at line {exc.line}" if exc.line else ""
        raise RenderError(f"{exc.message}{line}", code="parse", path=source) from None


def _key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    return ObjectRef.of(obj).key


def validate(documents: Iterable[tuple[str, Any]], max_objects: int) -> list[dict[str, Any]]:
    """Check each ``(source, document)``; return the objects in their rendered order.

    The order is kept (kustomize already puts namespaces and CRDs first, as an apply
    needs); only the hash is order-independent.
    """
    seen: dict[tuple[str, str, str, str], str] = {}
    objects: list[dict[str, Any]] = []
    for source, obj in documents:
        reason = invalid_reason(obj)
        if reason:
            raise RenderError(reason, code="invalid-object", path=source)
        ref = ObjectRef.of(obj)
        if ref.key in seen:
            raise RenderError(f"duplicate object {ref} (also in {seen[ref.key]})", code="duplicate",
                              path=source)
        seen[ref.key] = source
        objects.append(obj)
        if len(objects) > max_objects:
            raise RenderError(f"more than {max_objects} objects", code="too-large")
    return objects


def content_hash(objects: list[dict[str, Any]]) -> str:
    canonical = json.dumps(sorted(objects, key=_key), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
