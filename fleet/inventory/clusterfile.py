"""Clusters as code: one YAML file per cluster, validated like the API validates.

Schema (documented with an example in ``clusters/README.md``)::

    apiVersion: fleet/v1
    kind: Cluster
    metadata: {name, labels}
    spec: {apiServer, channel, internalRepo: {url, branch}, paused, pinned, protected,
           credentials: {<field>: {env: VAR} | {file: PATH}}}

Secrets are references, never inline, so the files can live in git.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from fleet.core.yaml import YamlError
from fleet.core.yamlfile import LocatedDocument, load_single_document
from fleet.inventory.credentials import ClusterCredentials, parse_credentials
from fleet.inventory.errors import CredentialError

API_VERSION = "fleet/v1"
# Where each model field lives in the file, for error locations.
FIELD_PATHS: dict[str, tuple[str, ...]] = {
    "name": ("metadata", "name"),
    "labels": ("metadata", "labels"),
    "api_server_url": ("spec", "apiServer"),
    "channel": ("spec", "channel"),
    "internal_repo_url": ("spec", "internalRepo", "url"),
    "internal_branch": ("spec", "internalRepo", "branch"),
    "paused": ("spec", "paused"),
    "pinned": ("spec", "pinned"),
    "protected": ("spec", "protected"),
    "credentials": ("spec", "credentials"),
}
_ALLOWED = {
    (): {"apiVersion", "kind", "metadata", "spec"},
    ("metadata",): {"name", "labels"},
    ("spec",): {"apiServer", "channel", "internalRepo", "paused", "pinned", "protected", "credentials"},
    ("spec", "internalRepo"): {"url", "branch"},
}
MAX_SECRET_FILE_BYTES = 64 * 1024


@dataclass
class ClusterFile:
    """One parsed file: serializer-shaped ``fields`` and resolved ``credentials``."""

    document: LocatedDocument
    fields: dict[str, Any]
    credentials: ClusterCredentials | None  # None: the file does not manage them

    @property
    def name(self) -> str:
        return self.fields.get("name", "")

    def error(self, field: str, message: str) -> YamlError:
        return self.document.error(FIELD_PATHS.get(field, ()), message)


def _check_shape(doc: LocatedDocument) -> None:
    for path, allowed in _ALLOWED.items():
        node: Any = doc.data
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None and path:
            continue
        if not isinstance(node, dict):
            raise doc.error(path, "must be a mapping")
        for key in node:
            if key not in allowed:
                raise doc.error(path + (key,), f"unknown field; expected one of {', '.join(sorted(allowed))}")
    if doc.data.get("apiVersion") != API_VERSION:
        raise doc.error(("apiVersion",), f"must be {API_VERSION!r}")
    if doc.data.get("kind") != "Cluster":
        raise doc.error(("kind",), "must be 'Cluster'")


def _resolve_secret(doc: LocatedDocument, path: tuple, ref: Any, base: Path) -> str:
    if not isinstance(ref, dict) or len(ref) != 1 or not ({"env", "file"} & set(ref)):
        raise doc.error(path, "secrets must be referenced as {env: VARIABLE} or {file: PATH}, never inline")
    if "env" in ref:
        value = os.environ.get(str(ref["env"]))
        if value is None:
            raise doc.error(path, f"environment variable {ref['env']!r} is not set")
        return value
    target = (base / str(ref["file"])).resolve()
    allowed = [Path(d).resolve() for d in settings.FLEET_SECRET_FILE_DIRS]
    if allowed and not any(target.is_relative_to(d) for d in allowed):
        raise doc.error(path, f"secret file {ref['file']!r} is outside FLEET_SECRET_FILE_DIRS")
    try:
        if target.stat().st_size > MAX_SECRET_FILE_BYTES:
            raise doc.error(path, f"secret file {ref['file']!r} is larger than {MAX_SECRET_FILE_BYTES} bytes")
        return target.read_text()
    except OSError as exc:
        raise doc.error(path, f"cannot read secret file {ref['file']!r}: {exc.strerror}") from None


def parse_cluster_file(file: Path) -> ClusterFile:
    """Parse and shape-check one file; field values are validated later by the serializer."""
    doc = load_single_document(file)
    _check_shape(doc)
    metadata, spec = doc.data.get("metadata") or {}, doc.data.get("spec") or {}
    repo = spec.get("internalRepo") or {}
    fields: dict[str, Any] = {
        "name": metadata.get("name"), "labels": metadata.get("labels") or {},
        "api_server_url": spec.get("apiServer"), "channel": spec.get("channel"),
        "internal_repo_url": repo.get("url"),
        **({"internal_branch": repo["branch"]} if "branch" in repo else {}),
        **{flag: spec[flag] for flag in ("paused", "pinned", "protected") if flag in spec},
    }
    credentials = None
    if spec.get("credentials") is not None:
        refs = spec["credentials"]
        if not isinstance(refs, dict):
            raise doc.error(("spec", "credentials"), "must be a mapping")
        resolved = {key: _resolve_secret(doc, ("spec", "credentials", key), ref, file.parent)
                    for key, ref in refs.items()}
        try:
            credentials = parse_credentials(resolved)
        except CredentialError as exc:
            raise doc.error(("spec", "credentials", exc.field), str(exc)) from None
    return ClusterFile(doc, fields, credentials)


def cluster_files(directory: Path) -> list[Path]:
    """The top-level ``*.yaml``/``*.yml`` files; subdirectories (examples) are not read."""
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
