"""The cluster audit's errors (``clusteraudit.<code>``; statuses in ``fleet.api.exceptions``)."""

from __future__ import annotations

from fleet.core.errors import FleetError


class ClusterAuditError(FleetError):
    """Bad input to the cluster audit: a malformed event, filter or file (``invalid``)."""

    domain = "clusteraudit"
    code = "invalid"


class IngestRefused(ClusterAuditError):
    """An ingest request without a valid credential for the cluster it names."""

    code = "unauthenticated"


class WrongCluster(ClusterAuditError):
    """A valid credential of one cluster, used to send events for another."""

    code = "wrong-cluster"


class BatchTooLarge(ClusterAuditError):
    code = "too-large"


class UnknownCluster(ClusterAuditError):
    code = "unknown-cluster"
