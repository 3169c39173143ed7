"""Creating and steering rollouts through the API: validation, roles, approvals, states.

These tests never start a pipeline (nothing is enqueued until a rollout starts);
the end-to-end suite drives real rollouts on the real local fleet.
"""

import pytest

from fleet.accounts.roles import Role
from fleet.audit.models import AuditEvent
from fleet.rollouts.models import ClusterDeployment, Rollout
from fleet.rollouts.states import RolloutState
from tests.conftest import make_client
from tests.factories import ClusterFactory, ReleaseFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]
URL = "/api/v1/rollouts/"


@pytest.fixture
def fleet3(db):
    release = ReleaseFactory()
    clusters = [ClusterFactory(name=name, labels=labels, channel=release.channel) for name, labels in [
        ("canary-1", {"env": "prod", "ring": "canary"}), ("prod-1", {"env": "prod", "ring": "main"}),
        ("prod-2", {"env": "prod", "ring": "main"})]]
    return release, clusters


def waves(**first):
    return [{"name": "canary", "selector": "ring=canary", "max_parallel": 1, **first},
            {"name": "main", "selector": "ring=main", "max_parallel": 2, "max_failures": "50%",
             "require_approval": True}]


def create(client, release, **body):
    return client.post(URL, {"release": release.pk, "selector": "env=prod", "waves": waves(), **body},
                       format="json")


def test_create_plans_waves_and_shows_progress(operator, fleet3):
    release, _ = fleet3
    response = create(operator, release)
    assert response.status_code == 201, response.content
    body = response.json()
    assert [(w["name"], [d["cluster"] for d in w["deployments"]]) for w in body["waves"]] == [
        ("canary", ["canary-1"]), ("main", ["prod-1", "prod-2"])]
    assert body["state"] == "pending" and body["progress"]["total"] == 3
    assert body["progress"]["percent"] == 0
    assert AuditEvent.objects.filter(action="rollout.create", actor="otto-operator").exists()
    listing = operator.get(URL, {"state": "pending", "cluster": "prod-2"}).json()
    assert [r["id"] for r in listing["results"]] == [body["id"]]


@pytest.mark.parametrize(
    ("body", "status", "key", "fragment"),
    [
        ({"selector": "env=staging"}, 400, "selector", "matches no cluster"),
        ({"waves": [{"clusters": ["prod-1"]}, {"clusters": ["prod-1", "prod-2", "canary-1"]}]}, 400,
         "waves[1].clusters", "already in waves[0]"),
        ({"waves": waves(max_parallel=0)}, 400, "waves[0].max_parallel", "at least 1"),
        ({"waves": waves(max_failures="lots")}, 400, "waves[0].max_failures", "a count (2) or a percentage"),
        ({"waves": [{"selector": "ring=canary"}]}, 400, "waves", "no wave takes prod-1, prod-2"),
        ({"waves": None, "template": "nope"}, 400, "template", "no strategy template"),
        ({"selector": "env in (prod"}, 400, "selector", "expected ')'"),
    ],
)
def test_bad_rollouts_are_refused_and_nothing_is_created(operator, fleet3, body, status, key, fragment):
    release, _ = fleet3
    response = create(operator, release, **body)
    assert response.status_code == status, response.content
    assert fragment in str(response.json()[key])
    assert response.json()["code"] == "rollout.invalid"
    assert not Rollout.objects.exists() and not ClusterDeployment.objects.exists()


def test_a_cluster_in_an_unfinished_rollout_cannot_join_another(operator, fleet3):
    release, _ = fleet3
    first = create(operator, release).json()["id"]
    response = create(operator, release)
    assert response.status_code == 409 and response.json()["code"] == "rollout.state"
    assert f"canary-1 (rollout #{first})" in response.json()["selector"][0]


def test_protected_clusters_need_an_admin(operator, admin_client_api, fleet3):
    release, clusters = fleet3
    clusters[0].protected = True
    clusters[0].save()
    response = create(operator, release)
    assert response.status_code == 403 and "canary-1" in response.json()["detail"]
    assert response.json()["code"] == "access.forbidden"
    assert create(admin_client_api, release).status_code == 201


def test_approval_is_an_admins_not_the_authors_and_finished_rollouts_refuse_actions(
        operator, admin_client_api, fleet3):
    release, _ = fleet3
    rollout_id = create(operator, release).json()["id"]
    by_operator = operator.post(f"{URL}{rollout_id}/approve/")
    assert by_operator.status_code == 403 and "needs the admin role" in by_operator.json()["detail"]
    own = make_client(Role.ADMIN, "ann-admin")
    ClusterFactory(name="lab-1", labels={"ring": "lab"}, channel=release.channel)
    own_id = create(own, release, selector="ring=lab", waves=[
        {"name": "lab", "selector": "", "max_parallel": 1, "require_approval": True}]).json()["id"]
    refused = own.post(f"{URL}{own_id}/approve/")
    assert refused.status_code == 403 and "someone other than its author" in refused.json()["detail"]
    assert refused.json()["code"] == "access.forbidden"
    approved = admin_client_api.post(f"{URL}{rollout_id}/approve/")
    assert approved.status_code == 202
    assert Rollout.objects.get(pk=rollout_id).waves.get(index=1).approved_by.username == "ada-admin"
    assert operator.post(f"{URL}{rollout_id}/abort/", {"reason": "change freeze"}).status_code == 202
    rollout = Rollout.objects.get(pk=rollout_id)
    assert rollout.state == RolloutState.ABORTED and rollout.reason == "change freeze"
    assert set(rollout.deployments.values_list("state", flat=True)) == {"cancelled"}
    for verb, client in (("start", operator), ("pause", operator), ("resume", operator), ("abort", operator),
                         ("approve", admin_client_api)):
        response = client.post(f"{URL}{rollout_id}/{verb}/")
        assert response.status_code == 409, verb
        assert "it is aborted" in response.json()["detail"]


def test_a_rollback_names_its_scope_and_needs_clusters_to_return(operator, fleet3):
    release, _ = fleet3
    rollout_id = create(operator, release).json()["id"]
    operator.post(f"{URL}{rollout_id}/abort/")
    bad = operator.post(f"{URL}{rollout_id}/rollback/", {"scope": "some"}, format="json")
    assert bad.status_code == 400 and bad.json()["scope"] == ["scope must be failed or all"]
    empty = operator.post(f"{URL}{rollout_id}/rollback/", {"scope": "all"}, format="json")
    assert empty.status_code == 400 and empty.json()["code"] == "rollout.invalid"
    assert "no all cluster with a previous deployment" in empty.json()["detail"]
    assert Rollout.objects.count() == 1


def test_viewers_read_but_cannot_act(viewer, operator, fleet3):
    release, _ = fleet3
    rollout_id = create(operator, release).json()["id"]
    assert viewer.get(f"{URL}{rollout_id}/").status_code == 200
    assert viewer.post(f"{URL}{rollout_id}/start/").status_code == 403
    assert create(viewer, release).status_code == 403


def test_strategy_templates_are_validated_and_usable(operator, admin_client_api, fleet3):
    release, _ = fleet3
    bad = admin_client_api.post("/api/v1/strategy-templates/", {"name": "bad", "waves": [{"max_parallel": 0}]},
                                format="json")
    assert bad.status_code == 400 and "max_parallel" in str(bad.json()["waves"])
    assert operator.post("/api/v1/strategy-templates/", {"name": "x", "waves": waves()},
                         format="json").status_code == 403
    assert admin_client_api.post("/api/v1/strategy-templates/", {"name": "two-rings", "waves": waves()},
                                 format="json").status_code == 201
    response = create(operator, release, waves=None, template="two-rings")
    assert response.status_code == 201 and response.json()["strategy_name"] == "two-rings"


def admin_action(client, action: str, rollout_id: int) -> list[str]:
    """Run an admin action as a browser does; returns the messages it left."""
    client.post("/admin/rollouts/rollout/", {"action": action, "index": 0, "_selected_action": [rollout_id]})
    return [str(m) for m in client.get("/admin/rollouts/rollout/").context["messages"]]


def test_admin_actions_call_the_same_services(operator, fleet3, client):
    from django.contrib.auth import get_user_model

    release, _ = fleet3
    rollout_id = create(operator, release).json()["id"]
    client.force_login(get_user_model().objects.create_superuser("root", "r@example.com", "pw"))
    assert admin_action(client, "approve", rollout_id) == [f"rollout #{rollout_id}: approved"]
    assert admin_action(client, "start", rollout_id) == [f"rollout #{rollout_id}: started"]
    assert Rollout.objects.get(pk=rollout_id).state == RolloutState.RUNNING
    assert admin_action(client, "start", rollout_id) == [
        f"rollout #{rollout_id}: cannot start rollout #{rollout_id}: it is running"]


def test_protected_clusters_need_an_admin_from_the_cli_too(operator, fleet3, tmp_path):
    import json

    from django.core.management import call_command
    from django.core.management.base import CommandError

    release, clusters = fleet3
    clusters[1].protected = True
    clusters[1].save()
    (tmp_path / "waves.json").write_text(json.dumps(waves()))
    with pytest.raises(CommandError, match=r"deploying to a protected cluster \(prod-1\) needs the admin role"):
        call_command("rollout", "create", "--release", str(release.pk), "--selector", "env=prod",
                     "--waves", str(tmp_path / "waves.json"), "--as-user", operator.user.username)
    assert not Rollout.objects.exists()
