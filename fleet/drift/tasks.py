"""Thin Celery entry points for drift; the logic is in ``scan``, ``heal``, ``services``."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from fleet.drift import services
from fleet.drift.choices import Trigger


@shared_task(name="drift.scan_cluster", acks_late=True)
def scan_cluster(cluster_id: int, trigger: str = Trigger.MANUAL) -> str:
    drift = services.scan_by_id(cluster_id, trigger=trigger)
    return drift.state if drift else "gone"


@shared_task(name="drift.scan_selector", acks_late=True)
def scan_selector(selector: str, trigger: str = Trigger.SELECTOR) -> int:
    return len(services.scan(selector, trigger=trigger))


@shared_task(name="drift.schedule")
def schedule() -> int:
    """Beat's tick: enqueue a scan for every cluster whose next scan is due (each
    cluster's interval, with jitter, decides when)."""
    due = services.due_for_scan(limit=settings.FLEET_DRIFT_MAX_PER_TICK)
    for cluster_id in due:
        scan_cluster.delay(cluster_id, Trigger.PERIODIC)
    return len(due)


@shared_task(name="drift.prune_history")
def prune_history() -> dict[str, int]:
    return services.prune_history()
