"""From an inventory cluster's stored credentials to what a client connects with.

Kubeconfigs go through the inventory's one validator (``fleet.inventory.kubeconfig``),
which refuses exec plugins, auth-providers, file references and disabled TLS
verification; here its refusal becomes the cluster's
:class:`~fleet.kube.errors.ConfigRefused`.
"""

from __future__ import annotations

from typing import Any

from fleet.inventory.credentials import ClusterCredentials
from fleet.inventory.errors import CredentialError
from fleet.inventory.kubeconfig import ConnectionSpec, parse_kubeconfig
from fleet.kube.errors import ConfigRefused


def spec_for_cluster(cluster: Any) -> ConnectionSpec:
    """The connection of an inventory :class:`~fleet.inventory.models.Cluster`; its
    ``api_server_url`` is authoritative, also over a stored kubeconfig's ``server``."""
    credentials: ClusterCredentials | None = cluster.get_credentials()
    if credentials is None:
        raise ConfigRefused("the cluster has no credentials", cluster=cluster.name)
    if credentials.kubeconfig:
        return spec_from_kubeconfig(credentials.kubeconfig, name=cluster.name, server=cluster.api_server_url)
    return ConnectionSpec(name=cluster.name, server=cluster.api_server_url, token=credentials.token,
                          ca_pem=credentials.ca_pem, client_cert_pem=credentials.client_cert_pem,
                          client_key_pem=credentials.client_key_pem)


def spec_from_kubeconfig(text: str, *, name: str, server: str = "") -> ConnectionSpec:
    """The connection of a stored kubeconfig's current context, or ConfigRefused."""
    try:
        return parse_kubeconfig(text, name=name, server=server)
    except CredentialError as exc:
        raise ConfigRefused(exc.message, cluster=name) from None
