"""Thin Celery entry points: probing, fanned out one task per cluster so a slow or
unreachable cluster holds up only its own worker slot."""

from __future__ import annotations

from celery import shared_task

from fleet.inventory.models import Cluster
from fleet.kube import services


@shared_task(name="kube.probe_cluster")
def probe_cluster(cluster_id: int) -> dict | None:
    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is None:
        return None  # deleted since it was enqueued: nothing to do
    return services.probe_cluster(cluster).as_dict()


@shared_task(name="kube.probe_fleet")
def probe_fleet() -> int:
    ids = list(Cluster.objects.exclude(credentials_encrypted="").values_list("pk", flat=True))
    for cluster_id in ids:
        probe_cluster.delay(cluster_id)
    return len(ids)
