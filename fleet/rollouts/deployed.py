"""What each cluster runs now, as the rollouts recorded it: the tag and release of its
last successful deployment, computed by the database for any number of clusters.

A rollback re-deploys an earlier deployment tag (the tag step reuses the tag already
on that commit) under the rolled-back rollout's release, so the release a rollback
leaves running is the one of the first successful deployment that made that tag. A
cluster's current deployment is the successful one with no later successful one: an
anti-join the database answers for the whole fleet at once (a correlated lookup per
cluster cost half a second at 10,000 clusters).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import BigIntegerField, Case, Count, Exists, F, OuterRef, Q, QuerySet, Subquery, When

from fleet.inventory.models import Cluster, Release
from fleet.rollouts.models import ClusterDeployment, Rollout
from fleet.rollouts.states import DeploymentState as D


def current_deployments() -> QuerySet[ClusterDeployment]:
    """Each deployed cluster's last successful deployment, with ``running_release_id``."""
    succeeded = ClusterDeployment.objects.filter(state=D.SUCCEEDED)
    later = succeeded.filter(cluster=OuterRef("cluster")).filter(
        Q(finished_at__gt=OuterRef("finished_at")) | Q(finished_at=OuterRef("finished_at"), pk__gt=OuterRef("pk")))
    origin = (succeeded.filter(cluster=OuterRef("cluster"), tag=OuterRef("tag"))
              .order_by("finished_at", "pk").values("rollout__release_id")[:1])
    return (succeeded.exclude(Exists(later)).order_by()
            .annotate(running_release_id=Case(When(rollout__kind=Rollout.Kind.DEPLOY, then=F("rollout__release_id")),
                                              default=Subquery(origin), output_field=BigIntegerField())))


def release_of_tag(cluster: Cluster, tag: str) -> Release | None:
    """The release a deploy tag stands for on ``cluster``: that of the first successful
    deployment that made it (what a rollback to the tag leaves running)."""
    origin = (ClusterDeployment.objects.filter(cluster=cluster, tag=tag, state=D.SUCCEEDED)
              .select_related("rollout__release__channel").order_by("finished_at", "pk").first())
    return origin.rollout.release if origin else None


@dataclass(frozen=True)
class Deployed:
    """A cluster's current deployment: its tag, when it finished, and the release."""

    tag: str
    at: datetime | None
    release: Release | None


def deployed_on(cluster_ids: Iterable[int]) -> dict[int, Deployed]:
    """The current deployment of each of these clusters (those with one): two queries
    whatever their number, for a page of clusters or one cluster."""
    rows = list(current_deployments().filter(cluster_id__in=list(cluster_ids))
                .values_list("cluster_id", "tag", "finished_at", "running_release_id"))
    releases = Release.objects.select_related("channel").in_bulk({row[3] for row in rows if row[3]})
    return {pk: Deployed(tag, at, releases.get(release_id)) for pk, tag, at, release_id in rows}


def running(clusters: QuerySet[Cluster], release_id: int | None) -> QuerySet[Cluster]:
    """The clusters that run ``release_id`` (None: that no rollout has deployed yet)."""
    current = current_deployments()
    if release_id is None:
        return clusters.exclude(pk__in=current.values("cluster_id"))
    return clusters.filter(pk__in=current.filter(running_release_id=release_id).values("cluster_id"))


def release_spread() -> list[tuple[Release | None, int]]:
    """How many clusters run each release (None: not deployed by a rollout yet), most
    clusters first: the grouped deployments, the clusters' count, and the releases."""
    rows = list(current_deployments().values("running_release_id").annotate(n=Count("pk")))
    releases = Release.objects.select_related("channel").in_bulk(
        [row["running_release_id"] for row in rows if row["running_release_id"]])
    spread = [(releases.get(row["running_release_id"]), row["n"]) for row in rows]
    undeployed = Cluster.objects.count() - sum(count for _, count in spread)
    if undeployed:
        spread.append((None, undeployed))
    return sorted(spread, key=lambda item: (-item[1], item[0] is None, str(item[0] or "")))
