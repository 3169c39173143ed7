"""Inventory operations shared by the API, the admin and clusters-as-code sync."""

from __future__ import annotations

from typing import Any, Final

from fleet.audit import services as audit
from fleet.inventory.credentials import ClusterCredentials
from fleet.inventory.models import Cluster


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()


def create_cluster(fields: dict[str, Any], credentials: ClusterCredentials | None) -> Cluster:
    cluster = Cluster(**fields)
    cluster.set_credentials(credentials)
    return audit.create(cluster)


def credentials_differ(cluster: Cluster, credentials: ClusterCredentials | None) -> bool:
    return cluster.get_credentials() != credentials


def update_cluster(cluster: Cluster, fields: dict[str, Any],
                   credentials: ClusterCredentials | None | _Unchanged = UNCHANGED) -> Cluster:
    """Update fields and, unless UNCHANGED, replace (or with None remove) credentials.

    Credentials are compared decrypted, so re-sending the same ones is a no-op and
    does not add an audit event.
    """
    secrets_changed: list[str] = []
    if not isinstance(credentials, _Unchanged) and credentials_differ(cluster, credentials):
        fields = {**fields, "credentials_encrypted": credentials.encrypt() if credentials else ""}
        secrets_changed.append("credentials_encrypted")
    return audit.update(cluster, fields, secrets_changed=secrets_changed)


def delete_cluster(cluster: Cluster) -> None:
    audit.delete(cluster)
