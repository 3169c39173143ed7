"""Connections: stored kubeconfigs, client-certificate files kept private and removed,
rate limiting, requests counted per verb."""

from __future__ import annotations

import os
import ssl
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fleet.inventory.kubeconfig import ConnectionSpec
from fleet.kube import constants
from fleet.kube.client import KubeClient, RateLimiter, RequestCounts, verb_of
from fleet.kube.connection import spec_from_kubeconfig
from fleet.kube.errors import NotFound
from fleet.kube.probe import probe
from tests.certs import self_signed


@pytest.mark.cluster
def test_a_stored_kubeconfig_connects(local_cluster):
    """The local fleet's kubeconfig embeds its CA and token: stored as the cluster's
    credentials, it goes through the one kubeconfig validator and connects."""
    text = Path(local_cluster.kubeconfig_path).read_text()
    with KubeClient(spec_from_kubeconfig(text, name="via-kubeconfig", server=local_cluster.server)) as client:
        result = probe(client)
    assert result.ok, result.message


@pytest.mark.cluster
def test_client_certificate_files_are_private_and_gone_once_loaded(local_cluster, monkeypatch):
    """``ssl`` loads a client key only from a file: it exists 0600 in a 0700 directory
    while the client's TLS context loads it (seen from inside that call, which is then
    made as ever), and is removed before the client is even returned."""
    seen: dict[str, object] = {}
    load = ssl.SSLContext.load_cert_chain

    def watched(context, certfile, keyfile=None, password=None):
        directory = Path(certfile).parent
        seen["directory"] = directory
        seen["modes"] = {p.name: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()}
        seen["directory_mode"] = stat.S_IMODE(directory.stat().st_mode)
        return load(context, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", watched)
    cert, key = self_signed()
    with KubeClient(ConnectionSpec(name=local_cluster.name, server=local_cluster.server,
                                   token=local_cluster.token, ca_pem=local_cluster.ca_pem,
                                   client_cert_pem=cert, client_key_pem=key)) as client:
        assert seen["modes"] == {"client.crt": 0o600, "client.key": 0o600}
        assert seen["directory_mode"] == 0o700
        assert not os.path.exists(seen["directory"])
        assert probe(client).ok  # the certificate is presented; the token authenticates


@pytest.mark.cluster
def test_connections_are_kept_and_reused(local_cluster):
    """One TLS context per client, and connections kept alive: requests one after another
    open one connection, not one each (each is a handshake the API server pays for)."""
    with KubeClient(ConnectionSpec(name=local_cluster.name, server=local_cluster.server,
                                   token=local_cluster.token, ca_pem=local_cluster.ca_pem)) as client:
        for _ in range(5):
            client.get("/version")
        assert client.requests_sent == 5
        assert client.connections_opened == 1


@pytest.mark.embedded
def test_rate_limiter_allows_the_burst_then_the_rate():
    limiter = RateLimiter(qps=100, burst=5)
    start = time.monotonic()
    for _ in range(5):
        limiter.acquire()
    assert time.monotonic() - start < 0.05
    for _ in range(10):
        limiter.acquire()
    assert 0.08 < time.monotonic() - start < 0.5


@pytest.mark.embedded
@pytest.mark.parametrize("method, path, query, verb", [
    ("GET", "/api/v1/namespaces/prod/configmaps/app", None, "get"),
    ("GET", "/api/v1/namespaces/prod/configmaps", {"labelSelector": "a=b"}, "list"),
    ("GET", "/api/v1/namespaces/prod", None, "get"),
    ("GET", "/api/v1/namespaces", {"limit": 1}, "list"),
    ("GET", "/apis/apps/v1/namespaces/prod/deployments/web/status", None, "get"),
    ("GET", "/apis/apps/v1/deployments", None, "list"),
    ("GET", "/apis/apps/v1/namespaces/prod/deployments", {"watch": "true"}, "watch"),
    ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com", None, "get"),
    ("GET", "/apis/apps/v1", None, "discovery"),
    ("GET", "/apis/apps", None, "discovery"),
    ("GET", "/api/v1", None, "discovery"),
    ("GET", "/version", None, "discovery"),
    ("PATCH", "/api/v1/namespaces/prod/configmaps/app", {"fieldManager": "fleet"}, "patch"),
    ("PATCH", "/api/v1/namespaces/prod/configmaps/app", {"dryRun": "All"}, "patch dry-run"),
    ("DELETE", "/api/v1/namespaces/prod/configmaps/app", None, "delete"),
    ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", None, "create"),
])
def test_requests_are_counted_by_the_servers_verb(method, path, query, verb):
    assert verb_of(method, path, query) == verb


@pytest.mark.embedded
def test_request_counts_are_thread_safe_and_reset():
    counts = RequestCounts()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: counts.add("get" if i % 2 else "list"), range(2000)))
    assert counts.snapshot() == {"get": 1000, "list": 1000}
    assert counts.reset() == {"get": 1000, "list": 1000}
    counts.add("patch")
    assert counts.snapshot() == {"patch": 1} and counts.total == 2001  # the total never resets


@pytest.mark.cluster
def test_the_client_counts_what_it_sends(kube):
    kube.counts.reset()
    kube.get("/api/v1/namespaces/default")
    kube.get("/api/v1/namespaces/default/configmaps")
    with pytest.raises(NotFound):
        kube.get("/api/v1/namespaces/default/configmaps/no-such-map")
    assert kube.counts.snapshot() == {"get": 2, "list": 1}


@pytest.mark.cluster
def test_watches_left_early_leave_the_client_working(kube):
    """A watch left mid-stream has more to say on its connection: whatever becomes of that
    connection, the requests after it are answered, each once."""
    for _ in range(3):
        events = kube.stream("/api/v1/namespaces", query={"watch": "true", "timeoutSeconds": "30"})
        assert next(events)["type"] == "ADDED"
        events.close()
    kube.counts.reset()
    for _ in range(2 * constants.CONCURRENCY):
        assert kube.get("/api/v1/namespaces/default")["metadata"]["name"] == "default"
    assert kube.counts.reset() == {"get": 2 * constants.CONCURRENCY}  # none retried


@pytest.mark.cluster
def test_a_stream_ends_quietly_when_its_time_is_up(kube):
    start = time.monotonic()
    events = list(kube.stream("/api/v1/namespaces/default/configmaps",
                              query={"watch": "true", "fieldSelector": "metadata.name=no-such-map",
                                     "timeoutSeconds": "30"}, until=start + 1.0))
    assert events == [] and 1.0 <= time.monotonic() - start < 2.0
    assert kube.get("/api/v1/namespaces/default")["metadata"]["name"] == "default"
