"""Shared fixtures: users in each role with API clients, and test data factories.

The suite runs against the database in DATABASE_URL (PostgreSQL in CI, started by
scripts/services.sh); tests marked ``embedded`` also run on SQLite.
"""

from __future__ import annotations

import os
import tempfile

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from fleet.accounts.models import ApiToken
from fleet.accounts.roles import Role
from tests.dev.fixtures import *  # noqa: F401,F403 - the session's real local fleet
from tests.factories import UserFactory

# The suite's repositories are local bare repos under the temporary directory: allow
# them there (the product's default allows only <FLEET_DATA_DIR>/repos). Processes the
# suite starts (workers) read it from the environment.
TEST_GIT_ROOTS = [os.path.realpath(tempfile.gettempdir())]
os.environ.setdefault("FLEET_GIT_LOCAL_ROOTS", ",".join(TEST_GIT_ROOTS))


@pytest.fixture(scope="session", autouse=True)
def _local_git_roots():
    from django.conf import settings

    previous, settings.FLEET_GIT_LOCAL_ROOTS = settings.FLEET_GIT_LOCAL_ROOTS, TEST_GIT_ROOTS
    yield
    settings.FLEET_GIT_LOCAL_ROOTS = previous


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    vendor = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    skip = pytest.mark.skip(reason="needs PostgreSQL; DATABASE_URL points elsewhere")
    for item in items:
        if vendor != "postgresql" and "postgres" in item.keywords:
            item.add_marker(skip)


def make_client(role: Role | None, username: str) -> APIClient:
    # As accounts.services.create_user makes them: admins are superusers (the admin console).
    user = UserFactory(username=username, is_staff=role is Role.ADMIN, is_superuser=role is Role.ADMIN)
    if role is not None:
        user.groups.add(Group.objects.get_or_create(name=role.group_name)[0])
    token, plaintext = ApiToken.issue(user, "test")
    token.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    client.user = user
    return client


@pytest.fixture
def viewer(db) -> APIClient:
    return make_client(Role.VIEWER, "vera-viewer")


@pytest.fixture
def operator(db) -> APIClient:
    return make_client(Role.OPERATOR, "otto-operator")


@pytest.fixture
def admin_client_api(db) -> APIClient:
    return make_client(Role.ADMIN, "ada-admin")


@pytest.fixture
def roleless(db) -> APIClient:
    return make_client(None, "rolf-noroles")


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _cold_render_cache():
    """Each test starts with the process's render cache empty, as its database starts
    empty: a render is cached only within the test that made it."""
    from fleet.render import cache

    cache.MEMORY.clear()
    yield
    cache.MEMORY.clear()
