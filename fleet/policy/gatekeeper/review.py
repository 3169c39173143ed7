"""What a template's Rego reads: ``input.review`` and ``data.inventory``, as Gatekeeper builds them.

``input.review`` is the admission request the API server would send for Fleet's own
apply (server-side apply as Fleet's identity), in the JSON shape of
``admission/v1.AdmissionRequest`` that Gatekeeper's target hands the Rego driver
(open-policy-agent/gatekeeper ``pkg/target/target.go``, ``pkg/target/review.go``;
frameworks ``pkg/client/drivers/rego/driver.go`` adds ``namespaceObject``):

- an object the cluster does not hold is a ``CREATE`` with ``oldObject: null``;
- an object the cluster holds is an ``UPDATE`` with ``oldObject`` the live object;
- an object the apply will prune is a ``DELETE`` whose ``object`` and ``oldObject`` are
  both the live object (Gatekeeper's ``setObjectOnDelete``). Gatekeeper's webhook sees
  DELETE only when its webhook configuration lists it, so a policy set sends these
  only when ``review_deletes`` is on;
- ``kind``/``requestKind`` and ``resource``/``requestResource`` name the object's
  group, version, kind and plural resource (the plural only where the cluster's
  discovery gives it; empty in CI, as gator leaves it); ``name``; ``namespace`` (absent
  when empty, as the Go field is ``omitempty``); ``userInfo`` (the identity Fleet applies
  as); ``dryRun``; ``options`` (``PatchOptions`` of Fleet's apply, ``DeleteOptions`` of its
  prune); ``uid``, stable for the same object and operation so decisions can be reused;
  and ``namespaceObject``, the object's Namespace or ``null``.

``data.inventory`` is Gatekeeper's replicated-data document (``pkg/target/target.go``:
``processUnstructured``): ``cluster[groupVersion][kind][name]`` for cluster-scoped
objects and ``namespace[ns][groupVersion][kind][name]`` for the others.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

FIELD_MANAGER = "fleet"  # what Fleet's server-side apply sends (fleet.kube.constants.FIELD_MANAGER)
DEFAULT_USER = {"username": "fleet"}


def review(obj: Mapping[str, Any], old: Mapping[str, Any] | None, *, operation: str,
           namespace: Mapping[str, Any] | None = None, user_info: Mapping[str, Any] | None = None,
           plural: str = "", dry_run: bool = False) -> dict[str, Any]:
    """``input.review`` without ``object``: engines add it from the objects they already
    hold, so a large object is not copied per constraint."""
    meta = obj.get("metadata") or {}
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    kind = {"group": group, "version": version, "kind": obj.get("kind", "")}
    resource = {"group": group, "version": version, "resource": plural}
    ns = str(meta.get("namespace") or "")
    name = str(meta.get("name") or "")
    document: dict[str, Any] = {
        "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fleet:{operation}:{obj.get('apiVersion')}:"
                                                  f"{obj.get('kind')}:{ns}:{name}")),
        "kind": kind, "resource": resource, "requestKind": kind, "requestResource": resource,
        "name": name, "operation": operation,
        "userInfo": dict(user_info or DEFAULT_USER), "dryRun": dry_run,
        "options": _options(operation, dry_run),
        "oldObject": old,
        "namespaceObject": namespace,
    }
    if ns:
        document["namespace"] = ns
    if not name:
        del document["name"]
    return document


def _options(operation: str, dry_run: bool) -> dict[str, Any]:
    dry = {"dryRun": ["All"]} if dry_run else {}
    if operation == "DELETE":
        return {"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions", "propagationPolicy": "Background", **dry}
    return {"apiVersion": "meta.k8s.io/v1", "kind": "PatchOptions", "fieldManager": FIELD_MANAGER,
            "force": False, **dry}


def inventory(objects: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``data.inventory`` holding ``objects`` (a later object replaces an earlier one of
    the same name)."""
    document: dict[str, Any] = {"cluster": {}, "namespace": {}}
    for obj in objects:
        meta = obj.get("metadata") or {}
        gv, kind, name = str(obj.get("apiVersion", "")), str(obj.get("kind", "")), str(meta.get("name", ""))
        namespace = str(meta.get("namespace") or "")
        if namespace:
            tree = document["namespace"].setdefault(namespace, {})
        else:
            tree = document["cluster"]
        tree.setdefault(gv, {}).setdefault(kind, {})[name] = obj
    return document


def gator_review(obj: Mapping[str, Any], request: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``input.review`` exactly as ``gator verify`` builds it (for suites written against
    gator): of a plain object, an AdmissionRequest with only kind, name, namespace and
    object set (``operation`` and ``uid`` empty); of an AdmissionReview's ``request``,
    that request, with ``object`` = ``oldObject`` for a DELETE (Gatekeeper's
    ``setObjectOnDelete``). ``namespaceObject`` is null in both, as gator leaves it."""
    empty = {"group": "", "version": "", "resource": ""}
    if request is None:
        meta = obj.get("metadata") or {}
        group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
        kind = {"group": group, "version": version, "kind": obj.get("kind", "")}
        document: dict[str, Any] = {"uid": "", "kind": kind, "resource": empty, "operation": "", "userInfo": {},
                                    "object": obj, "oldObject": None, "options": None}
        for key in ("name", "namespace"):
            if meta.get(key):
                document[key] = meta[key]
    else:
        document = {"uid": "", "resource": empty, "operation": "", "userInfo": {}, "object": None,
                    "oldObject": None, "options": None, **request}
        if document.get("operation") == "DELETE":
            document["object"] = document.get("oldObject")
    document["namespaceObject"] = None
    return document
