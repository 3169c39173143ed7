"""Reading ``audit.k8s.io/v1`` events as kube-apiserver writes them (webhook batches and log
files alike) into the fields Fleet stores, refusing what is not one.

Threat model: the webhook endpoint is reachable by anyone who can reach Fleet, and a
cluster's API server relays what its clients send (``userAgent``, an ``Audit-ID`` header,
the objects of a request). Every field is type-checked and bounded; an event that is not
an audit event is refused by its position and field, before anything of its batch is
stored. Secrets never reach the database: a Secret's request object keeps its metadata
only, without the last-applied annotation that would repeat its data.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings

from fleet.clusteraudit.errors import ClusterAuditError
from fleet.clusteraudit.models import LEVELS, STAGES

API_VERSION = "audit.k8s.io/v1"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Column limits (models.py); longer values are cut (user agent, URI) or refused (identity).
_CUT = {"request_uri": 1024, "user_agent": 512}
_MAX = {"audit_id": 128, "username": 255, "verb": 32, "api_group": 253, "api_version": 64, "resource": 253,
        "subresource": 64, "namespace": 253, "name": 253, "impersonated_user": 255, "field_manager": 128}
MAX_GROUPS, MAX_SOURCE_IPS = 256, 32


class BadEvent(ClusterAuditError):
    """One event of a batch or file is not an audit event; ``field`` names it as
    ``items[3].stageTimestamp`` (batch) or ``line 12: stageTimestamp`` (file)."""


@dataclass(frozen=True)
class ParsedEvent:
    """The stored fields of one event, before the cluster's classification."""

    fields: dict[str, Any]

    @property
    def username(self) -> str:
        return self.fields["username"]


def _fail(where: str, field: str, message: str) -> BadEvent:
    return BadEvent(f"{where}: {field} {message}", field=f"{where}.{field}" if where else field)


def _str(data: Mapping[str, Any], key: str, where: str, *, required: bool = False, label: str = "") -> str:
    label = label or key
    value = data.get(key)
    if value is None:
        if required:
            raise _fail(where, label, "is missing")
        return ""
    if not isinstance(value, str):
        raise _fail(where, label, f"must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise _fail(where, label, "contains a NUL character")
    return value


def _time(data: Mapping[str, Any], key: str, where: str) -> datetime.datetime:
    text = _str(data, key, where, required=True)
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise _fail(where, key, f"is not an RFC 3339 time: {text[:40]!r}") from None
    if value.tzinfo is None:
        raise _fail(where, key, "has no time zone")
    return value.astimezone(datetime.UTC)


def _strings(data: Mapping[str, Any], key: str, where: str, label: str, limit: int) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(where, label, "must be a list of strings")
    if len(value) > limit:
        raise _fail(where, label, f"has more than {limit} entries")
    if any("\x00" in v for v in value):
        raise _fail(where, label, "contains a NUL character")
    return [v[:255] for v in value]


def _mapping(data: Mapping[str, Any], key: str, where: str, label: str = "") -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(where, label or key, "must be an object")
    return value


def field_manager_of(request_uri: str) -> str:
    """The ``fieldManager`` a write named in its query (kubectl sends ``kubectl-edit``,
    ``kubectl-client-side-apply``…); "" when it named none (the server then uses the user
    agent's first word)."""
    if "fieldManager=" not in request_uri:  # most requests (every read): skip parsing the URI
        return ""
    values = parse_qs(urlsplit(request_uri).query).get("fieldManager")
    return values[0][: _MAX["field_manager"]] if values else ""


def redact(resource: str, api_group: str, obj: Any) -> Any:
    """What may be stored of a request object: a Secret's metadata only (no data, no
    last-applied annotation, which holds the data again), and nothing larger than
    ``FLEET_CLUSTER_AUDIT_MAX_OBJECT_BYTES``."""
    if obj is None:
        return None
    if (resource == "secrets" and not api_group) or (isinstance(obj, Mapping) and obj.get("kind") == "Secret"):
        metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
        kept: dict[str, Any] = {"redacted": "Secret contents are never stored"}
        if isinstance(metadata, Mapping):
            meta = {k: v for k, v in metadata.items() if k in ("name", "namespace", "labels", "annotations", "uid")}
            if isinstance(meta.get("annotations"), Mapping):
                meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k != LAST_APPLIED}
            kept["metadata"] = meta
        return kept
    text = json.dumps(obj, separators=(",", ":"))
    if len(text) > settings.FLEET_CLUSTER_AUDIT_MAX_OBJECT_BYTES:
        return {"omitted": f"request object of {len(text)} bytes is over the limit of "
                           f"{settings.FLEET_CLUSTER_AUDIT_MAX_OBJECT_BYTES} bytes"}
    if "\\u0000" in text:
        # A ConfigMap may hold a NUL; PostgreSQL's jsonb cannot, and one such write must not
        # make the whole batch (everyone's events) fail: it is kept as U+FFFD.
        return json.loads(text.replace("\\u0000", "\\ufffd"))
    return obj


def parse_event(raw: Any, where: str) -> ParsedEvent:
    """The stored fields of one ``audit.k8s.io/v1`` event; :class:`BadEvent` names the
    first field that is wrong, prefixed with ``where`` (``items[3]``)."""
    if not isinstance(raw, Mapping):
        raise BadEvent(f"{where}: is not an object", field=where)
    api_version = raw.get("apiVersion")
    if api_version is not None and api_version != API_VERSION:
        raise _fail(where, "apiVersion", f"is {str(api_version)[:40]!r}, expected {API_VERSION}")
    stage = _str(raw, "stage", where, required=True)
    if stage not in STAGES:
        raise _fail(where, "stage", f"is {stage[:40]!r}, expected one of {', '.join(STAGES)}")
    level = _str(raw, "level", where, required=True)
    if level not in LEVELS:
        raise _fail(where, "level", f"is {level[:40]!r}, expected one of {', '.join(LEVELS)}")
    user = _mapping(raw, "user", where)
    impersonated = _mapping(raw, "impersonatedUser", where)
    ref = _mapping(raw, "objectRef", where)
    status = _mapping(raw, "responseStatus", where)
    code = status.get("code")
    if code is not None and (not isinstance(code, int) or isinstance(code, bool) or not 0 <= code < 1000):
        raise _fail(where, "responseStatus.code", "must be an HTTP status")
    request_uri = _str(raw, "requestURI", where, required=True)
    fields: dict[str, Any] = {
        "audit_id": _str(raw, "auditID", where, required=True),
        "stage": stage, "level": level,
        "request_received_at": _time(raw, "requestReceivedTimestamp", where),
        "stage_at": _time(raw, "stageTimestamp", where),
        "username": _str(user, "username", where, label="user.username"),
        "groups": _strings(user, "groups", where, "user.groups", MAX_GROUPS),
        "impersonated_user": _str(impersonated, "username", where, label="impersonatedUser.username"),
        "impersonated_groups": _strings(impersonated, "groups", where, "impersonatedUser.groups", MAX_GROUPS),
        "verb": _str(raw, "verb", where, required=True),
        "api_group": _str(ref, "apiGroup", where, label="objectRef.apiGroup"),
        "api_version": _str(ref, "apiVersion", where, label="objectRef.apiVersion"),
        "resource": _str(ref, "resource", where, label="objectRef.resource"),
        "subresource": _str(ref, "subresource", where, label="objectRef.subresource"),
        "namespace": _str(ref, "namespace", where, label="objectRef.namespace"),
        "name": _str(ref, "name", where, label="objectRef.name"),
        "request_uri": request_uri[: _CUT["request_uri"]],
        "response_code": code,
        "source_ips": _strings(raw, "sourceIPs", where, "sourceIPs", MAX_SOURCE_IPS),
        "user_agent": _str(raw, "userAgent", where)[: _CUT["user_agent"]],
        "field_manager": field_manager_of(request_uri),
    }
    if not fields["audit_id"]:
        raise _fail(where, "auditID", "is empty")
    for key, limit in _MAX.items():
        if len(fields[key]) > limit:
            raise _fail(where, key, f"is longer than {limit} characters")
    fields["request_object"] = redact(fields["resource"], fields["api_group"], raw.get("requestObject"))
    return ParsedEvent(fields)


def parse_event_list(body: Any) -> list[ParsedEvent]:
    """Every event of an ``EventList`` (as the webhook backend posts it); the first bad one
    refuses the whole list."""
    if not isinstance(body, Mapping):
        raise BadEvent("the body is not an EventList object", field="body")
    if body.get("kind") != "EventList":
        raise BadEvent(f"kind is {str(body.get('kind'))[:40]!r}, expected EventList", field="kind")
    if body.get("apiVersion") != API_VERSION:
        raise BadEvent(f"apiVersion is {str(body.get('apiVersion'))[:40]!r}, expected {API_VERSION}",
                       field="apiVersion")
    items = body.get("items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise BadEvent("items must be a list", field="items")
    return [parse_event(item, f"items[{index}]") for index, item in enumerate(items)]
