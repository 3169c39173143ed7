"""Retention: old events move into a verified, signed bundle; the chain stays
verifiable across the cut; the database refuses any other deletion."""

from __future__ import annotations

import datetime
import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from fleet.audit import checkpoints, retention, services
from fleet.audit.keys import trusted_keys
from fleet.audit.models import AuditArchive, AuditEvent
from fleet_audit_verify.bundle import read_lines, verify_bundle
from tests.audit.support import make_events, tamper

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def aged(settings, tmp_path) -> list[AuditEvent]:
    """Nine events, the first five recorded "100 days ago" (rewritten consistently: the
    timestamp is hashed), checkpoints every 3."""
    settings.FLEET_AUDIT_CHECKPOINT_EVERY = 3
    settings.FLEET_AUDIT_KEEP_DAYS = 92
    settings.FLEET_AUDIT_ARCHIVE_DIR = tmp_path / "archive"
    events = make_events(9)
    old = timezone.now() - datetime.timedelta(days=100)
    statements, prev = [], None
    for event in AuditEvent.objects.order_by("sequence"):
        if event.sequence <= 5:
            event.timestamp = old + datetime.timedelta(seconds=event.sequence)
        event.prev_hash = prev or event.prev_hash
        event.hash = event.compute_hash()
        statements.append(("UPDATE audit_auditevent SET timestamp = %s, prev_hash = %s, hash = %s WHERE sequence = %s",
                           [event.timestamp, event.prev_hash, event.hash, event.sequence]))
        prev = event.hash
    tamper(*statements, ("DELETE FROM audit_auditcheckpoint", []))
    for sequence in (3, 6, 9):  # signed again over the aged chain
        checkpoints.make(sequence, AuditEvent.objects.get(sequence=sequence).hash)
    assert services.verify_chain().ok
    return events


def test_archive_moves_old_events_into_a_verified_bundle_and_the_chain_goes_on(aged):
    assert retention.archive(dry_run=True).would_archive == 5
    result = retention.archive()
    archive = result.archive
    assert (archive.first_sequence, archive.last_sequence, archive.count) == (1, 5, 5)
    assert list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))[:5] == [6, 7, 8, 9, 10]
    assert AuditEvent.objects.get(sequence=6).prev_hash == archive.last_hash
    assert AuditEvent.objects.get(sequence=10).action == "audit.archive"
    with Path(archive.path).open("rb") as handle:
        assert verify_bundle(read_lines(handle), trusted_keys()).ok
    report = services.verify_chain()
    assert report.ok and report.archived == 5 and report.checked == 5
    services.record("after.the.cut")  # appends on, linked to the last event kept
    assert services.verify_chain().ok
    assert retention.archive().reason.startswith("no event older than")


def test_only_archived_events_may_be_deleted(aged):
    retention.archive()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditevent WHERE sequence = 7")
    for table in ("audit_auditarchive", "audit_auditcheckpoint"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {table}")


def test_a_missing_or_altered_archive_is_reported(aged):
    archive = retention.archive().archive
    tamper(("UPDATE audit_auditarchive SET last_hash = %s", ["0" * 64]))
    report = services.verify_chain()
    assert not report.ok and "the archives do not link up" not in report.reason
    assert "differ from its signed bundle: the row was altered" in report.reason
    tamper(("UPDATE audit_auditarchive SET last_hash = %s", [archive.last_hash]))
    assert services.verify_chain().ok
    Path(archive.path).unlink()
    report = services.verify_chain()
    assert not report.ok and report.first_broken == 1 and "is missing" in report.reason


def test_retention_is_off_by_default_and_the_command_says_so(settings):
    settings.FLEET_AUDIT_KEEP_DAYS = 0
    out = io.StringIO()
    call_command("audit", "archive", stdout=out)
    assert "retention is off" in out.getvalue()
    assert not AuditArchive.objects.exists()


def test_the_manifest_of_an_archive_names_its_range(aged):
    archive = retention.archive().archive
    manifest = json.loads(Path(archive.path).read_bytes().splitlines()[-1])
    assert (manifest["first_sequence"], manifest["last_sequence"], manifest["count"]) == (1, 5, 5)
    assert manifest["last_hash"] == archive.last_hash and manifest["first_prev_hash"] == "0" * 64
