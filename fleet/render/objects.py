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
from typing import Any, Iterable

import yaml

from fleet.render.errors import RenderError

Identity = tuple[str, str, str, str]


def parse_stream(text: str, source: str) -> list[Any]:
    """All non-empty YAML documents of ``text`` (JSON is YAML too)."""
    try:
        return [doc for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise RenderError(f"invalid YAML{where}: {getattr(exc, 'problem', exc)}", code="parse",
                          path=source) from None


def identity(obj: dict[str, Any]) -> Identity:
    group = obj["apiVersion"].rpartition("/")[0]
    metadata = obj["metadata"]
    return group, obj["kind"], metadata.get("namespace") or "", metadata["name"]


def describe(key: Identity) -> str:
    group, kind, namespace, name = key
    return f"{kind}{'.' + group if group else ''} {namespace + '/' if namespace else ''}{name}"


def validate(documents: Iterable[tuple[str, Any]], max_objects: int) -> list[dict[str, Any]]:
    """Check each ``(source, document)``; return the objects in their rendered order.

    The order is kept (kustomize already puts namespaces and CRDs first, as an apply
    needs); only the hash is order-independent.
    """
    seen: dict[Identity, str] = {}
    objects: list[dict[str, Any]] = []
    for source, obj in documents:
        _check_shape(obj, source)
        key = identity(obj)
        if key in seen:
            raise RenderError(f"duplicate object {describe(key)} (also in {seen[key]})",
                              code="duplicate", path=source)
        seen[key] = source
        objects.append(obj)
        if len(objects) > max_objects:
            raise RenderError(f"more than {max_objects} objects", code="too-large")
    return objects


def _check_shape(obj: Any, source: str) -> None:
    if not isinstance(obj, dict):
        raise RenderError("each document must be a mapping (a Kubernetes object)",
                          code="invalid-object", path=source)
    metadata = obj.get("metadata")
    missing = [field for field, value in (("apiVersion", obj.get("apiVersion")),
                                          ("kind", obj.get("kind")))
               if not isinstance(value, str) or not value]
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) \
            or not metadata["name"]:
        missing.append("metadata.name")
    if missing:
        label = f"{obj.get('kind') or 'object'}"
        raise RenderError(f"{label} lacks {', '.join(missing)}", code="invalid-object", path=source)


def content_hash(objects: list[dict[str, Any]]) -> str:
    canonical = json.dumps(sorted(objects, key=identity), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
