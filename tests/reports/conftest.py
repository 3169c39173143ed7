"""A real rollout's records, for the reports: four rollouts through the real services
and pipeline on the session's real local clusters (real git, real policy engine),
driven in process so the same scenario runs on PostgreSQL and SQLite.

    #1 deploy 1.0.0: canary local-1, then local-2 and local-3 after grace-admin's
       approval; local-3 is blocked by the frozen-configmaps policy.
    #2 deploy 1.0.0 to local-3 again: grace-admin waives the rule while it runs
       (an emergency change), and it passes.
    #3 deploy 1.1.1 to local-1 and local-2: the second wave's approval is switched off
       in the database before it starts (an emergency change: approval skipped).
    #4 rollback of #3 (all), by grace-admin: both clusters return to 1.0.0.
ada-admin creates #1-#3. A fourth inventory cluster, spare-1, is never deployed.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from fleet.accounts.roles import Role
from fleet.core import context
from fleet.dev import testrepo
from fleet.dev.localfleet.register import register
from fleet.inventory.models import Channel, Cluster, Release
from fleet.policy.services import import_policy_set
from fleet.rollouts import orchestrator, pipeline, services, steps
from fleet.rollouts.models import Rollout, Wave
from fleet.rollouts.states import ROLLOUT_FINISHED
from tests.conftest import make_client
from tests.e2e.conftest import DENY_CONFIGMAPS
from tests.factories import ClusterFactory


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """The scenario leaves the session's shared clusters deployed (local-3 holds the
    ConfigMap its policy forbids, waived): run it after every other test, the end-to-end
    ones included, which expect the clusters as the session started them."""
    last = [item for item in items if item.get_closest_marker("cluster") and "tests/reports/" in item.nodeid]
    items[:] = [item for item in items if item not in last] + last


@dataclass
class Scenario:
    started: datetime.datetime
    finished: datetime.datetime
    rollouts: list[Rollout]
    clusters: dict[str, Cluster]
    repos: dict[str, Path]
    ada: APIClient
    grace: APIClient
    releases: dict[str, Release]


def drive(rollout: Rollout, django_capture_on_commit_callbacks) -> Rollout:
    """Advance and run deployments in process until the rollout ends or waits for an approval."""
    for _ in range(50):
        queued: list[int] = []
        scheduler = orchestrator.Scheduler(run_deployment=queued.append, advance=lambda pk: None,
                                           advance_later=lambda pk, delay: None, recheck_health=steps.recheck_health)
        with django_capture_on_commit_callbacks(execute=True):
            orchestrator.advance(rollout.pk, scheduler)
        for deployment_id in queued:
            with context.activate(source="task", actor="task:rollouts.run_deployment"):
                pipeline.run(deployment_id)
        rollout.refresh_from_db()
        waiting = rollout.waves.filter(state="awaiting_approval").exists()
        if rollout.state in ROLLOUT_FINISHED or (waiting and not queued):
            return rollout
    raise AssertionError(f"rollout #{rollout.pk} did not settle: {rollout.state}")


@pytest.fixture
def scenario(local_fleet, db, tmp_path, settings, django_capture_on_commit_callbacks) -> Scenario:
    settings.FLEET_WORKSPACE_DIR = tmp_path / "workspaces"
    settings.FLEET_ROLLOUT_HEARTBEAT_TIMEOUT = 3600  # no heartbeat thread writes while the test holds the db
    started = timezone.now()
    primary = testrepo.create_primary_repo(tmp_path / "vendor" / "platform.git")
    channels = {v: Channel.objects.create(name=f"platform-{v.replace('.', '-')}", repo_url=primary.url,
                                          branch=f"release-{v}") for v in ("1.0", "1.1")}
    releases = {"1.0": Release.objects.create(channel=channels["1.0"], version="1.0.0",
                                              upstream_sha=primary.head("release-1.0")),
                "1.1": Release.objects.create(channel=channels["1.1"], version="1.1.1",
                                              upstream_sha=primary.head("release-1.1"))}
    repos = {c.name: testrepo.create_internal_repo(tmp_path / "internal" / f"{c.name}.git", primary=primary,
                                                   at=primary.head("release-1.0")) for c in local_fleet.clusters}
    labels = {"local-1": {"ring": "canary", "env": "prod"}, "local-2": {"ring": "main", "env": "prod"},
              "local-3": {"ring": "main", "env": "staging", "policy-test": "deny"}}
    ada, grace = make_client(Role.ADMIN, "ada-admin"), make_client(Role.ADMIN, "grace-admin")
    with context.activate(source="cli", actor="setup"):
        clusters = {c.name: c for c in register(local_fleet.clusters, channel=channels["1.0"],
                                                repo_url=lambda n: str(repos[n]), labels=lambda n: labels[n])}
        policy_dir = tmp_path / "policy"
        policy_dir.mkdir()
        (policy_dir / "frozen.rego").write_text(DENY_CONFIGMAPS)
        import_policy_set("frozen-configmaps", policy_dir, selector="policy-test=deny")
    ClusterFactory(name="spare-1", labels={"env": "prod"}, channel=channels["1.0"],
                   internal_repo_url=f"file://{tmp_path}/internal/spare-1.git")  # never created
    author, approver = (get_user_model().objects.get(username=n) for n in ("ada-admin", "grace-admin"))

    def create(release: Release, waves: list[dict], user=author) -> Rollout:
        with context.activate(source="api", actor=user.username):
            rollout = services.create_rollout(services.RolloutRequest(
                release=release, selector="fleet.dev/local", waves=waves, clusters=[
                    n for w in waves for n in w["clusters"]]), user)
            return services.start(rollout)

    first = create(releases["1.0"], [
        {"name": "canary", "clusters": ["local-1"]},
        {"name": "main", "clusters": ["local-2", "local-3"], "max_parallel": 2, "max_failures": "1",
         "require_approval": True}])
    first = drive(first, django_capture_on_commit_callbacks)
    with context.activate(source="api", actor="grace-admin"):
        services.approve(first, approver)
    first = drive(first, django_capture_on_commit_callbacks)
    assert first.state == "succeeded", first.reason
    rule = first.deployments.get(cluster__name="local-3").policy["violations"][0]["rule"]

    second = create(releases["1.0"], [{"name": "retry", "clusters": ["local-3"]}])
    waiver = grace.post("/api/v1/policy/waivers/", {
        "name": "configmaps-local-3", "rule": rule, "cluster_selector": "policy-test=deny",
        "reason": "app-config must ship today (CHG-1234)",
        "expires_at": (timezone.now() + datetime.timedelta(days=7)).isoformat()}, format="json")
    assert waiver.status_code == 201, waiver.content
    second = drive(second, django_capture_on_commit_callbacks)
    assert second.state == "succeeded", second.reason

    third = create(releases["1.1"], [{"name": "canary", "clusters": ["local-1"]},
                                     {"name": "main", "clusters": ["local-2"], "require_approval": True}])
    Wave.objects.filter(rollout=third, index=1).update(require_approval=False)  # as a database admin could
    third = drive(third, django_capture_on_commit_callbacks)
    assert third.state == "succeeded", third.reason

    with context.activate(source="api", actor="grace-admin"):
        fourth = services.start(services.rollback(third, approver, scope="all"))
    fourth = drive(fourth, django_capture_on_commit_callbacks)
    assert fourth.state == "succeeded", fourth.reason
    return Scenario(started, timezone.now(), [first, second, third, fourth], clusters, repos, ada, grace, releases)
