"""Connections: kubeconfig files from allowed directories, client-certificate files
kept private and removed, rate limiting."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from fleet.kube.client import KubeClient, RateLimiter
from fleet.kube.connection import ConnectionSpec, spec_from_kubeconfig_file
from fleet.kube.errors import ConfigRefused
from fleet.kube.probe import probe
from tests.certs import self_signed


@pytest.mark.cluster
def test_a_kubeconfig_file_in_an_allowed_directory_connects(local_cluster, settings):
    settings.FLEET_KUBECONFIG_DIRS = [str(Path(local_cluster.kubeconfig_path).parent)]
    with KubeClient(spec_from_kubeconfig_file(local_cluster.kubeconfig_path, name="via-file")) as client:
        result = probe(client)
    assert result.ok, result.message
    settings.FLEET_KUBECONFIG_DIRS = []
    with pytest.raises(ConfigRefused, match="cluster via-file: kubeconfig file .* is outside"):
        spec_from_kubeconfig_file(local_cluster.kubeconfig_path, name="via-file")


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
