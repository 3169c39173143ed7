"""Storing API servers' audit events: webhook batches, imported log files, retention, and
who Fleet is on each cluster.

Every path stores through :func:`store`: ``COPY`` and one ``INSERT … ON CONFLICT DO NOTHING``
per thousand events on PostgreSQL (``executemany`` elsewhere), so a replayed batch or a
re-imported file is stored once, whichever database.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from fleet.accounts.roles import Role
from fleet.audit import services as audit
from fleet.clusteraudit import access, partitions
from fleet.clusteraudit.classify import FleetIdentity, classify
from fleet.clusteraudit.credentials import prune_refusals
from fleet.clusteraudit.errors import ClusterAuditError
from fleet.clusteraudit.events import BadEvent, ParsedEvent, parse_event
from fleet.clusteraudit.models import AuditSource, ClusterAuditEvent
from fleet.core import jsonload
from fleet.core.errors import FleetError
from fleet.inventory.models import Cluster
from fleet.kube.client import client_for

logger = logging.getLogger(__name__)

CHUNK = 1000
_LAST_INGEST_GRANULARITY = datetime.timedelta(minutes=1)
MAX_LINE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class StoreResult:
    received: int
    stored: int

    @property
    def duplicates(self) -> int:
        return self.received - self.stored

    def as_dict(self) -> dict[str, int]:
        return {"received": self.received, "stored": self.stored, "duplicates": self.duplicates}


def identity_of(cluster: Cluster) -> FleetIdentity:
    username = AuditSource.objects.filter(cluster=cluster).values_list("fleet_username", flat=True).first()
    return FleetIdentity(username or "")


_FIELDS = [f for f in ClusterAuditEvent._meta.concrete_fields if not f.primary_key]
_NAMES = [f.name for f in _FIELDS]


_JSON = frozenset(f.name for f in _FIELDS if isinstance(f, models.JSONField))
_TIMES = frozenset(f.name for f in _FIELDS if isinstance(f, models.DateTimeField))


def _copy_value(value: object) -> str:
    """One value in COPY's text format (``\\N`` for NULL; backslash, tab, newline, CR escaped)."""
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "t" if value else "f"
    text = value if isinstance(value, str) else (
        value.isoformat() if isinstance(value, datetime.datetime) else str(value))
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def _insert(rows: list[dict[str, object]]) -> int:
    """Insert ``rows`` (field values by name), skipping those already stored; how many were new.

    PostgreSQL: COPY (text, formatted here: psycopg's per-value adaptation cost more than the
    insert) into a temporary table of the same columns, then one ``INSERT … SELECT … ON CONFLICT
    DO NOTHING`` (COPY cannot skip conflicts itself). Elsewhere: ``executemany`` of
    ``INSERT … ON CONFLICT DO NOTHING``.
    """
    table = ClusterAuditEvent._meta.db_table
    columns = ", ".join(connection.ops.quote_name(f.column) for f in _FIELDS)
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            values = [[connection.ops.adapt_json_value(row[name], None) if name in _JSON
                       else connection.ops.adapt_datetimefield_value(row[name]) if name in _TIMES else row[name]
                       for name in _NAMES] for row in rows]
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(_FIELDS))}) "
                               "ON CONFLICT DO NOTHING", values)
            return cursor.rowcount
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS clusteraudit_staging ON COMMIT DELETE ROWS AS "
                       f"SELECT {columns} FROM {table} WITH NO DATA")
        lines = []
        for row in rows:
            lines.append("\t".join(_copy_value(json.dumps(row[name], separators=(",", ":")) if name in _JSON
                                               and row[name] is not None else row[name]) for name in _NAMES))
        with cursor.cursor.copy(f"COPY clusteraudit_staging ({columns}) FROM STDIN") as copy:
            copy.write("\n".join(lines) + "\n")
        cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM clusteraudit_staging "
                       "ON CONFLICT DO NOTHING")
        stored = cursor.rowcount
        cursor.execute("TRUNCATE clusteraudit_staging")
        return stored


def store(cluster: Cluster, events: Iterable[ParsedEvent], *, identity: FleetIdentity | None = None) -> StoreResult:
    """Store ``events`` of ``cluster`` (classified against Fleet's identity there), each
    (auditID, stage, time) once; in one transaction."""
    identity = identity if identity is not None else identity_of(cluster)
    received = stored = 0
    rows: list[dict[str, object]] = []
    with transaction.atomic():
        for event in events:
            fields = dict(event.fields, cluster=cluster.pk)
            fields["actor"], fields["outside_gitops"] = classify(event.fields, identity)
            rows.append(fields)
            received += 1
            if len(rows) == CHUNK:
                stored += _insert(rows)
                rows.clear()
        if rows:
            stored += _insert(rows)
    return StoreResult(received, stored)


def ingest(cluster: Cluster, events: list[ParsedEvent]) -> StoreResult:
    """Store one webhook batch (already authenticated and parsed whole)."""
    result = store(cluster, events)
    now = timezone.now()
    AuditSource.objects.filter(cluster=cluster).exclude(
        last_ingest_at__gt=now - _LAST_INGEST_GRANULARITY).update(last_ingest_at=now)
    return result


def cluster_named(name: str) -> Cluster:
    cluster = Cluster.objects.filter(name=name).first()
    if cluster is None:
        raise ClusterAuditError(f"no cluster {name!r}", code="unknown-cluster", field="cluster")
    return cluster


# -- file import ---------------------------------------------------------------------------

def import_file(cluster: Cluster, path: Path, *, progress: Callable[[int, int], None] | None = None) -> StoreResult:
    """Import a JSON-lines audit log (kube-apiserver's ``--audit-log-path`` format, or a
    cloud's export of it) whole, or nothing of it: one transaction, so a bad line (named
    by its number) leaves nothing stored. ``progress(bytes_done, bytes_total)`` is told
    after every chunk."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ClusterAuditError(f"{path}: cannot read it: {exc.strerror}", field="file") from None
    total, done = path.stat().st_size, 0
    identity = identity_of(cluster)
    received = stored = 0
    batch: list[ParsedEvent] = []

    def flush() -> None:
        nonlocal received, stored
        result = store(cluster, batch, identity=identity)
        received, stored = received + result.received, stored + result.stored
        batch.clear()
        if progress:
            progress(done, total)

    with handle, transaction.atomic():
        for number, line in enumerate(handle, start=1):
            done += len(line)
            if len(line) > MAX_LINE_BYTES:
                raise BadEvent(f"line {number}: longer than {MAX_LINE_BYTES} bytes", field=f"line {number}")
            if not line.strip():
                continue
            try:
                raw = jsonload.loads(line)
            except FleetError as exc:
                raise BadEvent(f"line {number}: {exc}", field=f"line {number}") from None
            batch.append(parse_event(raw, f"line {number}"))
            if len(batch) == CHUNK * 5:
                flush()
        flush()
        audit.record("clusteraudit.import", target=cluster,
                     metadata={"file": path.name, "events": received, "stored": stored})
    return StoreResult(received, stored)


# -- Fleet's identity ------------------------------------------------------------------------

def resolve_identity(cluster: Cluster, *, user=None) -> str:
    """Ask the cluster who Fleet's credentials are (SelfSubjectReview, Kubernetes ≥ 1.28)
    and record it (an admin's act); the username."""
    access.require(user, Role.ADMIN, "setting who Fleet is on a cluster")
    review = client_for(cluster).request(
        "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    username = str(((review.get("status") or {}).get("userInfo") or {}).get("username") or "")
    if not username:
        raise ClusterAuditError(f"cluster {cluster.name} did not say who Fleet's credentials are", code="identity")
    set_identity(cluster, username, source="self-subject-review", user=user)
    return username


def set_identity(cluster: Cluster, username: str, *, source: str = "admin", user=None) -> AuditSource:
    """Record who Fleet is on ``cluster`` (an admin's act, audited). Events already stored
    keep the classification they were stored with."""
    access.require(user, Role.ADMIN, "setting who Fleet is on a cluster")
    source_row = AuditSource.objects.filter(cluster=cluster).first()
    if source_row is None:
        raise ClusterAuditError(f"cluster {cluster.name} has no audit source yet: issue its ingest credential first",
                                code="no-source", field="cluster")
    return audit.update(source_row, {"fleet_username": username[:255], "fleet_username_source": source})


# -- retention -----------------------------------------------------------------------------

@dataclass(frozen=True)
class MaintenanceResult:
    partitions_made: list[str]
    partitions_dropped: list[str]
    rows_deleted: int

    def summary(self) -> str:
        return (f"{len(self.partitions_made)} partitions made, {len(self.partitions_dropped)} dropped, "
                f"{self.rows_deleted} events deleted")


def maintain(now: datetime.datetime | None = None) -> MaintenanceResult:
    """Make the coming days' partitions and remove what retention
    (``FLEET_CLUSTER_AUDIT_KEEP_DAYS``) no longer keeps: whole day partitions on
    PostgreSQL, rows elsewhere. Audited when something was removed."""
    now = now or timezone.now()
    made = partitions.ensure(now.date())
    keep = settings.FLEET_CLUSTER_AUDIT_KEEP_DAYS
    dropped: list[str] = []
    deleted = 0
    if keep:
        cutoff = datetime.datetime.combine(now.date() - datetime.timedelta(days=keep), datetime.time(),
                                           datetime.UTC)
        if partitions.is_partitioned():
            dropped, deleted = partitions.drop_before(cutoff)
        else:
            deleted = ClusterAuditEvent.objects.filter(request_received_at__lt=cutoff).delete()[0]
        if dropped or deleted:
            audit.record("clusteraudit.retention", target_type="clusteraudit", target_repr="cluster audit events",
                         metadata={"before": cutoff.isoformat(), "keep_days": keep, "partitions_dropped": dropped,
                                   "rows_deleted": deleted})
    prune_refusals()
    return MaintenanceResult(made, dropped, deleted)
