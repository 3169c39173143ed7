"""Manifests as the cluster layer handles them: validation and apply order.

An object set arrives as parsed YAML (dicts). Before anything talks to a cluster each
object must say what it is (apiVersion, kind, metadata.name; the one check is
``fleet.core.objects.invalid_reason``): a missing one is a clear error naming the
object by what it does have and its position in the set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fleet.core.objects import ObjectRef, invalid_reason
from fleet.kube.errors import InvalidObject

CRD_GROUP_KIND = ("apiextensions.k8s.io", "CustomResourceDefinition")
NAMESPACE_GROUP_KIND = ("", "Namespace")
# Applied (and dry-run) first: everything else may live in them or be one of them.
_FIRST = {CRD_GROUP_KIND, NAMESPACE_GROUP_KIND}


def ref_of(obj: Mapping[str, Any], *, position: int | None = None, cluster: str = "") -> ObjectRef:
    """The object's identity, or an :class:`InvalidObject` naming what is missing.

    The namespace is taken as written; whether the kind is namespaced is only known
    after discovery (see :meth:`fleet.kube.discovery.Discovery.resolve`).
    """
    reason = invalid_reason(obj, position)
    if reason:
        raise InvalidObject(reason, cluster=cluster)
    return ObjectRef.of(obj)


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
