"""The session's local fleet, for any test that needs real clusters.

Import it once, from the top-level ``tests/conftest.py``:

    from tests.dev.fixtures import *  # noqa: F401,F403

(importing it again in a lower conftest would define a second session fixture, i.e. a
second fleet). Tests that use it are marked ``@pytest.mark.cluster``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fleet.dev.localfleet.cluster import LocalCluster
from fleet.dev.localfleet.fleet import LocalFleet

__all__ = ["RunningFleet", "local_fleet"]

CLUSTER_COUNT = 3


@dataclass(frozen=True)
class RunningFleet:
    fleet: LocalFleet  # state_dir, status(), ... of the session's fleet
    clusters: list[LocalCluster]  # local-1, local-2, local-3


@pytest.fixture(scope="session")
def local_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFleet]:
    """Three real clusters in a temporary state directory, for the whole session.

    Processes die with the session even if pytest is killed (``die_with_parent``), and
    are stopped in teardown whatever happened, including a failed ``up``.
    """
    fleet = LocalFleet(tmp_path_factory.mktemp("localfleet"))
    try:
        clusters = fleet.up(CLUSTER_COUNT, die_with_parent=True)
        yield RunningFleet(fleet, clusters)
    finally:
        fleet.down()
