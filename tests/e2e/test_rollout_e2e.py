"""A release taken to the real local fleet in waves, end to end.

Real kube-apiservers (kwok nodes), real git repos, the real policy engine, real
Celery workers in their own processes on the real Redis broker, driven through the
CLI, the REST API and the admin: a first rollout (CLI), an upgrade in two waves
(API) with a cluster blocked by policy, a pause and a resume, a worker killed with
SIGKILL mid-wave and replaced, then a rollback (admin). Each checks the clusters
and the internal repos themselves.
"""

from __future__ import annotations

import io
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from fleet.core import context
from fleet.gitops import services as gitops
from fleet.gitops.commits import Author
from fleet.gitops.git import Git
from fleet.inventory.models import Channel, Release
from fleet.kube.client import client_for
from fleet.policy.services import import_policy_set
from fleet.rollouts import pipeline, services
from fleet.rollouts.models import ClusterDeployment, Rollout, Wave
from fleet.rollouts.states import DeploymentState as D
from fleet.rollouts.states import transition
from tests.e2e.conftest import wait_for
from tests.rollouts.test_rollout_api import admin_action

pytestmark = [pytest.mark.cluster, pytest.mark.postgres, pytest.mark.slow]


def configmap(cluster) -> dict | None:
    client = client_for(cluster)
    from fleet.kube.errors import NotFound

    try:
        return client.get("/api/v1/namespaces/platform/configmaps/app-config")
    except NotFound:
        return None


def states(rollout_id: int) -> dict[str, str]:
    return dict(ClusterDeployment.objects.filter(rollout_id=rollout_id).values_list("cluster__name", "state"))


def finished(rollout_id: int) -> Rollout | None:
    rollout = Rollout.objects.get(pk=rollout_id)
    return rollout if rollout.state in ("succeeded", "halted", "aborted") else None


def git_log(repo, *args: str) -> str:
    return Git(repo).run("log", *args)


def test_rollout_waves_policy_pause_kill_and_rollback(world, workers, operator, admin_client_api, tmp_path):
    worker_a = workers.start("a")
    author = get_user_model().objects.get(username="otto-operator")

    # 1. First deployment of 1.0 everywhere, from the CLI, watched to the end.
    waves = tmp_path / "waves.json"
    waves.write_text('[{"name": "all", "max_parallel": 3, "max_failures": 1}]')
    out = io.StringIO()
    call_command("rollout", "create", "--release", str(world.releases["1.0"].pk), "--selector", "fleet.dev/local",
                 "--waves", str(waves), "--start", "--watch", "--as-user", author.username, stdout=out)
    first = Rollout.objects.order_by("pk").last()
    assert first.state == "succeeded", out.getvalue()
    assert states(first.pk) == {"local-1": "succeeded", "local-2": "succeeded", "local-3": "blocked"}
    assert "ConfigMaps are frozen on this cluster: app-config" in first.deployments.get(cluster__name="local-3").error
    assert configmap(world.clusters["local-1"])["data"]["VERSION"] == "1.0.0"
    assert configmap(world.clusters["local-3"]) is None  # blocked: nothing was applied

    # 2. The upgrade to 1.1, in two waves, through the API; paused once the canary is in flight.
    body = {"release": world.releases["1.1"].pk, "selector": "fleet.dev/local", "waves": [
        {"name": "canary", "selector": "ring=canary", "max_parallel": 1, "bake_seconds": 2},
        {"name": "main", "selector": "ring=main", "max_parallel": 1, "max_failures": 1}]}
    created = operator.post("/api/v1/rollouts/", body, format="json")
    assert created.status_code == 201, created.content
    rollout_id = created.json()["id"]
    assert operator.post(f"/api/v1/rollouts/{rollout_id}/start/").status_code == 202
    wait_for(lambda: states(rollout_id)["local-1"] == "running", "the canary to start", 60)
    assert operator.post(f"/api/v1/rollouts/{rollout_id}/pause/").status_code == 202
    wait_for(lambda: states(rollout_id)["local-1"] == "succeeded", "the canary in flight to finish", 120)
    time.sleep(4)  # longer than the bake: a running rollout would have started wave 2 by now
    assert states(rollout_id) == {"local-1": "succeeded", "local-2": "pending", "local-3": "pending"}
    assert Rollout.objects.get(pk=rollout_id).state == "paused"
    assert operator.post(f"/api/v1/rollouts/{rollout_id}/resume/").status_code == 202

    # 3. Kill the worker while a cluster of the second wave is in flight; another takes over.
    def in_pipeline() -> ClusterDeployment | None:  # claimed, and a worker is running its steps
        found = ClusterDeployment.objects.get(rollout_id=rollout_id, cluster__name="local-2")
        return found if found.state == "running" and found.step else None

    stuck = wait_for(in_pipeline, "local-2's pipeline to start", 60)
    workers.kill(worker_a)
    workers.start("b")
    rollout = wait_for(lambda: finished(rollout_id), "the upgrade to finish after the worker died", 180)
    assert rollout.state == "succeeded", rollout.reason
    assert states(rollout_id) == {"local-1": "succeeded", "local-2": "succeeded", "local-3": "blocked"}
    assert ClusterDeployment.objects.get(pk=stuck.pk).attempts >= 2  # killed in its pipeline, then resumed
    detail = operator.get(f"/api/v1/rollouts/{rollout_id}/").json()
    assert detail["progress"]["percent"] == 100
    assert [w["state"] for w in detail["waves"]] == ["succeeded", "succeeded"]

    for name in ("local-1", "local-2"):
        data = configmap(world.clusters[name])["data"]
        assert (data["VERSION"], data["LOG_LEVEL"]) == ("1.1.1", "warning"), name
        repo = world.repos[name]
        tags = Git(repo).run("tag", "--list", "deploy/*").split()
        assert len(tags) == 2, tags
        assert Git(repo).run("merge-base", "--is-ancestor", world.primary.head("release-1.1"), "main") == ""
        assert git_log(repo, "--merges", "--oneline", "main") == ""
    assert ClusterDeployment.objects.get(rollout_id=rollout_id, cluster__name="local-1").previous_tag

    # 4. Roll everything back from the admin: each cluster re-deploys its previous tag.
    staff = Client()
    staff.force_login(get_user_model().objects.get(username="ada-admin"))
    assert admin_action(staff, "rollback_all", rollout_id) == [f"rollout #{rollout_id}: rollback started"]
    rollback = Rollout.objects.get(rollback_of_id=rollout_id)
    rollback = wait_for(lambda: finished(rollback.pk), "the rollback to finish", 180)
    assert rollback.state == "succeeded", rollback.reason
    assert states(rollback.pk) == {"local-1": "succeeded", "local-2": "succeeded"}
    for name in ("local-1", "local-2"):
        assert configmap(world.clusters[name])["data"]["VERSION"] == "1.0.0", name
        assert len(Git(world.repos[name]).run("tag", "--list", "deploy/*").split()) == 3


def refs(repo) -> str:
    return Git(repo).run("for-each-ref", "--format=%(refname) %(objectname)")


def test_preview_shows_plan_rebase_policy_and_diff_and_changes_nothing(world, operator):
    before = {name: refs(repo) for name, repo in world.repos.items()}
    body = {"release": world.releases["1.1"].pk, "selector": "fleet.dev/local", "waves": [
        {"name": "canary", "selector": "ring=canary"}, {"name": "main", "selector": "ring=main", "max_parallel": 2}]}
    response = operator.post("/api/v1/rollouts/preview/", body, format="json")
    assert response.status_code == 200, response.content
    plan = response.json()
    clusters = {c["cluster"]: c for wave in plan["waves"] for c in wave["clusters"]}
    assert [[c["cluster"] for c in w["clusters"]] for w in plan["waves"]] == [["local-1"], ["local-2", "local-3"]]
    assert {name: c["rebase"]["outcome"] for name, c in clusters.items()} == dict.fromkeys(clusters, "clean")
    assert clusters["local-1"]["policy"]["allowed"] and not clusters["local-3"]["policy"]["allowed"]
    assert clusters["local-1"]["diff"]["added"] + clusters["local-1"]["diff"]["changed"] > 0
    assert plan["summary"] == {"clusters": 3, "conflicts": 0, "denied": 1, "errors": 0, "busy": 0}
    assert not Rollout.objects.exists()
    assert {name: refs(repo) for name, repo in world.repos.items()} == before


def test_failure_budget_halts_the_rollout_and_starts_nothing_more(world, workers, operator):
    workers.start("a")
    body = {"release": world.releases["1.0"].pk, "selector": "fleet.dev/local", "start": True, "waves": [
        {"name": "risky", "clusters": ["local-3"], "max_failures": 0},
        {"name": "rest", "clusters": ["local-1", "local-2"], "max_parallel": 2}]}
    response = operator.post("/api/v1/rollouts/", body, format="json")
    assert response.status_code == 201, response.content
    rollout = wait_for(lambda: finished(response.json()["id"]), "the rollout to halt", 120)
    assert rollout.state == "halted"
    assert rollout.reason == "risky: 1 of 1 clusters failed; the budget is 0"
    assert states(rollout.pk) == {"local-3": "blocked", "local-1": "cancelled", "local-2": "cancelled"}
    assert list(rollout.waves.values_list("state", flat=True)) == ["halted", "cancelled"]


def test_a_regression_while_baking_counts_as_a_failure(world, workers, operator):
    """The canary succeeds, then loses an object while it bakes: the recheck (done
    outside the rollout's lock) fails it, and the budget halts the rollout."""
    workers.start("a")
    body = {"release": world.releases["1.0"].pk, "selector": "fleet.dev/local", "start": True, "waves": [
        {"name": "canary", "clusters": ["local-1"], "bake_seconds": 120, "max_failures": 0},
        {"name": "rest", "clusters": ["local-2", "local-3"]}]}
    response = operator.post("/api/v1/rollouts/", body, format="json")
    assert response.status_code == 201, response.content
    rollout_id = response.json()["id"]
    canary_wave = Wave.objects.get(rollout_id=rollout_id, name="canary")
    wait_for(lambda: Wave.objects.get(pk=canary_wave.pk).state == "baking", "the canary to bake", 120)
    client_for(world.clusters["local-1"]).request("DELETE", "/api/v1/namespaces/platform/configmaps/app-config")
    rollout = wait_for(lambda: finished(rollout_id), "the regression to halt the rollout", 60)
    assert rollout.state == "halted"
    assert rollout.reason == "canary: 1 of 1 clusters failed (regressions while baking); the budget is 0"
    canary = ClusterDeployment.objects.get(rollout_id=rollout_id, cluster__name="local-1")
    assert canary.state == "failed"
    assert canary.error == "regressed while baking: ConfigMap platform/app-config: not found"
    assert states(rollout_id) == {"local-1": "failed", "local-2": "cancelled", "local-3": "cancelled"}


def test_with_a_policy_the_gate_counts_what_the_apply_prunes(world, operator, tmp_path):
    """Where a policy runs, the gate's diff against the cluster counts the set's members
    no longer desired, and the dry-run step reports that count instead of listing every
    kind again. 1.2 renames the Deployment ``web``: the count must be what the apply
    then prunes. The pipeline runs in process here: what is tested is its steps."""
    policy_dir = tmp_path / "notes"
    policy_dir.mkdir()
    (policy_dir / "notes.rego").write_text('package e2e.notes\n\nimport rego.v1\n\n'
                                           'warn contains "noted" if input.kind == "Deployment"\n')
    channel = Channel.objects.create(name="platform-1-2", repo_url=world.primary.url, branch="release-1.2")
    release_1_2 = Release.objects.create(channel=channel, version="1.2.0",
                                         upstream_sha=world.primary.head("release-1.2"))
    with context.activate(source="cli", actor="e2e"):
        import_policy_set("notes", policy_dir, selector="ring=canary")
    author = get_user_model().objects.get(username="otto-operator")

    def deploy(release: Release) -> ClusterDeployment:
        rollout = services.create_rollout(services.RolloutRequest(
            release=release, selector="ring=canary", waves=[{"name": "canary", "selector": "ring=canary"}]), author)
        deployment = rollout.deployments.get()
        assert transition(deployment, D.RUNNING, started_at=timezone.now())
        pipeline.run(deployment.pk)
        deployment.refresh_from_db()
        assert deployment.state == "succeeded", deployment.error
        return deployment

    with context.activate(source="cli", actor="e2e"):  # an overlay: 1.2's root no longer builds alone
        gitops.configure(world.clusters["local-1"], {"components": ["ingress"]}, Author("Ada", "ada@example.com"))
    first = deploy(world.releases["1.1"])
    assert first.steps["gate"]["detail"]["counts"]["warn"] > 0
    assert first.steps["dry_run"]["detail"]["would_prune"] == 0
    upgrade = deploy(release_1_2)
    assert upgrade.steps["dry_run"]["detail"]["would_prune"] == 1
    assert upgrade.steps["apply"]["detail"]["pruned"] == ["Deployment.apps platform/web"]
