"""Retention: events older than ``FLEET_AUDIT_KEEP_DAYS`` move into signed bundles.

PCI DSS 10.5.1 asks for a year of audit history with the last three months at hand:
keep 92 days in the database and the archive bundles (``FLEET_AUDIT_ARCHIVE_DIR``,
ideally write-once storage) for at least a year. The bundle is written, synced and
verified with the public key before a single event is deleted; the deletion and the
``AuditArchive`` row that allows it (the database triggers refuse any other) commit
together. The chain stays verifiable across the cut: the first event kept links to
the archive's last hash, which ``verify`` checks against the row and the bundle's
signed manifest.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from fleet.audit import export, services
from fleet.audit.keys import trusted_keys
from fleet.audit.models import AuditArchive, AuditEvent
from fleet.core.errors import FleetError
from fleet_audit_verify.bundle import read_lines, verify_bundle


class ArchiveFailed(FleetError):
    domain = "audit"
    code = "archive"


@dataclass(frozen=True)
class ArchiveResult:
    archive: AuditArchive | None
    would_archive: int = 0
    reason: str = ""

    def summary(self) -> str:
        if self.archive is not None:
            return f"archived {self.archive.count} events ({self.archive}) into {self.archive.path}"
        if self.would_archive:
            return f"would archive {self.would_archive} events"
        return self.reason


def archive(*, dry_run: bool = False, now: datetime.datetime | None = None) -> ArchiveResult:
    if not settings.FLEET_AUDIT_KEEP_DAYS:
        return ArchiveResult(None, reason="retention is off (FLEET_AUDIT_KEEP_DAYS=0): every event stays")
    cutoff = (now or timezone.now()) - datetime.timedelta(days=settings.FLEET_AUDIT_KEEP_DAYS)
    span = export.sequence_range(None, cutoff)
    if span is None:
        return ArchiveResult(None, reason=f"no event older than {cutoff:%Y-%m-%d %H:%M} UTC")
    first, last = span
    if dry_run:
        return ArchiveResult(None, would_archive=last - first + 1)
    directory = settings.FLEET_AUDIT_ARCHIVE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"fleet-audit-{first:012d}-{last:012d}.jsonl"
    sha256 = export.write(path, export.bundle(last=last))
    with path.open("rb") as handle:
        check = verify_bundle(read_lines(handle), trusted_keys())
    if not check.ok or check.first_sequence != first or check.last_sequence != last:
        raise ArchiveFailed(f"the archive {path} does not verify ({check.summary()}); nothing was deleted")
    head = AuditEvent.objects.filter(sequence=last).values_list("hash", "prev_hash").get()
    first_prev = AuditEvent.objects.filter(sequence=first).values_list("prev_hash", flat=True).get()
    with transaction.atomic():
        row = AuditArchive(first_sequence=first, last_sequence=last, first_prev_hash=first_prev, last_hash=head[0],
                           count=check.events, until=cutoff, path=str(path), sha256=sha256,
                           created_at=timezone.now())
        row.save(force_insert=True)
        with connection.cursor() as cursor:  # the queryset refuses deletes; the trigger allows these
            cursor.execute("DELETE FROM audit_auditevent WHERE sequence <= %s", [last])
        services.record("audit.archive", target_type="auditarchive", target_id=str(row.pk), target_repr=str(row),
                        metadata={"first": first, "last": last, "count": check.events, "path": str(path),
                                  "sha256": sha256})
    return ArchiveResult(row)
