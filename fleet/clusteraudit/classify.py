"""Who made a request, as GitOps sees it: Fleet itself, a Kubernetes component, or someone
else; and whether it changed something (a completed, successful write).

Fleet's identity on a cluster is the user its stored credentials authenticate as there
(``AuditSource.fleet_username``: asked of the cluster with a SelfSubjectReview, or set by
an admin). The field manager alone is not proof (anyone may pass ``--field-manager=fleet``),
so it identifies Fleet only on a cluster whose Fleet user is not known. A request made by
another user impersonating Fleet's is that other user's: the authenticated user is who acted.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from django.conf import settings

from fleet.clusteraudit.models import WRITE_VERBS, Actor
from fleet.kube.applyset import PARENT_FIELD_MANAGER
from fleet.kube.constants import FIELD_MANAGER

FLEET_FIELD_MANAGERS = frozenset({FIELD_MANAGER, PARENT_FIELD_MANAGER})


@dataclass(frozen=True)
class FleetIdentity:
    """Who Fleet is on one cluster: its user there, if known."""

    username: str = ""

    def is_fleet(self, username: str, field_manager: str) -> bool:
        if self.username:
            return username == self.username
        return field_manager in FLEET_FIELD_MANAGERS


def is_system(username: str) -> bool:
    return any(fnmatchcase(username, pattern) for pattern in settings.FLEET_CLUSTER_AUDIT_SYSTEM_USERS)


def is_change(fields: dict[str, Any]) -> bool:
    """A write that completed and succeeded: it changed the cluster."""
    code = fields.get("response_code")
    return (fields["verb"] in WRITE_VERBS and fields["stage"] == "ResponseComplete"
            and code is not None and 200 <= code < 300)


def classify(fields: dict[str, Any], identity: FleetIdentity) -> tuple[str, bool]:
    """(actor, outside GitOps) of one event's fields."""
    if identity.is_fleet(fields["username"], fields["field_manager"]):
        actor = Actor.FLEET
    elif is_system(fields["username"]):
        actor = Actor.SYSTEM
    else:
        actor = Actor.OTHER
    return actor.value, actor == Actor.OTHER and is_change(fields)
