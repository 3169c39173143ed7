"""Fixtures for the kube adapter against the real local fleet (tests/dev).

Every test gets its own namespace and ApplySet, so tests never see each other's
objects and may run in any order on the shared session clusters.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from fleet.kube.applyset import ApplySet
from fleet.kube.client import KubeClient
from fleet.kube.errors import NotFound
from tests.kube.support import connect


@pytest.fixture
def local_cluster(local_fleet):
    return local_fleet.clusters[0]


@pytest.fixture
def kube(local_cluster) -> Iterator[KubeClient]:
    with connect(local_cluster) as client:
        yield client


@pytest.fixture
def ns(kube) -> Iterator[str]:
    """A fresh namespace name; afterwards it goes, with its ApplySet parent."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    yield name
    for path in (f"/api/v1/namespaces/{name}",
                 f"/api/v1/namespaces/fleet-system/secrets/applyset-{name}"):
        try:
            kube.request("DELETE", path)
        except NotFound:
            pass


@pytest.fixture
def applyset(ns) -> ApplySet:
    return ApplySet(name=ns)
