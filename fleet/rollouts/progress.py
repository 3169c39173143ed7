"""Rollout progress as counts per state, computed by the database in one query."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from fleet.rollouts.models import Rollout
from fleet.rollouts.states import DEPLOYMENT_FAILURES
from fleet.rollouts.states import DeploymentState as D

_COUNTED = {
    "total": Q(),
    "succeeded": Q(deployments__state=D.SUCCEEDED),
    "failed": Q(deployments__state__in=DEPLOYMENT_FAILURES),
    "running": Q(deployments__state=D.RUNNING),
    "pending": Q(deployments__state=D.PENDING),
    "skipped": Q(deployments__state__in=(D.SKIPPED, D.CANCELLED)),
}


def with_progress(queryset: QuerySet[Rollout]) -> QuerySet[Rollout]:
    return queryset.annotate(**{f"progress_{name}": Count("deployments", filter=q, distinct=True)
                                for name, q in _COUNTED.items()})


def rollout_progress(rollout: Rollout) -> dict[str, Any]:
    counts = {name: getattr(rollout, f"progress_{name}", None) for name in _COUNTED}
    if counts["total"] is None:
        counts = with_progress(Rollout.objects.filter(pk=rollout.pk)).values(
            *[f"progress_{name}" for name in _COUNTED]).get()
        counts = {name.removeprefix("progress_"): value for name, value in counts.items()}
    done = counts["succeeded"] + counts["failed"] + counts["skipped"]
    counts["percent"] = round(100 * done / counts["total"]) if counts["total"] else 100
    return counts
