"""Kubernetes objects as Fleet names them: one identity for render, policy, kube and drift.

gitops-engine shares one ``ResourceKey`` across sync, diff and cache; Fleet shares
:class:`ObjectRef`. Its ``key`` (group, kind, namespace, name) is the identity across
versions: the same object whichever apiVersion it is written or read at. It has two
renderings, each for one audience:

- ``str(ref)``, ``Deployment.apps prod/web`` (``Kind.group namespace/name``, kubectl's
  way), wherever a person reads about an object: errors, logs, diffs;
- ``ref.path``, ``Deployment/prod/web`` (``Kind/name`` when cluster-scoped), the subject
  that policy waivers' object patterns match and that verdicts record.

:func:`invalid_reason` is the one answer to "is this a Kubernetes object Fleet can
name"; each domain raises it as its own error (a render, a policy input, an apply).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]
Key = tuple[str, str, str, str]


def split_api_version(api_version: str) -> tuple[str, str]:
    """``apps/v1`` → (``apps``, ``v1``); ``v1`` → (``""``, ``v1``)."""
    group, _, version = api_version.rpartition("/")
    return group, version


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Who an object is: group, version, kind, namespace ("" if cluster-scoped), name."""

    group: str
    version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        """The reference of an object that :func:`invalid_reason` accepts; the namespace
        as written (whether the kind is namespaced only a cluster's discovery knows)."""
        metadata = obj["metadata"]
        group, version = split_api_version(obj["apiVersion"])
        return cls(group, version, obj["kind"], str(metadata.get("namespace") or ""), metadata["name"])

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> ObjectRef:
        return cls(data["group"], data["version"], data["kind"], data["namespace"], data["name"])

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_kind(self) -> tuple[str, str]:
        return (self.group, self.kind)

    @property
    def key(self) -> Key:
        """Identity without the version: the same object whichever version it is read at."""
        return (self.group, self.kind, self.namespace, self.name)

    @property
    def path(self) -> str:
        """``Kind/namespace/name`` (``Kind/name`` if cluster-scoped): what waivers match."""
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    def as_dict(self) -> dict[str, str]:
        """For records (what a deployment applied); :meth:`from_dict` reads it back."""
        return {"group": self.group, "version": self.version, "kind": self.kind,
                "namespace": self.namespace, "name": self.name}

    def as_input(self) -> dict[str, str]:
        """As policies see a reference (``input.change``): apiVersion, kind, namespace, name."""
        return {"apiVersion": self.api_version, "kind": self.kind, "namespace": self.namespace,
                "name": self.name}

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{kind} {self.namespace}/{self.name}" if self.namespace else f"{kind} {self.name}"


def invalid_reason(obj: Any, position: int | None = None) -> str | None:
    """Why ``obj`` is not a Kubernetes object Fleet can name (apiVersion with a version,
    kind, metadata.name), named by what it does have and its position; None if it is."""
    label = f"object #{position}" if position is not None else "object"
    if not isinstance(obj, Mapping):
        return f"{label} is not a mapping, so not a Kubernetes object"
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    api_version, kind, name = obj.get("apiVersion"), obj.get("kind"), metadata.get("name")
    missing = [field for field, value in (("apiVersion", api_version), ("kind", kind), ("metadata.name", name))
               if not isinstance(value, str) or not value]
    known = " ".join(str(v) for v in (kind, metadata.get("namespace"), name) if isinstance(v, str) and v)
    if missing:
        return f"{label}{f' ({known})' if known else ''} has no {', '.join(missing)}, so is not a Kubernetes object"
    if not split_api_version(api_version)[1]:
        return f"{label} ({known}): apiVersion {api_version!r} has no version"
    return None
