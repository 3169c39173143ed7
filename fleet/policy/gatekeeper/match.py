"""Which objects a Constraint applies to: Gatekeeper's ``spec.match``, rule for rule.

Followed from open-policy-agent/gatekeeper v3.23.1 ``pkg/mutation/match/match.go``
(``Matches`` and its top-level matchers), ``pkg/wildcard/wildcard.go`` and
``pkg/target/matcher.go`` (``matchAny``); do not "improve" a rule here without
checking it there. An object matches when every matcher below does:

- **kinds**: no entries matches all; else some entry whose ``kinds`` is empty, holds
  ``*`` or the object's kind, *and* whose ``apiGroups`` is empty, holds ``*`` or the
  object's group (``""`` for the core group).
- **scope**: ``Cluster`` matches Namespace objects and objects with neither a
  namespace nor a known Namespace; ``Namespaced`` the others; any other value
  (including typos such as ``cluster``) matches everything.
- **namespaces** / **excludedNamespaces**: the namespace is the object's name for a
  Namespace (group ``""``), else the known Namespace's, else ``metadata.namespace``; an
  object with none of these (cluster-scoped, or a namespaced kind written without a
  namespace) is never disqualified: ``namespaces: [default]`` matches it, as in gator.
  Entries are Gatekeeper wildcards: ``kube-*`` (prefix), ``*-system`` (suffix),
  ``*mid*`` (contains), else exact; nothing else is special (no ``?``, no ``[``).
- **labelSelector**: a ``metav1.LabelSelector`` on the object's labels (matchLabels
  and matchExpressions ANDed; ``In``/``NotIn``/``Exists``/``DoesNotExist``).
- **namespaceSelector**: a Namespace object is judged by its own labels; any other
  object with neither a known Namespace nor a namespace matches; a namespaced object
  whose Namespace is unknown is an *error* (Gatekeeper: "namespace selector for
  namespace-scoped object but missing Namespace"), never a silent match or miss.
- **name**: empty matches all; else a wildcard on ``metadata.name``, or a prefix or
  contains wildcard on ``metadata.generateName``.
- **source**: ``All`` (the default), ``Original`` or ``Generated``; everything Fleet
  judges is ``Original`` (Fleet expands no generators), so ``Generated`` never matches.

A review matches when its object *or* its oldObject matches (an UPDATE that removes
the label a constraint selects on is still judged). The Namespace an object is judged
with comes from the release being applied, else the target cluster (see
``fleet/policy/cluster.py``), else the inventory given to ``policy check``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleet.policy.errors import PolicyError

SOURCES = ("All", "Original", "Generated")
SCHEMA_ERROR = "schema validation failed"  # as Gatekeeper words a constraint its CRD's schema refuses
WILDCARD_RE = re.compile(r"^\*?[-:a-z0-9]*\*?$")  # the CRD pattern of Gatekeeper's wildcard.Wildcard
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class MatchError(PolicyError):
    """A constraint's match cannot be decided for an object (Gatekeeper errors too)."""

    def __init__(self, message: str, *, file: str = ""):
        super().__init__(message, code="constraint", file=file)


def wildcard_matches(pattern: str, candidate: str) -> bool:
    """Gatekeeper's ``wildcard.Wildcard.Matches``."""
    if pattern.startswith("*") and pattern.endswith("*"):
        return _inner(pattern) in candidate
    if pattern.startswith("*"):
        return candidate.endswith(pattern[1:])
    if pattern.endswith("*"):
        return candidate.startswith(pattern[:-1])
    return pattern == candidate


def _generate_name_matches(pattern: str, candidate: str) -> bool:
    """``Wildcard.MatchesGenerateName``: a generated name's prefix can only be matched by
    a prefix or contains wildcard."""
    if pattern.startswith("*") and pattern.endswith("*"):
        return _inner(pattern) in candidate
    if pattern.endswith("*"):
        return candidate.startswith(pattern[:-1])
    return False


def _inner(pattern: str) -> str:
    """``*x*`` without one star each side (Go's TrimPrefix then TrimSuffix: ``*`` is empty)."""
    return pattern[1:-1] if len(pattern) > 1 else ""


@dataclass(frozen=True)
class LabelSelector:
    """A checked ``metav1.LabelSelector`` (``LabelSelectorAsSelector``'s rules)."""

    match_labels: tuple[tuple[str, str], ...]
    expressions: tuple[tuple[str, str, frozenset[str]], ...]

    @classmethod
    def parse(cls, value: Any, where: str) -> LabelSelector:
        if not isinstance(value, Mapping):
            raise PolicyError(f"{where} must be a label selector (matchLabels, matchExpressions)",
                              code="constraint")
        labels = value.get("matchLabels") or {}
        if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
            raise PolicyError(f"{where}.matchLabels must map label keys to strings", code="constraint")
        expressions = []
        for n, expr in enumerate(value.get("matchExpressions") or []):
            at = f"{where}.matchExpressions[{n}]"
            if not isinstance(expr, Mapping) or not isinstance(expr.get("key"), str):
                raise PolicyError(f"{at} needs a key", code="constraint")
            operator, values = expr.get("operator"), expr.get("values") or []
            if operator not in SELECTOR_OPERATORS:
                raise PolicyError(f"{at}: operator {operator!r} is not one of {', '.join(SELECTOR_OPERATORS)}",
                                  code="constraint")
            if operator in ("In", "NotIn") and not values:
                raise PolicyError(f"{at}: operator {operator} needs values", code="constraint")
            if operator in ("Exists", "DoesNotExist") and values:
                raise PolicyError(f"{at}: operator {operator} takes no values", code="constraint")
            expressions.append((expr["key"], operator, frozenset(str(v) for v in values)))
        return cls(tuple(sorted(labels.items())), tuple(expressions))

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(key) != value for key, value in self.match_labels):
            return False
        for key, operator, values in self.expressions:
            present = key in labels
            if operator == "In" and not (present and labels[key] in values):
                return False
            if operator == "NotIn" and present and labels[key] in values:
                return False
            if operator == "Exists" and not present:
                return False
            if operator == "DoesNotExist" and present:
                return False
        return True


@dataclass(frozen=True)
class KindsEntry:
    api_groups: tuple[str, ...]
    kinds: tuple[str, ...]

    def matches(self, group: str, kind: str) -> bool:
        kind_ok = not self.kinds or "*" in self.kinds or kind in self.kinds
        return kind_ok and (not self.api_groups or "*" in self.api_groups or group in self.api_groups)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where} must be a list of strings", code="constraint")
    return tuple(value)


def _wildcards(value: Any, where: str) -> tuple[str, ...]:
    patterns = _strings(value, where)
    for n, pattern in enumerate(patterns):
        _check_wildcard(pattern, f"{where}[{n}]")
    return patterns


def _check_wildcard(pattern: str, where: str) -> None:
    if not WILDCARD_RE.match(pattern):
        raise PolicyError(f"{SCHEMA_ERROR}: {where}: {pattern!r} must match {WILDCARD_RE.pattern} (lower-case "
                          "letters, digits, '-' and ':', with an optional leading or trailing '*')", code="constraint")


@dataclass(frozen=True)
class Match:
    """A Constraint's ``spec.match``, checked once when the bundle loads."""

    kinds: tuple[KindsEntry, ...] = ()
    scope: str = "*"
    namespaces: tuple[str, ...] = ()
    excluded_namespaces: tuple[str, ...] = ()
    label_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    name: str = ""
    source: str = "All"

    @classmethod
    def parse(cls, value: Any, where: str = "spec.match") -> Match:
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise PolicyError(f"{where} must be a mapping", code="constraint")
        kinds = []
        for n, entry in enumerate(value.get("kinds") or []):
            if not isinstance(entry, Mapping):
                raise PolicyError(f"{where}.kinds[{n}] must be a mapping (apiGroups, kinds)", code="constraint")
            kinds.append(KindsEntry(_strings(entry.get("apiGroups"), f"{where}.kinds[{n}].apiGroups"),
                                    _strings(entry.get("kinds"), f"{where}.kinds[{n}].kinds")))
        source = value.get("source") or "All"
        if source not in SOURCES:
            raise PolicyError(f"{SCHEMA_ERROR}: {where}.source {source!r} is not one of {', '.join(SOURCES)}",
                              code="constraint")
        name = value.get("name") or ""
        if not isinstance(name, str):
            raise PolicyError(f"{where}.name must be a string", code="constraint")
        if name:
            _check_wildcard(name, f"{where}.name")
        selectors = {key: LabelSelector.parse(value[key], f"{where}.{key}")
                     for key in ("labelSelector", "namespaceSelector") if value.get(key) is not None}
        return cls(kinds=tuple(kinds), scope=str(value.get("scope") or "*"),
                   namespaces=_wildcards(value.get("namespaces"), f"{where}.namespaces"),
                   excluded_namespaces=_wildcards(value.get("excludedNamespaces"), f"{where}.excludedNamespaces"),
                   label_selector=selectors.get("labelSelector"),
                   namespace_selector=selectors.get("namespaceSelector"), name=name, source=source)

    def matches(self, obj: Mapping[str, Any], namespace: Mapping[str, Any] | None,
                source: str = "Original") -> bool:
        """Whether ``obj`` (whose Namespace object is ``namespace``, if known) matches;
        raises :class:`MatchError` where Gatekeeper's matcher returns an error."""
        meta = obj.get("metadata") or {}
        group = str(obj.get("apiVersion", "")).rpartition("/")[0]
        kind = str(obj.get("kind", ""))
        is_namespace = kind == "Namespace" and group == ""
        declared = str(meta.get("namespace") or "")
        if self.kinds and not any(entry.matches(group, kind) for entry in self.kinds):
            return False
        has_namespace = bool(declared) or namespace is not None
        if self.scope == "Cluster" and not (is_namespace or not has_namespace):
            return False
        if self.scope == "Namespaced" and not (not is_namespace and has_namespace):
            return False
        if is_namespace:
            ns_name = str(meta.get("name") or "")
        elif namespace is not None:
            ns_name = str((namespace.get("metadata") or {}).get("name") or "")
        else:
            ns_name = declared
        known = is_namespace or has_namespace  # else never disqualified by namespace
        if self.namespaces and known and not any(wildcard_matches(p, ns_name) for p in self.namespaces):
            return False
        if self.excluded_namespaces and known and any(
                wildcard_matches(p, ns_name) for p in self.excluded_namespaces):
            return False
        if self.label_selector is not None and not self.label_selector.matches(meta.get("labels") or {}):
            return False
        if self.namespace_selector is not None and not self._namespace_selected(
                obj, meta, namespace, is_namespace, declared):
            return False
        if self.name and not (wildcard_matches(self.name, str(meta.get("name") or ""))
                              or _generate_name_matches(self.name, str(meta.get("generateName") or ""))):
            return False
        return self.source == "All" or self.source == source

    def _namespace_selected(self, obj: Mapping[str, Any], meta: Mapping[str, Any],
                            namespace: Mapping[str, Any] | None, is_namespace: bool, declared: str) -> bool:
        assert self.namespace_selector is not None
        if not is_namespace and namespace is None and not declared:
            return True  # a cluster-scoped object other than a Namespace
        if is_namespace:
            return self.namespace_selector.matches(meta.get("labels") or {})
        if namespace is None:
            raise MatchError(f"namespaceSelector: the Namespace {declared!r} of {obj.get('kind')} "
                             f"{declared}/{meta.get('name')} is neither in the release nor on the cluster "
                             "(Gatekeeper: namespace selector for namespace-scoped object but missing Namespace)")
        return self.namespace_selector.matches((namespace.get("metadata") or {}).get("labels") or {})


def review_matches(match: Match, objects: Sequence[Mapping[str, Any] | None],
                   namespace: Mapping[str, Any] | None) -> bool:
    """Gatekeeper's ``matchAny``: the review's object or its oldObject matches."""
    return any(match.matches(obj, namespace) for obj in objects if obj)


def namespace_excluded(patterns: Sequence[str], obj: Mapping[str, Any]) -> bool:
    """The process excluder of Gatekeeper's Config (``IsNamespaceExcluded``): a Namespace
    by its name, anything else by ``metadata.namespace``."""
    meta = obj.get("metadata") or {}
    is_namespace = obj.get("kind") == "Namespace" and "/" not in str(obj.get("apiVersion", ""))
    name = str(meta.get("name") if is_namespace else meta.get("namespace") or "")
    return any(wildcard_matches(p, name) for p in patterns)
