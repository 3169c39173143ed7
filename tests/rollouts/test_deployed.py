"""Which release each cluster runs, from the rollouts' records: the last successful
deployment counts, a failed one does not, and a rollback runs the release of the
deployment that made the tag it returned to."""

from __future__ import annotations

import pytest
from django.utils import timezone

from fleet.inventory.models import Cluster
from fleet.rollouts import steps
from fleet.rollouts.deployed import deployed_on, release_spread, running
from fleet.rollouts.models import ClusterDeployment, Rollout, Wave
from fleet.rollouts.states import DeploymentState as D
from fleet.rollouts.states import RolloutState as R
from tests.factories import ClusterFactory, ReleaseFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def deployment(cluster, release, state: str, tag: str, kind: str = Rollout.Kind.DEPLOY) -> ClusterDeployment:
    """A finished deployment as the pipeline records it (written directly: test data)."""
    rollout = Rollout.objects.create(release=release, kind=kind, strategy=[], author=UserFactory(username="author"),
                                     state=R.SUCCEEDED)
    wave = Wave.objects.create(rollout=rollout, index=0, name="all", max_parallel=1, max_failures="0")
    return ClusterDeployment.objects.create(rollout=rollout, wave=wave, cluster=cluster, state=state, tag=tag,
                                            finished_at=timezone.now())


def test_the_running_release_follows_successes_and_rollbacks():
    first, second = ReleaseFactory(version="1.0.0"), ReleaseFactory(version="1.1.0")
    rolled_back, failed, fresh = (ClusterFactory(name=n, channel=first.channel) for n in ("rb", "failed", "fresh"))
    deployment(rolled_back, first, D.SUCCEEDED, "deploy/2026-01-01/release-1.0")
    deployment(rolled_back, second, D.SUCCEEDED, "deploy/2026-01-02/release-1.1")
    # The rollback rollout carries the release it rolls back; the tag says where it went.
    deployment(rolled_back, second, D.SUCCEEDED, "deploy/2026-01-01/release-1.0", kind=Rollout.Kind.ROLLBACK)
    deployment(failed, first, D.SUCCEEDED, "deploy/2026-01-01/release-1.0")
    deployment(failed, second, D.FAILED, "")

    current = deployed_on([rolled_back.pk, failed.pk, fresh.pk])
    assert {pk: (d.release, d.tag) for pk, d in current.items()} == {
        rolled_back.pk: (first, "deploy/2026-01-01/release-1.0"), failed.pk: (first, "deploy/2026-01-01/release-1.0")}
    assert release_spread() == [(first, 2), (None, 1)]
    assert list(running(Cluster.objects.order_by("name"), first.pk)) == [failed, rolled_back]
    assert list(running(Cluster.objects.all(), second.pk)) == []
    assert list(running(Cluster.objects.all(), None)) == [fresh]


def test_a_rollback_across_channels_leaves_the_cluster_on_the_channel_of_the_tag_it_returned_to():
    old, new = ReleaseFactory(version="1.0.0"), ReleaseFactory(version="1.1.0")  # each on its own channel
    assert old.channel != new.channel
    cluster = ClusterFactory(name="crossed", channel=new.channel)  # the upgrade moved it to 1.1's channel
    deployment(cluster, old, D.SUCCEEDED, "deploy/2026-01-01/release-1.0")
    deployment(cluster, new, D.SUCCEEDED, "deploy/2026-01-02/release-1.1")
    rollback = deployment(cluster, new, D.RUNNING, "deploy/2026-01-01/release-1.0", kind=Rollout.Kind.ROLLBACK)
    assert steps.record(steps.Context(deployment=rollback, workspace=None)) == {"channel": old.channel.name}
    cluster.refresh_from_db()
    assert cluster.channel == old.channel
    ClusterDeployment.objects.filter(pk=rollback.pk).update(state=D.SUCCEEDED)  # one running per cluster
    forward = deployment(cluster, new, D.RUNNING, "deploy/2026-01-03/release-1.1")
    assert steps.record(steps.Context(deployment=forward, workspace=None)) == {"channel": new.channel.name}
    assert Cluster.objects.get(pk=cluster.pk).channel == new.channel
