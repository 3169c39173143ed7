"""Inventory operations shared by the API, the admin, clusters-as-code sync and the
probe tasks."""

from __future__ import annotations

from typing import Any, Final

from django.db import transaction
from django.utils import timezone

from fleet.accounts import rules
from fleet.audit import services as audit
from fleet.inventory.choices import ClusterStatus
from fleet.inventory.credentials import ClusterCredentials
from fleet.inventory.models import Cluster

# A probe's outcome (``ok`` or the kube adapter's error outcome) -> the cluster's status;
# anything else is an error. The server answered for the first three, so they also
# count as contact.
PROBE_STATUS: Final = {"ok": ClusterStatus.READY, "unauthorized": ClusterStatus.UNAUTHORIZED,
                       "forbidden": ClusterStatus.UNAUTHORIZED, "unreachable": ClusterStatus.UNREACHABLE,
                       "timeout": ClusterStatus.UNREACHABLE}
_ANSWERED: Final = {"ok", "unauthorized", "forbidden"}


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()


def create_cluster(fields: dict[str, Any], credentials: ClusterCredentials | None) -> Cluster:
    """Register a cluster; making one protected is an admin's act (``accounts.rules``)."""
    rules.require_cluster_edit(None, {"protected"} if fields.get("protected") else set())
    cluster = Cluster(**fields)
    cluster.set_credentials(credentials)
    return audit.create(cluster)


def credentials_differ(cluster: Cluster, credentials: ClusterCredentials | None) -> bool:
    return cluster.get_credentials() != credentials


def update_cluster(cluster: Cluster, fields: dict[str, Any],
                   credentials: ClusterCredentials | None | _Unchanged = UNCHANGED) -> Cluster:
    """Update fields and, unless UNCHANGED, replace (or with None remove) credentials.

    Credentials are compared decrypted, so re-sending the same ones is a no-op and
    does not add an audit event. The role rules see what really changes: on a protected
    cluster, anything but pausing and pinning is an admin's (``accounts.rules``).
    """
    secrets_changed: list[str] = []
    if not isinstance(credentials, _Unchanged) and credentials_differ(cluster, credentials):
        fields = {**fields, "credentials_encrypted": credentials.encrypt() if credentials else ""}
        secrets_changed.append("credentials_encrypted")
    changed = {name for name, value in fields.items() if getattr(cluster, name) != value}
    rules.require_cluster_edit(cluster, changed | set(secrets_changed))
    return audit.update(cluster, fields, secrets_changed=secrets_changed)


def delete_cluster(cluster: Cluster) -> None:
    rules.require_cluster_edit(cluster, set(), deleting=True)
    audit.delete(cluster)


def record_cluster_status(cluster: Cluster, *, outcome: str, message: str, version: str) -> None:
    """Record what a probe of ``cluster`` found, from plain values (the inventory knows
    no kube adapter), and refresh ``cluster`` in place.

    ``last_contact_at`` is a plain update (every probe would otherwise add an audit
    event); a change of status or message is a real event and goes through audit.
    """
    now = timezone.now()
    status = PROBE_STATUS.get(outcome, ClusterStatus.ERROR)
    message = message[:500]
    with transaction.atomic():
        current = Cluster.objects.select_for_update().get(pk=cluster.pk)
        if outcome in _ANSWERED:
            Cluster.objects.filter(pk=cluster.pk).update(last_contact_at=now)
            current.last_contact_at = now
        if (current.status, current.status_message) != (status, message):
            audit.update(current, {"status": status, "status_message": message},
                         metadata={"probe": {"outcome": outcome, "version": version}})
    cluster.status, cluster.status_message = current.status, current.status_message
    cluster.last_contact_at = current.last_contact_at
