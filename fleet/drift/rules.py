"""Ignore rules: what drift does not compare and Fleet does not apply.

A rule selects objects (group/kind/namespace/name, each a glob: ``*``, ``?``) on the
clusters its label selector matches, and ignores either fields by JSON pointer
(RFC 6901: ``/spec/replicas``, ``/metadata/labels/team``; a list item by its merge
key's value, ``/spec/template/spec/containers/web/image``, or by index, or ``*``), or
every field owned by the named field managers (``hpa-controller`` owning
``spec.replicas``). The same rule is applied to the diff (the change is counted as
ignored, never shown as drift) and to what the pipeline applies (the field is taken
out of the manifest, so server-side apply lets its owner keep it): self-heal and
rollouts never fight over an ignored field.

Rules are validated when they are written: a bad pointer, glob or selector is refused
with the field at fault, never stored to fail later.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleet.core.labels import LabelError, Selector, parse_selector
from fleet.core.objects import Manifest, ObjectRef
from fleet.drift import ownership
from fleet.drift.errors import DriftError
from fleet.kube.diff import FieldChange, Segment

MAX_POINTERS = 50
MAX_MANAGERS = 20
_GLOB_RE = re.compile(r"^[A-Za-z0-9*?._/\-]{1,253}$")
_MANAGER_RE = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,127}$")


@dataclass(frozen=True)
class CompiledRule:
    """A stored rule, parsed once: matching is cheap enough for every field of every scan."""

    name: str
    group: str
    kind: str
    namespace: str
    object_name: str
    selector: Selector
    pointers: tuple[tuple[str, ...], ...]
    managers: frozenset[str]

    def applies_to(self, ref: ObjectRef, cluster_labels: Mapping[str, str]) -> bool:
        return (fnmatch.fnmatchcase(ref.group, self.group) and fnmatch.fnmatchcase(ref.kind, self.kind)
                and fnmatch.fnmatchcase(ref.namespace, self.namespace)
                and fnmatch.fnmatchcase(ref.name, self.object_name) and self.selector.matches(cluster_labels))

    def hides(self, change: FieldChange, live: Mapping[str, Any] | None) -> bool:
        if any(_covers(pointer, change.segments) for pointer in self.pointers):
            return True
        return bool(self.managers) and any(
            owner.manager in self.managers for owner in ownership.owners(live, change.segments))


def parse_pointer(text: Any, field: str = "json_pointers") -> tuple[str, ...]:
    """RFC 6901 tokens of ``text`` (``~1`` is ``/``, ``~0`` is ``~``)."""
    if not isinstance(text, str) or not text.startswith("/") or len(text) > 1000:
        raise DriftError(f"{text!r} is not a JSON pointer: it must start with '/' (as /spec/replicas)",
                         field=field)
    if re.search(r"~[^01]|~$", text):
        raise DriftError(f"{text!r} is not a JSON pointer: '~' must be followed by 0 or 1", field=field)
    tokens = tuple(token.replace("~1", "/").replace("~0", "~") for token in text[1:].split("/"))
    if any(token == "" for token in tokens):
        raise DriftError(f"{text!r} is not a JSON pointer: it has an empty segment", field=field)
    return tokens


def _token_matches(token: str, segment: Segment) -> bool:
    if token == "*":
        return True
    if isinstance(segment, str):
        return token == segment
    if isinstance(segment, int):
        return token == str(segment)
    return token == str(segment[1])


def _covers(pointer: Sequence[str], segments: Sequence[Segment]) -> bool:
    """The pointer names the field or one of its parents. A change reported whole at a
    parent (a list whose length changed) is not covered by a pointer inside it: the rule
    hides that field, not what else changed around it."""
    return len(pointer) <= len(segments) and all(
        _token_matches(token, segment) for token, segment in zip(pointer, segments, strict=False))


def validate(data: Mapping[str, Any]) -> dict[str, Any]:
    """A rule's fields, checked; raises :class:`DriftError` naming the field at fault."""
    clean: dict[str, Any] = {}
    for name in ("group", "kind", "namespace", "object_name"):
        value = data.get(name, "*")
        if value == "" and name in ("group", "namespace"):
            clean[name] = ""  # the core group; cluster-scoped objects
            continue
        if not isinstance(value, str) or not _GLOB_RE.match(value):
            raise DriftError(f"{value!r} is not a name or glob (letters, digits, . _ / - * ?)", field=name)
        clean[name] = value
    selector = data.get("cluster_selector", "") or ""
    try:
        parse_selector(selector)
    except LabelError as exc:
        raise DriftError(f"bad cluster selector: {exc.message}", field="cluster_selector") from None
    clean["cluster_selector"] = selector
    pointers, managers = data.get("json_pointers") or [], data.get("managers") or []
    if not isinstance(pointers, list) or len(pointers) > MAX_POINTERS:
        raise DriftError(f"json_pointers must be a list of at most {MAX_POINTERS}", field="json_pointers")
    for index, pointer in enumerate(pointers):
        parse_pointer(pointer, f"json_pointers[{index}]")
    if not isinstance(managers, list) or len(managers) > MAX_MANAGERS:
        raise DriftError(f"managers must be a list of at most {MAX_MANAGERS}", field="managers")
    for index, manager in enumerate(managers):
        if not isinstance(manager, str) or not _MANAGER_RE.match(manager):
            raise DriftError(f"{manager!r} is not a field manager name", field=f"managers[{index}]")
        if manager in ownership.OWN_MANAGERS:
            raise DriftError(f"{manager!r} is Fleet's own field manager: ignoring it would ignore everything",
                             field=f"managers[{index}]")
    if not pointers and not managers:
        raise DriftError("a rule ignores fields by json_pointers or by managers: give at least one",
                         field="json_pointers")
    clean["json_pointers"], clean["managers"] = list(pointers), list(managers)
    return clean


def compile_rule(rule) -> CompiledRule:
    return CompiledRule(rule.name, rule.group, rule.kind, rule.namespace, rule.object_name,
                        parse_selector(rule.cluster_selector or ""),
                        tuple(parse_pointer(p) for p in rule.json_pointers), frozenset(rule.managers))


def for_cluster(rules: Iterable[CompiledRule], labels: Mapping[str, str]) -> list[CompiledRule]:
    return [rule for rule in rules if rule.selector.matches(labels)]


def split(changes: Iterable[FieldChange], ref: ObjectRef, live: Mapping[str, Any] | None,
          rules: Sequence[CompiledRule], labels: Mapping[str, str]) -> tuple[list[FieldChange], int]:
    """The changes no rule hides, and how many were hidden."""
    applicable = [rule for rule in rules if rule.applies_to(ref, labels)]
    kept, hidden = [], 0
    for change in changes:
        if any(rule.hides(change, live) for rule in applicable):
            hidden += 1
        else:
            kept.append(change)
    return kept, hidden


# -- the apply side ------------------------------------------------------------------------

def _strip(node: Any, pointer: Sequence[str]) -> None:
    """Remove what ``pointer`` names from ``node`` in place (every match of ``*``)."""
    if not pointer:
        return
    token, rest = pointer[0], pointer[1:]
    if isinstance(node, dict):
        keys = list(node) if token == "*" else [token] if token in node else []
        for key in keys:
            if rest:
                _strip(node[key], rest)
            else:
                del node[key]
    elif isinstance(node, list):
        hits = [i for i, item in enumerate(node) if token == "*" or token == str(i) or (
            isinstance(item, dict) and any(str(item.get(k)) == token for k in ("name", "containerPort", "port")))]
        for index in reversed(hits):
            if rest:
                _strip(node[index], rest)
            else:
                del node[index]


def strip_fields(obj: Manifest, pointers: Iterable[Sequence[str]]) -> Manifest:
    """A copy of ``obj`` without the fields ``pointers`` name."""
    stripped = copy.deepcopy(obj)
    for pointer in pointers:
        if pointer and pointer[0] in ("apiVersion", "kind") or tuple(pointer[:2]) in (
                ("metadata", "name"), ("metadata", "namespace")):
            continue  # identity is never ignored
        _strip(stripped, pointer)
    return stripped


def owned_pointers(live: Mapping[str, Any] | None, managers: frozenset[str]) -> list[tuple[str, ...]]:
    """The leaf fields of ``live`` the ``managers`` own, as pointer tokens (merge-keyed
    list items by their key's value), for taking them out of what Fleet applies."""
    found: list[tuple[str, ...]] = []

    def walk(trie: Mapping[str, Any], at: tuple[str, ...]) -> None:
        children = {k: v for k, v in trie.items() if k != "."}
        if not children and at:
            found.append(at)
        for name, child in children.items():
            if name.startswith("f:"):
                token = name[2:]
            elif name.startswith("k:"):
                try:
                    token = str(next(iter(json.loads(name[2:]).values())))
                except (ValueError, StopIteration, AttributeError):
                    continue
            elif name.startswith("i:"):
                token = name[2:]
            else:
                continue
            walk(child if isinstance(child, Mapping) else {}, (*at, token))

    for owner, trie in ownership.entries(live):
        if owner.manager in managers:
            walk(trie, ())
    return found
