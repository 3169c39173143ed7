"""One cluster's pipeline where it fails before any step runs: taking its workspace."""

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from fleet.rollouts import pipeline, services
from fleet.rollouts.states import DeploymentState as D, transition
from tests.factories import ClusterFactory, ReleaseFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def test_a_workspace_that_cannot_be_cloned_fails_the_deployment_at_prepare(operator, settings, tmp_path):
    """Cloning happens as the pipeline takes the workspace, before its first step. A
    repo that is gone must fail the deployment with git's reason, not leave it running
    for the sweeper to retry forever. (Neither the vendor's host nor the internal repo
    exists.)"""
    settings.FLEET_WORKSPACE_DIR = tmp_path / "workspaces"
    release = ReleaseFactory()
    ClusterFactory(name="lost-1", labels={"env": "prod"}, channel=release.channel,
                   internal_repo_url=f"file://{tmp_path}/gone.git")
    rollout = services.create_rollout(services.RolloutRequest(
        release=release, selector="env=prod", waves=[{"name": "all", "selector": "env=prod"}]),
                                      get_user_model().objects.get(username="otto-operator"))
    deployment = rollout.deployments.get()
    assert transition(deployment, D.RUNNING, started_at=timezone.now())

    assert pipeline.run(deployment.pk) == rollout.pk
    deployment.refresh_from_db()
    assert deployment.state == D.FAILED
    assert deployment.error.startswith("prepare: git fetch failed: fatal: unable to access")
    assert deployment.steps["prepare"]["ok"] is False and deployment.steps["prepare"]["error"]
    assert deployment.finished_at is not None
