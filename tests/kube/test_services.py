"""Services on inventory clusters: apply, health and diff through the cached client;
probes with version and latency (the kube adapter asks, the inventory records), status
transitions audited once."""

from __future__ import annotations

import pytest

from fleet.audit.models import AuditEvent
from fleet.celery import app as celery_app
from fleet.inventory import tasks
from fleet.inventory.choices import ClusterStatus
from fleet.inventory.credentials import ClusterCredentials
from fleet.inventory.tasks import probe_and_record
from fleet.kube import services
from fleet.kube.applyset import ApplySet
from fleet.kube.client import client_for, forget_clients
from tests.factories import ClusterFactory
from tests.kube.manifests import configmap, deployment, namespace

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def fresh_clients():
    yield
    forget_clients()


def inventory_cluster(local_cluster, *, token=None, server=None):
    cluster = ClusterFactory(name=f"{local_cluster.name}-{ClusterFactory._meta.model.objects.count()}",
                             api_server_url=server or local_cluster.server)
    cluster.set_credentials(ClusterCredentials(token=token or local_cluster.token,
                                               ca_pem=local_cluster.ca_pem))
    cluster.save()
    return cluster


def status_events(cluster) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="cluster.update", target_id=str(cluster.pk)))


def test_probe_reports_version_and_latency_and_marks_the_cluster_ready(local_cluster):
    cluster = inventory_cluster(local_cluster)
    result = probe_and_record(cluster)
    assert result.ok and result.outcome == "ok"
    assert result.version.startswith("v1.")
    assert 0 < result.latency_ms < 5000
    cluster.refresh_from_db()
    assert (cluster.status, cluster.status_message) == (ClusterStatus.READY, "")
    first_contact = cluster.last_contact_at
    assert first_contact is not None and len(status_events(cluster)) == 1
    # A second probe refreshes the contact time without another audit event.
    probe_and_record(cluster)
    cluster.refresh_from_db()
    assert cluster.last_contact_at > first_contact
    assert len(status_events(cluster)) == 1


@pytest.mark.parametrize("which, status, outcome", [
    ("bad-token", ClusterStatus.UNAUTHORIZED, "unauthorized"),
    ("viewer", ClusterStatus.UNAUTHORIZED, "forbidden"),
    ("closed-port", ClusterStatus.UNREACHABLE, "unreachable"),
])
def test_probe_failures_set_the_status(local_cluster, which, status, outcome):
    token = {"bad-token": "nope", "viewer": local_cluster.viewer_token}.get(which)
    server = "https://127.0.0.1:1" if which == "closed-port" else None
    cluster = inventory_cluster(local_cluster, token=token, server=server)
    result = probe_and_record(cluster)
    assert (result.ok, result.outcome) == (False, outcome)
    cluster.refresh_from_db()
    assert cluster.status == status and cluster.name in cluster.status_message
    assert (cluster.last_contact_at is None) == (which == "closed-port")


def test_the_kube_probe_only_asks_and_records_nothing(local_cluster):
    cluster = inventory_cluster(local_cluster)
    assert services.probe_cluster(cluster).ok
    cluster.refresh_from_db()
    assert (cluster.status, cluster.last_contact_at) == (ClusterStatus.UNKNOWN, None)
    assert status_events(cluster) == []


def test_probe_tasks_fan_out_per_cluster(local_cluster, monkeypatch):
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    ready, refused = inventory_cluster(local_cluster), inventory_cluster(local_cluster, token="nope")
    ClusterFactory()  # no credentials: not probed
    assert tasks.probe_fleet() == 2
    ready.refresh_from_db(), refused.refresh_from_db()
    assert (ready.status, refused.status) == (ClusterStatus.READY, ClusterStatus.UNAUTHORIZED)
    assert tasks.probe_cluster(10**9) is None  # deleted since it was enqueued


def test_clients_are_cached_per_cluster_and_credentials(local_cluster):
    cluster = inventory_cluster(local_cluster)
    assert client_for(cluster) is client_for(cluster)
    old = client_for(cluster)
    cluster.set_credentials(ClusterCredentials(token=local_cluster.viewer_token, ca_pem=local_cluster.ca_pem))
    assert client_for(cluster) is not old


def test_apply_health_and_diff_of_an_inventory_cluster(local_cluster, ns):
    cluster, applyset = inventory_cluster(local_cluster), ApplySet(ns)
    objects = [namespace(ns), configmap(ns, "app"), deployment(ns, "web")]
    assert services.apply(cluster, objects, applyset=applyset, dry_run=True).dry_run
    result = services.apply(cluster, objects, applyset=applyset)
    assert services.health(cluster, result.applied, timeout=60).ok
    assert services.diff(cluster, objects, applyset=applyset).in_sync
    outcomes = services.for_each([cluster, inventory_cluster(local_cluster, token="nope")],
                                 lambda c: services.diff(c, objects, applyset=applyset))
    assert [getattr(outcome, "code", "ok") for _, outcome in outcomes] == ["ok", "unauthorized"]


def test_inventory_clusters_sharing_a_server_do_not_prune_each_other(local_cluster, kube):
    """Each inventory cluster has its own ApplySet, so two of them on one API server
    (each in its own namespace) keep their objects when the other applies."""
    first, second = inventory_cluster(local_cluster), inventory_cluster(local_cluster)
    spaces = [f"shared-{cluster.pk}" for cluster in (first, second)]
    try:
        for cluster, space in zip((first, second), spaces, strict=True):
            services.apply(cluster, [namespace(space), configmap(space, "app")])
        assert services.applyset_for(first).id != services.applyset_for(second).id
        for space in spaces:
            assert kube.get(f"/api/v1/namespaces/{space}/configmaps/app")["metadata"]["name"] == "app"
        assert services.diff(first, [namespace(spaces[0]), configmap(spaces[0], "app")]).in_sync
    finally:
        for cluster in (first, second):
            services.apply(cluster, [])
