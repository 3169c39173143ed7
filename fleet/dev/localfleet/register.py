"""Register a local fleet's clusters in the inventory (the demo and end-to-end tests), and
make them send their audit events to Fleet.

Kept apart from the rest of the package, which must work without Django.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fleet.clusteraudit import credentials
from fleet.clusteraudit import services as clusteraudit
from fleet.dev.localfleet.cluster import AuditSink, LocalCluster
from fleet.dev.localfleet.fleet import LocalFleet
from fleet.inventory import services
from fleet.inventory.credentials import ClusterCredentials
from fleet.inventory.models import Channel, Cluster


def register(clusters: Iterable[LocalCluster], *, channel: Channel, repo_url: Callable[[str], str],
             labels: Callable[[str], dict[str, str]] = lambda name: {}) -> list[Cluster]:
    """Create or update one inventory cluster per local cluster (audited), with its token."""
    registered = []
    for local in clusters:
        fields = {"api_server_url": local.server, "channel": channel, "internal_repo_url": repo_url(local.name),
                  "labels": {"fleet.dev/local": "true", **labels(local.name)}}
        credentials = ClusterCredentials(token=local.token, ca_pem=local.ca_pem)
        existing = Cluster.objects.filter(name=local.name).first()
        if existing is None:
            registered.append(services.create_cluster({"name": local.name, **fields}, credentials))
        else:
            registered.append(services.update_cluster(existing, fields, credentials))
    return registered


def send_audit_to(fleet: LocalFleet, clusters: Iterable[Cluster], base_url: str, *, ca_pem: str = "",
                  namespaces: tuple[str, ...] = ("default",), batch_max_wait: str = "1s",
                  initial_backoff: str = "10s", die_with_parent: bool = False) -> dict[str, str]:
    """Make each cluster's API server send its audit events to the Fleet at ``base_url``
    (https, its certificate signed by ``ca_pem``):
    issue (rotate) its ingest credential, restart its kube-apiserver with the webhook, and
    record who Fleet is there (asked of the cluster: a SelfSubjectReview). The credentials
    issued, by cluster name."""
    issued = {}
    for cluster in clusters:
        _, credential = credentials.issue(cluster)
        url = f"{base_url.rstrip('/')}/api/v1/cluster-audit/ingest/{cluster.name}/"
        sink = AuditSink(url, credential, ca_pem, namespaces, batch_max_wait, initial_backoff)
        fleet.enable_audit(cluster.name, sink, die_with_parent=die_with_parent)
        clusteraudit.resolve_identity(cluster)
        issued[cluster.name] = credential
    return issued
