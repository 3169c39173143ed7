"""From stored credentials to what a client connects with.

Stored kubeconfigs go through the inventory's one validator
(``fleet.inventory.kubeconfig``), which refuses exec plugins, auth-providers, file
references and disabled TLS verification; here its refusal becomes the cluster's
:class:`~fleet.kube.errors.ConfigRefused`.
"""

from __future__ import annotations

import hashlib
from dataclasses import astuple, dataclass
from typing import Any

from fleet.inventory.credentials import ClusterCredentials
from fleet.inventory.errors import CredentialError
from fleet.inventory.kubeconfig import parse_kubeconfig
from fleet.kube.errors import ConfigRefused


@dataclass(frozen=True, repr=False)
class ConnectionSpec:
    """Everything needed to reach one API server. Never shows its secrets in repr."""

    name: str
    server: str
    token: str = ""
    ca_pem: str = ""
    client_cert_pem: str = ""
    client_key_pem: str = ""
    tls_server_name: str = ""

    def __repr__(self) -> str:
        return f"ConnectionSpec(name={self.name!r}, server={self.server!r})"

    def fingerprint(self) -> str:
        """Identifies the credentials (for the client cache) without revealing them."""
        return hashlib.sha256("\0".join(astuple(self)).encode()).hexdigest()


def spec_for_cluster(cluster: Any) -> ConnectionSpec:
    """The connection of an inventory :class:`~fleet.inventory.models.Cluster`.

    The inventory's ``api_server_url`` is authoritative, also over a stored
    kubeconfig's ``server``: the URL is what operators see and audit.
    """
    credentials: ClusterCredentials | None = cluster.get_credentials()
    if credentials is None:
        raise ConfigRefused("the cluster has no credentials", cluster=cluster.name)
    if credentials.kubeconfig:
        return spec_from_kubeconfig(credentials.kubeconfig, name=cluster.name, server=cluster.api_server_url)
    return ConnectionSpec(name=cluster.name, server=cluster.api_server_url,
                          token=credentials.token, ca_pem=credentials.ca_pem,
                          client_cert_pem=credentials.client_cert_pem,
                          client_key_pem=credentials.client_key_pem)


def spec_from_kubeconfig(text: str, *, name: str, server: str = "") -> ConnectionSpec:
    """The connection of a stored kubeconfig's current context; ``server`` (the
    inventory's URL), when given, wins over the kubeconfig's own."""
    try:
        config = parse_kubeconfig(text)
    except CredentialError as exc:
        raise ConfigRefused(exc.message, cluster=name) from None
    server = server or config.server
    if not server:
        raise ConfigRefused("kubeconfig cluster has no server", cluster=name)
    return ConnectionSpec(name=name, server=server, token=config.token, ca_pem=config.ca_pem,
                          client_cert_pem=config.client_cert_pem, client_key_pem=config.client_key_pem,
                          tls_server_name=config.tls_server_name)
