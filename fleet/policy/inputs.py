"""The documents policies see.

Per object (conftest style and Gatekeeper), ``input`` is the object itself (conftest)
or ``{"review": …, "parameters": …}`` (Gatekeeper). Over the whole release (modules
marked ``# fleet:scope set``), ``input`` is::

    {"objects": [...rendered objects...],
     "cluster": {"name": str, "labels": {str: str}, "channel": str},
     "release": {"from": {"channel", "version", "sha"} | null, "to": {...} | null},
     "change":  {"added": [ref], "changed": [ref], "removed": [ref]}}

where a ref is ``{"apiVersion", "kind", "namespace", "name"}`` and the change compares
the rendered objects with the deployed ones. Every policy also reads that context as
``data.fleet`` ({cluster, release, change}), which is how a per-object policy knows
its cluster — and how the same policy runs under ``conftest --data``.

Gatekeeper templates see more (``fleet/policy/gatekeeper/review.py``): an admission
review per object, and per object the apply will prune (``Admission.deleted``), with
the live object as ``oldObject``, the object's Namespace, Fleet's identity; and
``data.inventory``: the target cluster's live objects of the synced kinds with the
release applied over them (``Admission.inventory``), or, with no cluster (CI), the
release itself plus any objects given (as ``gator test`` does).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fleet.core.objects import ObjectRef, invalid_reason
from fleet.policy.errors import PolicyError

MAX_OBJECTS = 20_000
SET_INPUT_KEYS = ("objects", "cluster", "release", "change")


def check_objects(objects: object, what: str = "objects") -> list[dict[str, Any]]:
    if not isinstance(objects, list):
        raise PolicyError(f"{what} must be a list of Kubernetes objects", code="input")
    if len(objects) > MAX_OBJECTS:
        raise PolicyError(f"{what}: at most {MAX_OBJECTS} objects, got {len(objects)}", code="input")
    for index, obj in enumerate(objects):
        reason = invalid_reason(obj, index)
        if reason:
            raise PolicyError(f"{what}: {reason}", code="input")
    return objects


@dataclass(frozen=True)
class Admission:
    """What Gatekeeper templates see beyond the objects (see the module docstring)."""

    deleted: tuple[dict[str, Any], ...] = ()  # live objects the apply prunes
    inventory: tuple[dict[str, Any], ...] = ()  # data.inventory's objects
    namespaces: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # name -> Namespace
    user_info: Mapping[str, Any] | None = None
    dry_run: bool = False
    plurals: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (group, kind) -> resource
    namespaced: Mapping[tuple[str, str], bool] = field(default_factory=dict)  # from the cluster's discovery


@dataclass(frozen=True)
class EvaluationInput:
    objects: list[dict[str, Any]]
    cluster: dict[str, Any]
    release: dict[str, Any]
    change: dict[str, list[dict[str, str]]]
    old: list[dict[str, Any] | None] = field(default_factory=list)
    admission: Admission = field(default_factory=Admission)

    @property
    def subjects(self) -> list[dict[str, Any]]:
        """What Gatekeeper reviews: each object, then each object the apply prunes."""
        return [*self.objects, *self.admission.deleted]

    @property
    def context(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "release": self.release, "change": self.change}

    def subset(self, indexes: list[int]) -> EvaluationInput:
        """The subjects at ``indexes`` (ascending: objects before pruned ones), in the
        same context."""
        count = len(self.objects)
        kept = [i for i in indexes if i < count]
        deleted = tuple(self.admission.deleted[i - count] for i in indexes if i >= count)
        return EvaluationInput([self.objects[i] for i in kept], self.cluster, self.release, self.change,
                               [self.old[i] for i in kept] if self.old else [],
                               replace(self.admission, deleted=deleted))

    def set_input(self, keys: Iterable[str] = SET_INPUT_KEYS) -> dict[str, Any]:
        """The input of rules over the whole release, reduced to ``keys``."""
        document = {"objects": self.objects, **self.context}
        return {key: document[key] for key in keys}

    def context_json(self, keys: frozenset[str] = frozenset({"*"})) -> str:
        """The context as canonical JSON, reduced to ``keys`` (``*``: all of it)."""
        context = self.context if "*" in keys else {k: v for k, v in self.context.items() if k in keys}
        return json.dumps(context, sort_keys=True, separators=(",", ":"))


def build_input(objects: list[dict[str, Any]], *, cluster: Mapping[str, Any] | None = None,
                release_from: Mapping[str, Any] | None = None,
                release_to: Mapping[str, Any] | None = None,
                deployed: Iterable[dict[str, Any]] | None = None,
                admission: Admission | None = None) -> EvaluationInput:
    """Assemble the evaluation input; ``deployed`` (what runs now) gives the change and
    each object's ``oldObject``."""
    objects = check_objects(objects)
    admission = admission or release_admission(objects)
    cluster_doc = {"name": "", "labels": {}, "channel": "", **(cluster or {})}
    namespaced = admission.namespaced
    previous = {placed_key(o, namespaced): o for o in check_objects(list(deployed or []), "deployed")}
    refs = [ObjectRef.of(obj) for obj in objects]
    added, changed, old = [], [], []
    for obj, ref in zip(objects, refs, strict=True):
        before = previous.get(placed_key(obj, namespaced))
        old.append(before)
        if before is None:
            added.append(ref.as_input())
        elif before != obj:
            changed.append(ref.as_input())
    current = {placed_key(obj, namespaced) for obj in objects}
    removed = [ObjectRef.of(o).as_input() for key, o in previous.items() if key not in current]
    return EvaluationInput(
        objects=objects, cluster=cluster_doc,
        release={"from": dict(release_from) if release_from else None,
                 "to": dict(release_to) if release_to else None},
        change={"added": added, "changed": changed, "removed": removed}, old=old,
        admission=admission)


def release_admission(objects: list[dict[str, Any]], extra: Iterable[dict[str, Any]] = (), *,
                      dry_run: bool = False) -> Admission:
    """With no cluster (CI): the inventory is the release plus ``extra`` (as ``gator
    test`` syncs every object it is given), and Namespaces come from the same."""
    inventory = tuple([*extra, *objects])
    return Admission(inventory=inventory, namespaces=namespaces_of(inventory), dry_run=dry_run)


def placed(obj: dict[str, Any], namespaced: Mapping[tuple[str, str], bool]) -> dict[str, Any]:
    """The object as the apply puts it: a namespaced kind written without a namespace
    goes to ``default`` (as kubectl does), when the cluster's discovery says it is
    namespaced; any other object is returned as it is."""
    meta = obj.get("metadata") or {}
    if meta.get("namespace") or not namespaced.get(ObjectRef.of(obj).group_kind):
        return obj
    return {**obj, "metadata": {**meta, "namespace": "default"}}


def placed_key(obj: dict[str, Any], namespaced: Mapping[tuple[str, str], bool]) -> tuple[str, str, str, str]:
    return ObjectRef.of(placed(obj, namespaced)).key


def namespaces_of(objects: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The Namespace objects among ``objects``, by name (a later one wins)."""
    return {o["metadata"]["name"]: o for o in objects
            if o.get("kind") == "Namespace" and o.get("apiVersion") == "v1"}
