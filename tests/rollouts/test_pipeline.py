"""One cluster's pipeline where it ends before any step runs: a workspace that cannot
be taken, and a deployment whose workers keep dying."""

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from fleet.rollouts import pipeline, services
from fleet.rollouts.models import ClusterDeployment
from fleet.rollouts.states import DeploymentState as D
from fleet.rollouts.states import transition
from tests.factories import ClusterFactory, ReleaseFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def running(operator, settings, tmp_path) -> ClusterDeployment:
    """A claimed deployment on a cluster whose repos do not exist (neither the vendor's
    host nor the internal repo)."""
    settings.FLEET_WORKSPACE_DIR = tmp_path / "workspaces"
    release = ReleaseFactory()
    ClusterFactory(name="lost-1", labels={"env": "prod"}, channel=release.channel,
                   internal_repo_url=f"file://{tmp_path}/gone.git")
    rollout = services.create_rollout(services.RolloutRequest(
        release=release, selector="env=prod", waves=[{"name": "all", "selector": "env=prod"}]),
        get_user_model().objects.get(username="otto-operator"))
    deployment = rollout.deployments.get()
    assert transition(deployment, D.RUNNING, started_at=timezone.now())
    return deployment


def test_a_workspace_that_cannot_be_cloned_fails_the_deployment_at_prepare(running):
    """Cloning happens as the pipeline takes the workspace, before its first step: it
    must fail the deployment with git's reason, not leave it running for the sweeper
    to retry forever."""
    assert pipeline.run(running.pk) == running.rollout_id
    running.refresh_from_db()
    assert running.state == D.FAILED and running.attempts == 1
    assert running.error.startswith("prepare: git fetch failed: fatal: unable to access")
    assert running.steps["prepare"]["ok"] is False and running.steps["prepare"]["error"]
    assert running.finished_at is not None


def test_a_deployment_whose_workers_keep_dying_is_failed_not_resumed_forever(running, settings):
    settings.FLEET_ROLLOUT_MAX_ATTEMPTS = 2
    # Two runs started and never finished: their workers died while rendering.
    ClusterDeployment.objects.filter(pk=running.pk).update(attempts=2, step="render")
    assert pipeline.run(running.pk) == running.rollout_id
    running.refresh_from_db()
    assert running.state == D.FAILED and running.attempts == 3
    assert running.error == "the worker running it stopped 2 times (during render); not resumed again"
    assert running.steps == {}  # nothing ran: not even the workspace was taken
