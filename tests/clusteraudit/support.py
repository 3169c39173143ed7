"""Audit events as kube-apiserver writes them (``audit.k8s.io/v1``), for the tests."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

T0 = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)


def stamp(at: datetime.datetime) -> str:
    """Go's MicroTime, as the API server writes it."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(*, user: str = "alice@corp", verb: str = "patch", resource: str = "deployments", group: str = "apps",
          namespace: str = "prod", name: str = "web", stage: str = "ResponseComplete", code: int = 200,
          at: datetime.datetime = T0, audit_id: str | None = None, field_manager: str = "kubectl-edit",
          user_agent: str = "kubectl/v1.36.3 (linux/amd64) kubernetes/abcdef0", level: str = "RequestResponse",
          request_object: Any = None, groups: tuple[str, ...] = ("system:authenticated",),
          **extra: Any) -> dict[str, Any]:
    query = f"?fieldManager={field_manager}" if field_manager else ""
    path = f"/apis/{group}/v1" if group else "/api/v1"
    body = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level,
        "auditID": audit_id or str(uuid.uuid4()), "stage": stage,
        "requestURI": f"{path}/namespaces/{namespace}/{resource}/{name}{query}", "verb": verb,
        "user": {"username": user, "groups": list(groups)},
        "sourceIPs": ["10.1.2.3"], "userAgent": user_agent,
        "objectRef": {"resource": resource, "namespace": namespace, "name": name, "apiGroup": group,
                      "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": stamp(at), "stageTimestamp": stamp(at + datetime.timedelta(milliseconds=12)),
        **extra,
    }
    if request_object is not None:
        body["requestObject"] = request_object
    return body


def event_list(*events: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": list(events)}
