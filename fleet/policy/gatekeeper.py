"""Gatekeeper's formats, read the way Gatekeeper reads them.

A ConstraintTemplate carries Rego for the ``admission.k8s.gatekeeper.sh`` target
(``spec.targets[].rego`` + ``libs``, or the newer ``code[engine=Rego].source``); a
Constraint of the template's kind says which objects it applies to (``spec.match``),
with which ``parameters`` and ``enforcementAction``. The template's ``violation`` rule
sees ``input.review`` (object, oldObject, kind, name, namespace, operation) and
``input.parameters`` — the same document Gatekeeper builds at admission, so library
policies work unchanged. Matching is done here, before any engine runs.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Mapping

from fleet.policy.errors import PolicyError

TARGET = "admission.k8s.gatekeeper.sh"
ENFORCEMENT_ACTIONS = ("deny", "warn", "dryrun")


@dataclass(frozen=True)
class Template:
    kind: str
    rego: str
    libs: tuple[str, ...]
    path: str


@dataclass(frozen=True)
class Constraint:
    kind: str
    name: str
    match: Mapping[str, Any]
    parameters: Mapping[str, Any]
    enforcement_action: str
    path: str

    @property
    def id(self) -> str:
        """The rule name findings and waivers use: ``Kind/name``."""
        return f"{self.kind}/{self.name}"

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return match_object(self.match, obj)


def is_template(doc: Mapping[str, Any]) -> bool:
    return doc.get("kind") == "ConstraintTemplate" and str(
        doc.get("apiVersion", "")).startswith("templates.gatekeeper.sh/")


def is_constraint(doc: Mapping[str, Any]) -> bool:
    return str(doc.get("apiVersion", "")).startswith("constraints.gatekeeper.sh/")


def parse_template(doc: Mapping[str, Any], path: str) -> Template:
    spec = doc.get("spec") or {}
    name = (doc.get("metadata") or {}).get("name", "?")
    kind = (((spec.get("crd") or {}).get("spec") or {}).get("names") or {}).get("kind")
    if not kind:
        raise PolicyError(f"ConstraintTemplate {name}: spec.crd.spec.names.kind is missing",
                          code="template", file=path)
    for target in spec.get("targets") or []:
        if target.get("target") != TARGET:
            continue
        rego, libs = target.get("rego"), list(target.get("libs") or [])
        for code in target.get("code") or []:
            if code.get("engine") == "Rego" and not rego:
                source = code.get("source") or {}
                rego, libs = source.get("rego"), list(source.get("libs") or [])
        if rego:
            return Template(kind=kind, rego=rego, libs=tuple(libs), path=path)
    raise PolicyError(f"ConstraintTemplate {name}: no Rego for target {TARGET} "
                      "(expected spec.targets[].rego or code[engine=Rego])",
                      code="template", file=path)


def parse_constraint(doc: Mapping[str, Any], path: str, templates: Mapping[str, Template]) -> Constraint:
    kind = doc.get("kind", "")
    name = (doc.get("metadata") or {}).get("name", "")
    if kind not in templates:
        raise PolicyError(f"constraint {kind}/{name}: no ConstraintTemplate defines kind {kind!r}",
                          code="constraint", file=path)
    spec = doc.get("spec") or {}
    action = spec.get("enforcementAction", "deny") or "deny"
    if action not in ENFORCEMENT_ACTIONS:
        raise PolicyError(f"constraint {kind}/{name}: enforcementAction {action!r} is not one of "
                          + ", ".join(ENFORCEMENT_ACTIONS), code="constraint", file=path)
    return Constraint(kind=kind, name=name, match=spec.get("match") or {},
                      parameters=spec.get("parameters") or {}, enforcement_action=action, path=path)


def _glob(patterns: list[str], value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def _label_selector(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector: matchLabels plus matchExpressions."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def _kinds(match: Mapping[str, Any], group: str, kind: str) -> bool:
    entries = match.get("kinds")
    if not entries:
        return True
    return any(
        ("*" in (entry.get("apiGroups") or ["*"]) or group in (entry.get("apiGroups") or []))
        and ("*" in (entry.get("kinds") or ["*"]) or kind in (entry.get("kinds") or []))
        for entry in entries
    )


def match_object(match: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    """Gatekeeper's ``spec.match``: kinds, scope, namespaces, excludedNamespaces, name,
    labelSelector. A Namespace object counts as being in the namespace it names.
    ``namespaceSelector`` needs the live Namespace objects and is not supported."""
    meta = obj.get("metadata") or {}
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    kind = str(obj.get("kind", ""))
    if not _kinds(match, group, kind):
        return False
    namespace = meta.get("name", "") if kind == "Namespace" else meta.get("namespace", "")
    scope = match.get("scope", "*")
    if scope == "Cluster" and meta.get("namespace") or scope == "Namespaced" and not meta.get("namespace"):
        return False
    if "namespaces" in match and not (namespace and _glob(match["namespaces"], namespace)):
        return False
    if namespace and _glob(match.get("excludedNamespaces") or [], namespace):
        return False
    if match.get("name") and not fnmatch.fnmatchcase(meta.get("name", ""), match["name"]):
        return False
    return _label_selector(match.get("labelSelector") or {}, meta.get("labels") or {})


def review_meta(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> dict[str, Any]:
    """``input.review`` without the object itself: engines add it, so it is not copied."""
    meta = obj.get("metadata") or {}
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    review: dict[str, Any] = {
        "kind": {"group": group, "version": version, "kind": obj.get("kind", "")},
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "operation": "UPDATE" if old is not None else "CREATE",
    }
    if old is not None:
        review["oldObject"] = old
    return review
