"""The role matrix: every operation of the OpenAPI schema, called as anonymous, viewer,
operator and admin, answers as ``accounts.permissions.OPERATION_ROLES`` says.

Generated from the schema, so a new endpoint is in the matrix the day it exists; one
without an entry in the table fails here. Below the role an operation needs: 401 for
anonymous, 403 for a role too low; at or above it: anything but 401 and 403 (the body
sent is empty, so 400 and 404 are fine: the gate was passed).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from fleet.accounts.permissions import OPERATION_ROLES
from fleet.accounts.roles import Role
from fleet.audit.models import AuditEvent
from fleet.drift.models import IgnoreRule, ModeRule
from fleet.gitops.models import RepositoryCredential
from fleet.policy.models import PolicySet, Waiver
from fleet.rollouts import services as rollouts
from fleet.rollouts.models import StrategyTemplate
from tests.conftest import make_client
from tests.factories import ChannelFactory, ClusterFactory, ReleaseFactory

pytestmark = [pytest.mark.django_db]


def operations() -> list[tuple[str, str, str, dict]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [(op["operationId"], method.upper(), path, op)
            for path, methods in schema["paths"].items() for method, op in methods.items()]


OPERATIONS = operations()


def test_every_operation_has_an_entry_and_the_schema_documents_it():
    ids = {operation_id for operation_id, *_ in OPERATIONS}
    assert sorted(ids - set(OPERATION_ROLES)) == [], "new operations need an entry in OPERATION_ROLES"
    assert sorted(set(OPERATION_ROLES) - ids) == [], "OPERATION_ROLES names operations that no longer exist"
    for operation_id, _, _, op in OPERATIONS:
        assert op["x-required-role"] == OPERATION_ROLES[operation_id].group_name
        assert {"401", "403"} <= set(op["responses"]), operation_id


@pytest.fixture
def objects(tmp_path):
    """One object of each kind, for the paths' ids; repositories that fail fast if reached."""
    author = make_client(Role.ADMIN, "arthur-author").user
    channel = ChannelFactory(name="stable", repo_url=str(tmp_path / "missing.git"))
    cluster = ClusterFactory(name="c-1", channel=channel, internal_repo_url=str(tmp_path / "missing-internal.git"),
                             labels={"env": "dev"})
    release = ReleaseFactory(channel=channel)
    rollout = rollouts.create_rollout(rollouts.RolloutRequest(
        release=release, selector="env=dev", waves=[{"name": "all", "require_approval": True}]), author)
    credential = RepositoryCredential(name="vendor", url_prefix="https://git.example.com/", kind="https-token")
    credential.set_secret("x")
    credential.save()
    policy_set = PolicySet.objects.create(name="p", files={})
    waiver = Waiver.objects.create(name="w", rule="r", reason="x", author="a",
                                   expires_at=timezone.now() + timedelta(days=1))
    # Decisions exist only by evaluating: for "policy/decisions" a 404 passes the gate too.
    ids = {"channels": channel.pk, "clusters": cluster.pk, "releases": release.pk, "rollouts": rollout.pk,
           "repository-credentials": credential.pk, "policy/sets": policy_set.pk, "policy/waivers": waiver.pk,
           "policy/decisions": 1, "strategy-templates": StrategyTemplate.objects.create(name="t", waves=[]).pk,
           "audit": AuditEvent.objects.order_by("pk").values_list("pk", flat=True).first(),
           "drift/ignore-rules": IgnoreRule.objects.create(name="i", json_pointers=["/spec/replicas"]).pk,
           "drift/mode-rules": ModeRule.objects.create(name="m", mode="report").pk}
    return ids, cluster.name


def url_of(path: str, objects) -> str:
    ids, cluster_name = objects
    if "{name}" in path:
        return path.replace("{name}", cluster_name)
    if "{id}" in path:
        resource = path.removeprefix("/api/v1/").split("/{id}")[0]
        return path.replace("{id}", str(ids[resource]))
    return path


CALLERS = [None, Role.VIEWER, Role.OPERATOR, Role.ADMIN]


@pytest.mark.parametrize(("operation_id", "method", "path"), [op[:3] for op in OPERATIONS],
                         ids=[op[0] for op in OPERATIONS])
def test_each_operation_answers_each_role_as_the_table_says(operation_id, method, path, objects, settings, tmp_path):
    settings.FLEET_WORKSPACE_DIR = tmp_path / "ws"
    needed = OPERATION_ROLES[operation_id]
    url = url_of(path, objects)
    outcomes = {}
    for caller in CALLERS:
        client = make_client(caller, f"matrix-{caller.group_name}") if caller else APIClient()
        response = client.generic(method, url, "{}", content_type="application/json")
        outcomes[caller.group_name if caller else "anonymous"] = response.status_code
    expected = {"anonymous": 401}
    for caller in CALLERS[1:]:
        expected[caller.group_name] = 403 if caller < needed else "passes"
    seen = {who: status if status in (401, 403) else "passes" for who, status in outcomes.items()}
    assert seen == expected, (operation_id, outcomes)
    upstream = operation_id.startswith("gitops_")  # its repositories are missing on purpose: git fails
    assert all(status < 500 or (upstream and status == 502) for status in outcomes.values()), outcomes
