"""Connections: stored kubeconfigs, client-certificate files kept private and removed,
rate limiting."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from fleet.inventory.kubeconfig import ConnectionSpec
from fleet.kube.client import KubeClient, RateLimiter
from fleet.kube.connection import spec_from_kubeconfig
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
def test_client_certificate_files_are_private_and_removed_on_close(local_cluster):
    cert, key = self_signed()
    client = KubeClient(ConnectionSpec(name=local_cluster.name, server=local_cluster.server,
                                       token=local_cluster.token, ca_pem=local_cluster.ca_pem,
                                       client_cert_pem=cert, client_key_pem=key))
    directory = Path(client._tmpdir)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()} == {
        "client.crt": 0o600, "client.key": 0o600}
    assert probe(client).ok  # the certificate is presented; the token authenticates
    client.close()
    assert not os.path.exists(directory)


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
