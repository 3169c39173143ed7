"""Recording a probe's answer on the inventory, from plain values: no kube adapter, no
cluster. Contact time is refreshed quietly; a change of status is one audit event."""

from __future__ import annotations

import pytest

from fleet.audit.models import AuditEvent
from fleet.inventory.choices import ClusterStatus
from fleet.inventory.services import record_cluster_status
from tests.factories import ClusterFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def events(cluster) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="cluster.update", target_id=str(cluster.pk)))


def test_an_answer_is_contact_and_a_change_of_status_is_one_event():
    cluster = ClusterFactory()
    record_cluster_status(cluster, outcome="ok", message="", version="v1.36.3")
    assert cluster.status == ClusterStatus.READY and cluster.last_contact_at is not None
    [event] = events(cluster)
    assert event.metadata["probe"] == {"outcome": "ok", "version": "v1.36.3"}
    first_contact = cluster.last_contact_at
    record_cluster_status(cluster, outcome="ok", message="", version="v1.36.3")
    cluster.refresh_from_db()
    assert cluster.last_contact_at > first_contact and len(events(cluster)) == 1


@pytest.mark.parametrize("outcome, status, contact", [
    ("forbidden", ClusterStatus.UNAUTHORIZED, True),
    ("timeout", ClusterStatus.UNREACHABLE, False),
    ("tls", ClusterStatus.ERROR, False),  # any outcome without a status of its own
])
def test_outcomes_map_to_statuses(outcome, status, contact):
    cluster = ClusterFactory()
    record_cluster_status(cluster, outcome=outcome, message="x" * 600, version="")
    cluster.refresh_from_db()
    assert (cluster.status, len(cluster.status_message)) == (status, 500)
    assert (cluster.last_contact_at is not None) == contact
