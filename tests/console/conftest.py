"""The console's test world: people in each role (with passwords, to sign in through
the real form), a small fleet in the inventory, and a pending two-wave rollout made by
the rollout service. Repositories point at paths that do not exist, so anything that
reaches git fails at once and shows its error, without a network."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from fleet.accounts.roles import Role
from fleet.inventory.models import Channel, Cluster, Release
from fleet.rollouts import services
from fleet.rollouts.models import Rollout
from tests.console.browser import chromium, flushable_audit, open_console  # noqa: F401 - fixtures
from tests.drift.conftest import drift_world, queued  # noqa: F401 - fixtures of the drift world
from tests.e2e.conftest import workers, world  # noqa: F401 - fixtures of the real fleet's world
from tests.factories import ClusterFactory, UserFactory

PASSWORD = "console-test-password"
ROLES = {"viewer": Role.VIEWER, "operator": Role.OPERATOR, "admin": Role.ADMIN, "approver": Role.ADMIN,
         "nobody": None}
TWO_WAVES = [{"name": "canary", "selector": "ring=canary", "max_parallel": 1},
             {"name": "main", "max_parallel": 5, "max_failures": "1", "require_approval": True}]


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def people(db) -> dict[str, object]:
    """One user per role name in :data:`ROLES` (admins are superusers, as accounts makes them)."""
    users = {}
    for name, role in ROLES.items():
        user = UserFactory(username=name, is_staff=role is Role.ADMIN, is_superuser=role is Role.ADMIN)
        user.set_password(PASSWORD)
        user.save()
        if role is not None:
            user.groups.add(Group.objects.get_or_create(name=role.group_name)[0])
        users[name] = user
    return users


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def as_role(people):
    """``as_role("viewer")``: a test client signed in as that person."""
    return lambda name: client_for(people[name])


@dataclass
class Fleet:
    channel: Channel
    release: Release
    clusters: list[Cluster]
    rollout: Rollout


def make_clusters(channel: Channel, count: int, start: int = 0) -> list[Cluster]:
    return [ClusterFactory(name=f"edge-{i:03d}", channel=channel, internal_repo_url=f"/nonexistent/edge-{i:03d}.git",
                           labels={"env": "prod" if i % 2 else "dev", "ring": "canary" if i == 0 else "main"})
            for i in range(start, start + count)]


@pytest.fixture
def fleet(people) -> Fleet:
    channel = Channel.objects.create(name="stable", repo_url="/nonexistent/vendor.git", branch="release-1.0",
                                     description="the stable channel")
    release = Release.objects.create(channel=channel, version="1.0.0", upstream_sha="a" * 40)
    clusters = make_clusters(channel, 6)
    rollout = services.create_rollout(services.RolloutRequest(release=release, waves=TWO_WAVES), people["operator"])
    return Fleet(channel, release, clusters, rollout)
