"""What each cluster runs now, as the rollouts recorded it: the tag and release of its
last successful deployment, computed by the database for any number of clusters.

A rollback re-deploys an earlier deployment tag (the tag step reuses the tag already
on that commit) under the rolled-back rollout's release, so the release a cluster runs
is the one of the *first* successful deployment that made its current tag, not of the
latest deployment. Both are correlated subqueries on indexed columns, so annotating a
page of clusters, or grouping the whole fleet by release, is one query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from django.db.models import Count, OuterRef, QuerySet, Subquery

from fleet.inventory.models import Cluster, Release
from fleet.rollouts.models import ClusterDeployment
from fleet.rollouts.states import DeploymentState as D


def annotate_deployed(clusters: QuerySet[Cluster]) -> QuerySet[Cluster]:
    """Clusters with ``deployed_tag``, ``deployed_at`` and ``deployed_release_id``
    (all None for a cluster no rollout has deployed yet)."""
    last = (ClusterDeployment.objects.filter(cluster=OuterRef("pk"), state=D.SUCCEEDED)
            .order_by("-finished_at", "-pk"))
    origin = (ClusterDeployment.objects.filter(cluster=OuterRef("pk"), state=D.SUCCEEDED, tag=OuterRef("deployed_tag"))
              .order_by("finished_at", "pk"))
    return (clusters.annotate(deployed_tag=Subquery(last.values("tag")[:1]),
                              deployed_at=Subquery(last.values("finished_at")[:1]))
            .annotate(deployed_release_id=Subquery(origin.values("rollout__release_id")[:1])))


@dataclass(frozen=True)
class Deployed:
    """A cluster's current deployment: its tag, when it finished, and the release."""

    tag: str
    at: datetime | None
    release: Release | None


def deployed_on(cluster_ids: Iterable[int]) -> dict[int, Deployed]:
    """The current deployment of each of these clusters (those with one): two queries
    whatever their number, for a page of clusters or one cluster."""
    clusters = annotate_deployed(Cluster.objects.filter(pk__in=list(cluster_ids)).order_by())
    rows = list(clusters.values_list("pk", "deployed_tag", "deployed_at", "deployed_release_id"))
    releases = Release.objects.select_related("channel").in_bulk({row[3] for row in rows if row[3]})
    return {pk: Deployed(tag, at, releases.get(release_id)) for pk, tag, at, release_id in rows if tag}


def release_spread(clusters: QuerySet[Cluster] | None = None) -> list[tuple[Release | None, int]]:
    """How many clusters run each release (None: not deployed by a rollout yet), most
    clusters first: one grouped query, then one for the releases it names."""
    queryset = annotate_deployed(clusters if clusters is not None else Cluster.objects.all())
    rows = list(queryset.order_by().values("deployed_release_id").annotate(n=Count("pk")))
    releases = Release.objects.select_related("channel").in_bulk(
        [row["deployed_release_id"] for row in rows if row["deployed_release_id"]])
    spread = [(releases.get(row["deployed_release_id"]), row["n"]) for row in rows]
    return sorted(spread, key=lambda item: (-item[1], str(item[0] or "")))
