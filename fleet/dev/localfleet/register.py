"""Register a local fleet's clusters in the inventory (the demo and end-to-end tests).

Kept apart from the rest of the package, which must work without Django.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fleet.dev.localfleet.cluster import LocalCluster
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
