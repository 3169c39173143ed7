"""A fleet of its own for the fault tests: two real clusters, each behind its own
Toxiproxy listener (``LocalFleet.up(network=True)``), so faults can be injected into
the link between Fleet and one cluster while a real rollout runs.

Not the session's ``local_fleet``: the end-to-end and report tests expect those three
clusters as the session started them, and these tests leave objects deployed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleet.dev.localfleet.fleet import LocalFleet
from tests.dev.fixtures import RunningFleet

NETWORK_CLUSTERS = 2


@pytest.fixture(scope="session")
def network_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFleet]:
    fleet = LocalFleet(tmp_path_factory.mktemp("networkfleet"))
    try:
        clusters = fleet.up(NETWORK_CLUSTERS, network=True, die_with_parent=True)
        yield RunningFleet(fleet, clusters)
    finally:
        fleet.down()


@pytest.fixture
def network(network_fleet: RunningFleet) -> Iterator[RunningFleet]:
    """The network fleet with every link healthy again after the test, whatever it did."""
    network_fleet.fleet.network().reset()
    yield network_fleet
    network_fleet.fleet.network().reset()
