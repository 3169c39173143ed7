"""Per-cluster ingest credentials: issued and rotated by an admin, checked on every batch.

A credential is ``fca_<key>_<secret>``, shown once; Fleet keeps the key and the secret's
SHA-256 (a leaked database leaks no working credential). It lets its holder do exactly one
thing: send that cluster's audit events. Rotation replaces the secret at once, or keeps the
previous one valid for a grace period while the API server's webhook configuration is
updated; every issue and rotation is an audit event (without the secret).

Refused requests are audited too, but an endpoint open to the network would let anyone fill
the audit chain: the first refusal per claimed cluster and source address in each
:data:`REFUSAL_WINDOW` is an audit event, the others are counted (:class:`IngestRefusal`),
and the next window's first event carries the count of the one before.
"""

from __future__ import annotations

import base64
import datetime
import hmac
import logging
import secrets

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from fleet.accounts.models import digest
from fleet.accounts.roles import Role
from fleet.audit import services as audit
from fleet.clusteraudit import access
from fleet.clusteraudit.errors import ClusterAuditError, IngestRefused, WrongCluster
from fleet.clusteraudit.models import AuditSource, IngestRefusal
from fleet.core import yaml
from fleet.inventory.models import Cluster

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "fca"
REFUSAL_WINDOW = datetime.timedelta(minutes=10)
MAX_GRACE = datetime.timedelta(days=7)


def issue(cluster: Cluster, *, grace: datetime.timedelta = datetime.timedelta(0),
          user=None) -> tuple[AuditSource, str]:
    """Issue ``cluster``'s first credential or rotate it (an admin's act); the plaintext,
    returned once.

    ``grace``: how long the previous secret stays valid (0: revoked now, as after a leak).
    """
    access.require(user, Role.ADMIN, "issuing a cluster's audit ingest credential")
    if not datetime.timedelta(0) <= grace <= MAX_GRACE:
        raise ClusterAuditError(f"the grace period must be between 0 and {MAX_GRACE.days} days",
                                field="grace_seconds")
    secret = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        source = AuditSource.objects.select_for_update().filter(cluster=cluster).first()
        if source is None:
            source = AuditSource(cluster=cluster, key=secrets.token_hex(6))
            action = "clusteraudit.credential.issue"
        else:
            action = "clusteraudit.credential.rotate"
            source.previous_secret_hash = source.secret_hash if grace else ""
            source.previous_valid_until = now + grace if grace else None
        source.secret_hash, source.rotated_at = digest(secret), now
        source.save()
        audit.record(action, target=source, cluster=cluster.name,
                     metadata={"grace_seconds": int(grace.total_seconds()), "key": source.key})
    return source, f"{TOKEN_PREFIX}_{source.key}_{secret}"


def authenticate(cluster_name: str, authorization: str) -> Cluster:
    """The cluster ``cluster_name`` if ``authorization`` (``Bearer fca_…``) is its credential.

    :class:`IngestRefused` (401) for a missing, malformed, unknown or revoked credential
    and for a cluster that does not exist (the same answer: the endpoint does not tell
    which cluster names exist); :class:`WrongCluster` (403) for another cluster's.
    """
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise IngestRefused("an ingest credential is needed: Authorization: Bearer fca_…")
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise IngestRefused("malformed ingest credential")
    source = AuditSource.objects.select_related("cluster").filter(key=parts[1]).first()
    if source is None or not _secret_matches(source, parts[2]):
        raise IngestRefused("invalid ingest credential")
    if source.cluster.name != cluster_name:
        raise WrongCluster(f"this credential is cluster {source.cluster.name}'s; it cannot send events for "
                           f"{cluster_name[:63]!r}", detail={"credential_of": source.cluster.name})
    return source.cluster


def _secret_matches(source: AuditSource, secret: str) -> bool:
    hashed = digest(secret)
    if hmac.compare_digest(source.secret_hash, hashed):
        return True
    return bool(source.previous_secret_hash and source.previous_valid_until
                and source.previous_valid_until > timezone.now()
                and hmac.compare_digest(source.previous_secret_hash, hashed))


def note_refusal(cluster_name: str, remote_addr: str, reason: str, *, now: datetime.datetime | None = None) -> bool:
    """Count one refused ingest request; audit it if it is the first of its window.
    Returns whether it was audited."""
    now = now or timezone.now()
    claimed = cluster_name if Cluster.objects.filter(name=cluster_name).exists() else "(unknown cluster)"
    key = f"{claimed}|{remote_addr}"[:320]
    epoch = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    window = epoch + (now - epoch) // REFUSAL_WINDOW * REFUSAL_WINDOW
    if IngestRefusal.objects.filter(key=key, window_start=window).update(count=F("count") + 1):
        return False
    try:
        with transaction.atomic():
            IngestRefusal.objects.create(key=key, window_start=window)
    except IntegrityError:  # another request of the same window was first
        IngestRefusal.objects.filter(key=key, window_start=window).update(count=F("count") + 1)
        return False
    before = (IngestRefusal.objects.filter(key=key, window_start=window - REFUSAL_WINDOW)
              .values_list("count", flat=True).first())
    audit.record("clusteraudit.ingest.refused", target_type="cluster", target_repr=claimed,
                 cluster="" if claimed.startswith("(") else claimed,
                 metadata={"source_ip": remote_addr, "reason": reason[:300], "window_start": window.isoformat(),
                           "window_minutes": int(REFUSAL_WINDOW.total_seconds() // 60),
                           "refused_in_previous_window": before or 0,
                           "note": "further refusals from this address in this window are counted, not audited"})
    return True


def prune_refusals(older_than: datetime.timedelta = datetime.timedelta(days=1)) -> int:
    return IngestRefusal.objects.filter(window_start__lt=timezone.now() - older_than).delete()[0]


def webhook_kubeconfig(ingest_url: str, credential: str, *, ca_pem: str = "") -> str:
    """The file kube-apiserver's ``--audit-webhook-config-file`` reads: a kubeconfig whose
    cluster is Fleet's ingest URL for this cluster and whose user is its credential. Holds
    the credential: write it 0600 on the API server's host."""
    cluster: dict[str, str] = {"server": ingest_url}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem.encode()).decode()
    return yaml.dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "fleet", "cluster": cluster}],
        "users": [{"name": "fleet-audit-ingest", "user": {"token": credential}}],
        "contexts": [{"name": "fleet", "context": {"cluster": "fleet", "user": "fleet-audit-ingest"}}],
        "current-context": "fleet"})
