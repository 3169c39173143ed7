"""Thin Celery entry points: probing, fanned out one task per cluster so a slow or
unreachable cluster holds up only its own worker slot. The kube adapter asks the
cluster; the inventory records the answer."""

from __future__ import annotations

from celery import shared_task

from fleet.inventory import services
from fleet.inventory.models import Cluster
from fleet.kube import services as kube
from fleet.kube.probe import ProbeResult


def probe_and_record(cluster: Cluster) -> ProbeResult:
    """Probe one cluster and record its status (``cluster`` is refreshed in place)."""
    result = kube.probe_cluster(cluster)
    services.record_cluster_status(cluster, outcome=result.outcome, message=result.message,
                                   version=result.version)
    return result


@shared_task(name="inventory.probe_cluster")
def probe_cluster(cluster_id: int) -> dict | None:
    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is None:
        return None  # deleted since it was enqueued: nothing to do
    return probe_and_record(cluster).as_dict()


@shared_task(name="inventory.probe_fleet")
def probe_fleet() -> int:
    ids = list(Cluster.objects.exclude(credentials_encrypted="").values_list("pk", flat=True))
    for cluster_id in ids:
        probe_cluster.delay(cluster_id)
    return len(ids)
