"""The network itself: each fault Toxiproxy injects, as a plain HTTPS client sees it
through a cluster's proxy, against the same API server reached directly."""

from __future__ import annotations

import socket
import ssl
import time
import urllib.error
import urllib.request

import pytest

from fleet.dev.localfleet.cluster import LocalCluster
from tests.dev.fixtures import RunningFleet

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def readyz(cluster: LocalCluster, server: str, timeout: float = 5.0) -> float:
    """Seconds one fresh-connection GET /readyz takes; raises what the client sees."""
    request = urllib.request.Request(server + "/readyz", headers={"Authorization": f"Bearer {cluster.token}"})
    started = time.monotonic()
    with urllib.request.urlopen(request, context=ssl.create_default_context(cadata=cluster.ca_pem),
                                timeout=timeout) as response:
        assert response.status == 200
    return time.monotonic() - started


def test_clusters_are_reached_through_their_proxy(network: RunningFleet):
    fleet = network.fleet
    for cluster in network.clusters:
        proxy = fleet.proxy(cluster.name)
        assert cluster.server == f"https://{proxy.listen}" != cluster.direct_server
        assert proxy.upstream == cluster.direct_server.removeprefix("https://")
        readyz(cluster, cluster.server)  # TLS passes through: the serving cert still matches
    assert [c.server for c in fleet.clusters()] == [c.server for c in network.clusters]


def test_latency_applies_to_the_proxied_link_only(network: RunningFleet):
    cluster = network.clusters[0]
    network.fleet.proxy(cluster.name).latency(50, jitter_ms=10)
    # The proxy accepts TCP itself; then TLS 1.3 and the request are a round trip each,
    # every direction delayed 50 ± 5 ms: >= 2 x 2 x 45 ms.
    assert readyz(cluster, cluster.server) >= 0.18
    assert readyz(cluster, cluster.direct_server) < 0.1
    other = network.clusters[1]
    assert readyz(other, other.server) < 0.1


def test_reset_peer_blackhole_and_disable(network: RunningFleet):
    cluster = network.clusters[0]
    proxy = network.fleet.proxy(cluster.name)

    name = proxy.reset_peer()
    with pytest.raises((ConnectionResetError, ssl.SSLError, urllib.error.URLError)):
        readyz(cluster, cluster.server)
    proxy.remove_toxic(name)
    readyz(cluster, cluster.server)

    proxy.blackhole()
    started = time.monotonic()
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        readyz(cluster, cluster.server, timeout=1.0)
    assert 0.9 < time.monotonic() - started < 3.0  # the client's timeout, nothing else, ended it
    proxy.clear()
    readyz(cluster, cluster.server)

    proxy.disable()
    with pytest.raises(urllib.error.URLError) as refused:
        readyz(cluster, cluster.server)
    assert isinstance(refused.value.reason, ConnectionRefusedError)
    proxy.enable()
    readyz(cluster, cluster.server)
