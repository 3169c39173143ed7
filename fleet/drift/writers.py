"""Who wrote a drifted object: drift's record joined with the cluster's own API-server
audit events (``fleet.clusteraudit``), so a drifted field reads "alice@corp via kubectl
from 10.1.2.3 at 12:03", not only "kubectl-edit".

The join is the object (group, resource, namespace, name), the window (from a little
before the change ``managedFields`` dates, to the drift's end or now), and the field
manager matched to the write's own ``fieldManager`` or, when it named none, its client
(``fleet.clusteraudit.queries.manager_match``). A cluster that sends no audit events
links to nothing, which the pages say.
"""

from __future__ import annotations

import datetime

from django.utils import timezone

from fleet.clusteraudit.queries import Write, writes_to
from fleet.drift.models import DriftedResource
from fleet.inventory.models import Cluster

# managedFields times are whole seconds, and the cluster's clock is not Fleet's.
SKEW = datetime.timedelta(minutes=2)
LINKED = 3  # writes shown per drifted object, newest (exact matches) first


def writers(row: DriftedResource, cluster: Cluster, *, user=None) -> list[Write]:
    """The writes that drifted ``row`` (at most :data:`LINKED`); ``user``'s role is checked."""
    start = min(t for t in (row.changed_at, row.first_observed_at) if t is not None) - SKEW
    end = (row.resolved_at or timezone.now()) + SKEW
    return writes_to(cluster, row.ref, start, end, row.manager or None, user=user)[:LINKED]
