"""Manifests as Fleet handles them: identity, validation and apply order.

An object set arrives as parsed YAML (dicts). Before anything talks to a cluster each
object must say what it is (apiVersion, kind, metadata.name): a missing one is a
clear error naming the object by what it does have and its position in the set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from fleet.kube.errors import InvalidObject

Manifest = dict[str, Any]

CRD_GROUP_KIND = ("apiextensions.k8s.io", "CustomResourceDefinition")
NAMESPACE_GROUP_KIND = ("", "Namespace")
# Applied (and dry-run) first: everything else may live in them or be one of them.
_FIRST = {CRD_GROUP_KIND, NAMESPACE_GROUP_KIND}


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Who an object is: group, version, kind, namespace ("" if cluster-scoped), name."""

    group: str
    version: str
    kind: str
    namespace: str
    name: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_kind(self) -> tuple[str, str]:
        return (self.group, self.kind)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity without the version: the same object whichever version it is read at."""
        return (self.group, self.kind, self.namespace, self.name)

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{kind} {self.namespace}/{self.name}" if self.namespace else f"{kind} {self.name}"


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def ref_of(obj: Mapping[str, Any], *, position: int | None = None, cluster: str = "") -> ObjectRef:
    """The object's identity, or an :class:`InvalidObject` naming what is missing.

    The namespace is taken as written; whether the kind is namespaced is only known
    after discovery (see :meth:`fleet.kube.discovery.Discovery.resolve`).
    """
    if not isinstance(obj, Mapping):
        raise InvalidObject(f"object #{position} is not a mapping", cluster=cluster)
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    api_version, kind, name = obj.get("apiVersion"), obj.get("kind"), metadata.get("name")
    missing = [field for field, value in (("apiVersion", api_version), ("kind", kind),
                                          ("metadata.name", name))
               if not isinstance(value, str) or not value]
    if missing:
        known = " ".join(str(v) for v in (kind, metadata.get("namespace"), name) if v)
        label = f"object #{position}" if position is not None else "object"
        raise InvalidObject(f"{label}{f' ({known})' if known else ''} has no "
                            f"{', '.join(missing)}", cluster=cluster)
    group, version = split_api_version(api_version)
    if not version:
        raise InvalidObject(f"apiVersion {api_version!r} has no version", cluster=cluster,
                            obj=f"{kind} {name}")
    return ObjectRef(group, version, kind, str(metadata.get("namespace") or ""), name)


def refs_of(objects: Iterable[Mapping[str, Any]], *, cluster: str = "") -> list[ObjectRef]:
    """Validate a whole set up front, refusing duplicates (the last would silently win)."""
    refs, seen = [], set()
    for position, obj in enumerate(objects):
        ref = ref_of(obj, position=position, cluster=cluster)
        if ref.key in seen:
            raise InvalidObject("appears twice in the object set", cluster=cluster, obj=ref)
        seen.add(ref.key)
        refs.append(ref)
    return refs


def is_first_phase(ref: ObjectRef) -> bool:
    return ref.group_kind in _FIRST


def crd_defines(crd: Mapping[str, Any]) -> tuple[str, str]:
    """The (group, kind) a CustomResourceDefinition manifest serves."""
    spec = crd.get("spec") or {}
    return (spec.get("group", ""), (spec.get("names") or {}).get("kind", ""))


def condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    """The status condition of type ``kind``, if the object reports one."""
    for entry in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(entry, Mapping) and entry.get("type") == kind:
            return entry
    return None
