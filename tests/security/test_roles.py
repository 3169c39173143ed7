"""The role rules that depend on the object (``fleet.accounts.rules``), through every way in.

Found from outside: an operator could approve a wave, and could bypass ``protected`` by
unprotecting a cluster, creating a rollout, protecting it again and starting.
"""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from fleet.accounts import rules
from fleet.accounts.roles import Role
from fleet.audit.models import AuditEvent
from fleet.inventory import services as inventory
from fleet.inventory.models import Cluster
from fleet.rollouts import services as rollouts
from fleet.rollouts.models import Rollout
from tests.conftest import make_client
from tests.factories import ChannelFactory, ClusterFactory, ReleaseFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]
CLUSTERS = "/api/v1/clusters/"


@pytest.fixture
def protected(db) -> Cluster:
    return ClusterFactory(name="prod-1", protected=True, labels={"env": "prod"})


@pytest.fixture
def plain(db) -> Cluster:
    return ClusterFactory(name="dev-1", labels={"env": "dev"})


def waiting_rollout(author, cluster: Cluster) -> Rollout:
    release = ReleaseFactory(channel=cluster.channel)
    request = rollouts.RolloutRequest(release=release, selector=f"env={cluster.labels['env']}",
                                      waves=[{"name": "all", "require_approval": True}])
    return rollouts.create_rollout(request, author)


def test_the_rules_table_names_an_admin_for_each_act():
    assert set(rules.RULES) == set(rules.Act) and set(rules.RULES.values()) == {Role.ADMIN}


def test_an_operator_cannot_approve_through_any_interface(operator, admin_client_api, plain, tmp_path):
    rollout = waiting_rollout(admin_client_api.user, plain)
    response = operator.post(f"/api/v1/rollouts/{rollout.pk}/approve/")
    assert response.status_code == 403
    with pytest.raises(rules.AccessDenied, match="approving a wave .* needs the admin role"):
        rollouts.approve(rollout, operator.user)
    with pytest.raises(CommandError, match="needs the admin role"):
        call_command("rollout", "approve", str(rollout.pk), "--as-user", operator.user.username,
                     stdout=io.StringIO())
    assert not rollout.waves.filter(approved_by__isnull=False).exists()
    assert not AuditEvent.objects.filter(action="rollout.approve").exists()


def test_only_an_admin_changes_protected(operator, admin_client_api, protected, plain):
    assert operator.patch(f"{CLUSTERS}{protected.pk}/", {"protected": False}).status_code == 403
    assert operator.patch(f"{CLUSTERS}{plain.pk}/", {"protected": True}).status_code == 403
    created = operator.post(CLUSTERS, {"name": "new-1", "api_server_url": "https://10.9.0.1:6443",
                                       "channel": plain.channel.name, "protected": True,
                                       "internal_repo_url": "https://git.example.com/c/new-1.git"})
    assert created.status_code == 403 and created.json()["code"] == "access.forbidden"
    assert Cluster.objects.get(pk=protected.pk).protected and not Cluster.objects.get(pk=plain.pk).protected
    response = admin_client_api.patch(f"{CLUSTERS}{protected.pk}/", {"protected": False})
    assert response.status_code == 200 and response.json()["protected"] is False


@pytest.mark.parametrize("change", [
    {"api_server_url": "https://10.66.0.1:6443"}, {"credentials": {"token": "stolen"}},
    {"internal_repo_url": "https://git.example.com/elsewhere.git"}, {"labels": {"env": "dev"}},
    {"internal_branch": "other"},
])
def test_editing_a_protected_cluster_is_an_admins(operator, admin_client_api, protected, change):
    response = operator.patch(f"{CLUSTERS}{protected.pk}/", change, format="json")
    assert response.status_code == 403, response.content
    assert "editing a protected cluster (prod-1:" in response.json()["detail"]
    assert admin_client_api.patch(f"{CLUSTERS}{protected.pk}/", change, format="json").status_code == 200


def test_operators_may_still_pause_and_pin_a_protected_cluster(operator, protected):
    assert operator.patch(f"{CLUSTERS}{protected.pk}/", {"paused": True, "pinned": True}).status_code == 200


def test_deleting_a_protected_cluster_and_committing_to_its_repo_are_an_admins(operator, protected):
    assert operator.delete(f"{CLUSTERS}{protected.pk}/").status_code == 403
    assert Cluster.objects.filter(pk=protected.pk).exists()
    commit = operator.post(f"/api/v1/gitops/{protected.name}/commits/",
                           {"files": {"cluster/x.yaml": "a: 1\n"}, "message": "x"}, format="json")
    assert commit.status_code == 403 and "repository commits" in commit.json()["detail"]
    params = operator.put(f"/api/v1/gitops/{protected.name}/params/", {"replicas": {"web": 1}}, format="json")
    assert params.status_code == 403


def test_the_bypass_unprotect_create_reprotect_start_fails(operator, admin_client_api, protected):
    """Only an admin unprotects; and a rollout an operator made while it was unprotected
    cannot be started once it is protected again, by the operator or anyone."""
    assert operator.patch(f"{CLUSTERS}{protected.pk}/", {"protected": False}).status_code == 403
    Cluster.objects.filter(pk=protected.pk).update(protected=False)  # as if an admin had
    release = ReleaseFactory(channel=protected.channel)
    created = operator.post("/api/v1/rollouts/", {"release": release.pk, "selector": "env=prod",
                                                  "waves": [{"name": "all"}]}, format="json")
    assert created.status_code == 201
    Cluster.objects.filter(pk=protected.pk).update(protected=True)
    for client in (operator, admin_client_api):  # the author is an operator, whoever starts it
        response = client.post(f"/api/v1/rollouts/{created.json()['id']}/start/")
        assert response.status_code == 403 and "prod-1" in response.json()["detail"]
    assert Rollout.objects.get(pk=created.json()["id"]).state == "pending"


def test_inventory_sync_from_the_command_line_is_the_machines_operator(tmp_path, protected):
    """The CLI holds the database already: it acts as the operator of the machine."""
    ChannelFactory(name="stable")
    (tmp_path / "prod-1.yaml").write_text(json.dumps({
        "apiVersion": "fleet/v1", "kind": "Cluster", "metadata": {"name": "prod-1", "labels": {"env": "prod"}},
        "spec": {"apiServer": "https://10.0.0.9:6443", "channel": "stable", "protected": False,
                 "internalRepo": {"url": "https://git.example.com/c/prod-1.git"}}}))
    call_command("inventory", "sync", "--dir", str(tmp_path), "--adopt", stdout=io.StringIO())
    assert not Cluster.objects.get(name="prod-1").protected


def test_services_check_the_request_user_whatever_interface_calls_them(rf, protected):
    """A view that forgot its own check still goes through the rule: the context knows the user."""
    from fleet.core import context

    request = rf.patch("/console/")
    request.user = make_client(Role.OPERATOR, "olga-operator").user
    with context.activate(source="web", request=request), pytest.raises(rules.AccessDenied):
        inventory.update_cluster(protected, {"api_server_url": "https://10.66.0.1:6443"})
    with context.activate(source="web", request=request), pytest.raises(rules.AccessDenied):
        inventory.delete_cluster(protected)


def test_a_refusal_by_a_role_rule_is_audited(operator, protected):
    operator.delete(f"{CLUSTERS}{protected.pk}/")
    event = AuditEvent.objects.get(action="auth.denied")
    assert event.actor == "otto-operator" and "editing a protected cluster" in event.metadata["reason"]
