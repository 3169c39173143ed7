"""The data migration that moves applied refs out of the apply step's display record:
deployments applied before it must still verify (resumed) and recheck (baking)."""

import importlib

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model

from fleet.rollouts import services
from fleet.rollouts.models import ClusterDeployment
from tests.factories import ClusterFactory, ReleaseFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]
migration = importlib.import_module("fleet.rollouts.migrations.0003_applied_refs_from_steps")
REF = {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "platform", "name": "web"}


@pytest.fixture
def deployments(operator) -> list[ClusterDeployment]:
    release = ReleaseFactory()
    for name in ("applied-1", "fresh-1"):
        ClusterFactory(name=name, labels={"env": "prod"}, channel=release.channel)
    rollout = services.create_rollout(services.RolloutRequest(
        release=release, selector="env=prod", waves=[{"name": "all", "selector": "env=prod"}]),
        get_user_model().objects.get(username="otto-operator"))
    applied, fresh = rollout.deployments.order_by("cluster__name")
    applied.steps = {"prepare": {"ok": True}, "apply": {"ok": True, "detail": {"applied": 1, "refs": [REF]}}}
    applied.save()
    return [applied, fresh]


def test_refs_move_from_the_apply_record_to_their_field_and_back(deployments):
    applied, fresh = deployments
    migration.refs_from_steps(apps, None)
    applied.refresh_from_db()
    fresh.refresh_from_db()
    assert applied.applied_refs == [REF] and fresh.applied_refs == [] and fresh.steps == {}

    ClusterDeployment.objects.filter(pk=applied.pk).update(steps={"apply": {"ok": True, "detail": {"applied": 1}}})
    migration.refs_into_steps(apps, None)
    applied.refresh_from_db()
    assert applied.steps["apply"]["detail"] == {"applied": 1, "refs": [REF]}
