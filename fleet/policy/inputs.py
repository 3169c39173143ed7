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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

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
class EvaluationInput:
    objects: list[dict[str, Any]]
    cluster: dict[str, Any]
    release: dict[str, Any]
    change: dict[str, list[dict[str, str]]]
    old: list[dict[str, Any] | None] = field(default_factory=list)

    @property
    def context(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "release": self.release, "change": self.change}

    def subset(self, indexes: list[int]) -> EvaluationInput:
        """The objects at ``indexes``, in that order, in the same context."""
        return EvaluationInput([self.objects[i] for i in indexes], self.cluster, self.release,
                               self.change, [self.old[i] for i in indexes] if self.old else [])

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
                deployed: Iterable[dict[str, Any]] | None = None) -> EvaluationInput:
    """Assemble the evaluation input; ``deployed`` (what runs now) gives the change."""
    objects = check_objects(objects)
    cluster_doc = {"name": "", "labels": {}, "channel": "", **(cluster or {})}
    previous = {ObjectRef.of(o).key: o for o in check_objects(list(deployed or []), "deployed")}
    refs = [ObjectRef.of(obj) for obj in objects]
    added, changed, old = [], [], []
    for obj, ref in zip(objects, refs):
        before = previous.get(ref.key)
        old.append(before)
        if before is None:
            added.append(ref.as_input())
        elif before != obj:
            changed.append(ref.as_input())
    current = {ref.key for ref in refs}
    removed = [ObjectRef.of(o).as_input() for key, o in previous.items() if key not in current]
    return EvaluationInput(
        objects=objects, cluster=cluster_doc,
        release={"from": dict(release_from) if release_from else None,
                 "to": dict(release_to) if release_to else None},
        change={"added": added, "changed": changed, "removed": removed}, old=old)
