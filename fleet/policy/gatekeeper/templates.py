"""Gatekeeper's policy formats, read and checked the way Gatekeeper checks them.

A ConstraintTemplate (``templates.gatekeeper.sh``) declares exactly one target,
``admission.k8s.gatekeeper.sh``, whose Rego is ``rego`` + ``libs`` (always Rego v0) or
``code[engine=Rego].source`` (``version: v1`` for Rego v1, else v0); ``rego`` wins when
both are given, as in frameworks' ``Convert_v1_Target_To_templates_Target``. Its name
must be its kind in lower case, and its Rego must define ``violation``. A Constraint
(``constraints.gatekeeper.sh``) names a template's kind; its ``spec.parameters`` are
checked against the template's ``openAPIV3Schema`` (Gatekeeper's CRD does the same),
and its ``enforcementAction`` is ``deny``, ``warn``, ``dryrun`` or ``scoped`` (with
``scopedEnforcementActions`` per enforcement point: Fleet's pipeline is
``validation.gatekeeper.sh``, ``policy check``/``verify`` are ``gator.gatekeeper.sh``).

What a set needs synced into ``data.inventory`` (``sync_kinds``) is the union of
Gatekeeper's three sources: a ``Config`` named ``config`` (``spec.sync.syncOnly``),
``SyncSet`` objects (``spec.gvks``), and each template's
``metadata.gatekeeper.sh/requires-sync-data`` annotation. The Config's ``spec.match``
(``excludedNamespaces`` per process) exempts namespaces from review (``webhook``,
``*``) and from the inventory (``sync``, ``*``), as Gatekeeper's process excluder does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from fleet.policy.errors import PolicyError
from fleet.policy.gatekeeper.match import SCHEMA_ERROR, Match

TARGET = "admission.k8s.gatekeeper.sh"
SYNC_ANNOTATION = "metadata.gatekeeper.sh/requires-sync-data"
ACTIONS = ("deny", "warn", "dryrun")
WEBHOOK_POINT = "validation.gatekeeper.sh"
GATOR_POINT = "gator.gatekeeper.sh"
ENFORCEMENT_POINTS = (WEBHOOK_POINT, GATOR_POINT, "audit.gatekeeper.sh", "vap.k8s.io", "*")

KIND_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
GVK = tuple[str, str, str]  # group, version, kind


@dataclass(frozen=True)
class Template:
    kind: str
    rego: str
    libs: tuple[str, ...]
    version: str  # "v0" | "v1"
    path: str
    sync: tuple[frozenset[GVK], ...] = ()  # each requirement: interchangeable GVKs
    schema: Mapping[str, Any] | None = None  # openAPIV3Schema of spec.parameters
    legacy_schema: bool = False  # parameters keep unknown fields (v1beta1's default)


@dataclass(frozen=True)
class Constraint:
    kind: str
    name: str
    match: Match
    parameters: Mapping[str, Any]
    enforcement_action: str
    path: str
    scoped_actions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # point -> actions

    @property
    def id(self) -> str:
        """The rule name findings and waivers use: ``Kind/name``."""
        return f"{self.kind}/{self.name}"

    def action(self, point: str) -> str | None:
        """The effect at enforcement ``point``; None where the constraint is not enforced."""
        if self.enforcement_action != "scoped":
            return self.enforcement_action
        actions = set(self.scoped_actions.get(point, ())) | set(self.scoped_actions.get("*", ()))
        return next((action for action in ACTIONS if action in actions), None)


@dataclass(frozen=True)
class SyncConfig:
    """What of the cluster Gatekeeper would replicate, and which namespaces it skips."""

    kinds: frozenset[GVK] = frozenset()
    requirements: tuple[tuple[str, frozenset[GVK]], ...] = ()  # (template kind, any of these)
    excluded: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # process -> namespaces

    def excluded_from(self, process: str) -> tuple[str, ...]:
        return (*self.excluded.get(process, ()), *self.excluded.get("*", ()))


def is_template(doc: Mapping[str, Any]) -> bool:
    return doc.get("kind") == "ConstraintTemplate" and str(
        doc.get("apiVersion", "")).startswith("templates.gatekeeper.sh/")


def is_constraint(doc: Mapping[str, Any]) -> bool:
    return str(doc.get("apiVersion", "")).startswith("constraints.gatekeeper.sh/")


def is_sync_source(doc: Mapping[str, Any]) -> bool:
    api_version = str(doc.get("apiVersion", ""))
    return (doc.get("kind") == "Config" and api_version.startswith("config.gatekeeper.sh/")) or (
        doc.get("kind") == "SyncSet" and api_version.startswith("syncset.gatekeeper.sh/"))


def _template_error(name: str, message: str, path: str) -> PolicyError:
    return PolicyError(f"ConstraintTemplate {name}: {message}", code="template", file=path)


def parse_template(doc: Mapping[str, Any], path: str) -> Template:
    meta = doc.get("metadata") or {}
    spec = doc.get("spec") or {}
    name = str(meta.get("name") or "?")
    crd_spec = (spec.get("crd") or {}).get("spec") or {}
    kind = (crd_spec.get("names") or {}).get("kind")
    if not kind:
        raise _template_error(name, "spec.crd.spec.names.kind is missing", path)
    if not KIND_RE.match(str(kind)):
        raise _template_error(name, f"kind {kind!r} must be letters and digits, starting with a letter", path)
    if name.lower() != str(kind).lower():
        raise _template_error(name, f"the name must be the kind in lower case ({str(kind).lower()!r})", path)
    targets = spec.get("targets") or []
    if len(targets) != 1:
        raise _template_error(name, f"must declare exactly one target, not {len(targets)}", path)
    target = targets[0]
    if target.get("target") != TARGET:
        raise _template_error(name, f"target {target.get('target')!r} is not {TARGET}", path)
    rego, libs, version = target.get("rego"), list(target.get("libs") or []), "v0"
    if not rego:
        for code in target.get("code") or []:
            if code.get("engine") == "Rego":
                source = code.get("source") or {}
                rego, libs = source.get("rego"), list(source.get("libs") or [])
                version = "v1" if source.get("version") == "v1" else "v0"
    if not rego or not isinstance(rego, str) or not all(isinstance(lib, str) for lib in libs):
        raise _template_error(name, f"no Rego for target {TARGET} (expected spec.targets[].rego or "
                                    "code[engine=Rego].source.rego)", path)
    validation = crd_spec.get("validation") or {}
    schema = validation.get("openAPIV3Schema")
    legacy = validation.get("legacySchema")
    if legacy is None:  # the CRD's default: true before templates.gatekeeper.sh/v1
        legacy = not str(doc.get("apiVersion", "")).endswith("/v1")
    if schema is not None:
        try:
            jsonschema.Draft4Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise _template_error(name, f"spec.crd.spec.validation.openAPIV3Schema: {exc.message}", path) from None
    return Template(kind=str(kind), rego=rego, libs=tuple(libs), version=version, path=path,
                    sync=_sync_requirements(meta.get("annotations") or {}, name, path), schema=schema,
                    legacy_schema=bool(legacy))


def _gvks(groups: Any, versions: Any, kinds: Any) -> frozenset[GVK]:
    return frozenset((g, v, k) for g in groups or [] for v in versions or [] for k in kinds or [])


def _sync_requirements(annotations: Mapping[str, Any], name: str, path: str) -> tuple[frozenset[GVK], ...]:
    text = annotations.get(SYNC_ANNOTATION)
    if text is None:
        return ()
    try:
        compact = json.loads(str(text).strip().strip('"\n'))
        if not isinstance(compact, list) or not all(isinstance(r, list) for r in compact):
            raise ValueError("expected a list of requirements, each a list of clauses")
        requirements = []
        for requirement in compact:
            gvks: set[GVK] = set()
            for clause in requirement:
                if not isinstance(clause, dict) or set(clause) - {"groups", "versions", "kinds"}:
                    raise ValueError("each clause has only groups, versions and kinds")
                gvks |= _gvks(clause.get("groups"), clause.get("versions"), clause.get("kinds"))
            requirements.append(frozenset(gvks))
    except ValueError as exc:
        raise _template_error(name, f"annotation {SYNC_ANNOTATION}: {exc}", path) from None
    return tuple(requirements)


def _scoped_actions(spec: Mapping[str, Any], where: str, path: str) -> dict[str, tuple[str, ...]]:
    scoped: dict[str, list[str]] = {}
    for n, entry in enumerate(spec.get("scopedEnforcementActions") or []):
        action = str((entry or {}).get("action", "")).lower()
        if action not in ACTIONS:
            raise PolicyError(f"{where}: scopedEnforcementActions[{n}].action {action!r} is not one of "
                              + ", ".join(ACTIONS), code="constraint", file=path)
        for point in (entry or {}).get("enforcementPoints") or []:
            point_name = (point or {}).get("name")
            if point_name not in ENFORCEMENT_POINTS:
                raise PolicyError(f"{where}: unknown enforcement point {point_name!r}", code="constraint",
                                  file=path)
            scoped.setdefault(point_name, []).append(action)
    return {point: tuple(actions) for point, actions in scoped.items()}


def parse_constraint(doc: Mapping[str, Any], path: str, templates: Mapping[str, Template]) -> Constraint:
    kind = str(doc.get("kind", ""))
    name = str((doc.get("metadata") or {}).get("name", ""))
    where = f"constraint {kind}/{name}"
    if kind not in templates:
        raise PolicyError(f"{where}: no ConstraintTemplate defines kind {kind!r}", code="constraint", file=path)
    spec = doc.get("spec") or {}
    action = str(spec.get("enforcementAction") or "deny").lower()
    if action not in (*ACTIONS, "scoped"):
        raise PolicyError(f"{where}: enforcementAction {action!r} is not one of {', '.join(ACTIONS)}, scoped",
                          code="constraint", file=path)
    parameters = spec.get("parameters") or {}
    _check_parameters(templates[kind], spec, where, path)
    try:
        match = Match.parse(spec.get("match"))
    except PolicyError as exc:
        raise PolicyError(f"{where}: {exc.message}", code="constraint", file=path) from None
    return Constraint(kind=kind, name=name, match=match, parameters=parameters, enforcement_action=action,
                      path=path, scoped_actions=_scoped_actions(spec, where, path) if action == "scoped" else {})


def _check_parameters(template: Template, spec: Mapping[str, Any], where: str, path: str) -> None:
    """As Gatekeeper's constraint CRD: parameters fit the template's schema, and (unless
    the schema is a legacy one) hold no field it does not declare."""
    if "parameters" not in spec:
        return
    parameters, schema = spec["parameters"], template.schema
    if schema is not None:
        error = jsonschema.exceptions.best_match(jsonschema.Draft4Validator(schema).iter_errors(parameters))
        if error is not None:
            at = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
            raise PolicyError(f"{where}: {SCHEMA_ERROR}: spec.parameters{at}: {error.message}", code="constraint",
                              file=path)
    if template.legacy_schema:
        return
    unknown = ["spec.parameters"] if schema is None else _unknown_fields(parameters, schema, "spec.parameters")
    if unknown:
        raise PolicyError(f"{where}: unknown fields: {unknown} (the template's schema does not declare them)",
                          code="constraint", file=path)


def _unknown_fields(value: Any, schema: Mapping[str, Any], at: str) -> list[str]:
    """The fields of ``value`` a structural schema would prune (Kubernetes' pruning)."""
    if not isinstance(schema, Mapping):
        return []
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [f for n, item in enumerate(value) for f in _unknown_fields(item, schema["items"], f"{at}[{n}]")]
    if not isinstance(value, Mapping):
        return []
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    found = []
    for key, item in value.items():
        if key in properties:
            found += _unknown_fields(item, properties[key], f"{at}.{key}")
        elif isinstance(extra, Mapping):
            found += _unknown_fields(item, extra, f"{at}.{key}")
        elif not (extra is True or schema.get("x-kubernetes-preserve-unknown-fields")):
            found.append(f"{at}.{key}")
    return found


def sync_config(documents: list[tuple[str, Mapping[str, Any]]], templates: Mapping[str, Template],
                used: set[str]) -> SyncConfig:
    """The set's sync: Config ``config`` and SyncSets, plus the requirements of the
    templates some constraint uses (``used``: template kinds)."""
    kinds: set[GVK] = set()
    excluded: dict[str, list[str]] = {}
    for path, doc in documents:
        spec = doc.get("spec") or {}
        if doc.get("kind") == "Config":
            if (doc.get("metadata") or {}).get("name") != "config":
                continue  # Gatekeeper reconciles only the Config named "config"
            entries = (spec.get("sync") or {}).get("syncOnly") or []
            for match in spec.get("match") or []:
                for process in (match or {}).get("processes") or []:
                    excluded.setdefault(str(process), []).extend(map(str, match.get("excludedNamespaces") or []))
        else:
            entries = spec.get("gvks") or []
        for entry in entries:
            if not isinstance(entry, Mapping) or not entry.get("kind") or not entry.get("version"):
                raise PolicyError(f"{doc.get('kind')} {(doc.get('metadata') or {}).get('name')}: each synced "
                                  "kind needs group, version and kind", code="input", file=path)
            kinds.add((str(entry.get("group") or ""), str(entry["version"]), str(entry["kind"])))
    requirements = tuple((kind, requirement) for kind in sorted(used) for requirement in templates[kind].sync)
    return SyncConfig(frozenset(kinds), requirements, {p: tuple(ns) for p, ns in excluded.items()})
