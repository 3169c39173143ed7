"""Connecting the tests to local clusters with chosen (often wrong) credentials."""

from __future__ import annotations

from fleet.inventory.kubeconfig import ConnectionSpec
from fleet.kube.client import KubeClient


def connect(cluster, *, token: str | None = None, ca_pem: str | None = None,
            server: str | None = None) -> KubeClient:
    return KubeClient(ConnectionSpec(name=cluster.name, server=server or cluster.server,
                                     token=cluster.token if token is None else token,
                                     ca_pem=cluster.ca_pem if ca_pem is None else ca_pem))
