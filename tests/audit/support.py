"""What the audit tests share: events made through the real service, and a database
owner's tools (triggers off) to tamper with them as an attacker with the database would."""

from __future__ import annotations

from django.db import connection

from fleet.audit import services
from fleet.audit.models import AuditEvent
from fleet.core import context
from fleet_audit_verify.canonical import event_hash

TRIGGERS = {"audit_auditevent": "audit_event_append_only", "audit_auditcheckpoint": "audit_checkpoint_append_only",
            "audit_auditarchive": "audit_archive_append_only"}


def make_events(n: int, *, actor: str = "cli:alice") -> list[AuditEvent]:
    with context.activate(source="cli", actor=actor):
        return [services.record(f"test.event{i % 2}", target_type="thing", target_id=str(i),
                                target_repr=f"thing {i} \u00e9\u4e2d", cluster=f"cl-{i % 3}",
                                metadata={"i": i, "ratio": i / 7, "nested": {"b": [1, None, "x"], "a": True}})
                for i in range(n)]


def tamper(*statements: tuple[str, list]) -> None:
    """Run SQL with the append-only triggers off, as the database's owner can."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for table, trigger in TRIGGERS.items():
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
            for sql, params in statements:
                cursor.execute(sql, params)
            for table, trigger in TRIGGERS.items():
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
            return
        cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name LIKE 'audit_%'")
        saved = cursor.fetchall()
        for name, _ in saved:
            cursor.execute(f"DROP TRIGGER {name}")
        for sql, params in statements:
            cursor.execute(sql, params)
        for _, sql in saved:
            cursor.execute(sql)


def rewrite_from(sequence: int, actor: str = "mallory") -> None:
    """A consistent rewrite: change event ``sequence`` and recompute every hash after it,
    so the chain on its own verifies again."""
    statements, prev = [], None
    for event in AuditEvent.objects.filter(sequence__gte=sequence - 1).order_by("sequence"):
        if event.sequence >= sequence:
            if event.sequence == sequence:
                event.actor = actor
            event.prev_hash = prev
            event.hash = event_hash(event.hashed_fields())
            statements.append(("UPDATE audit_auditevent SET actor = %s, prev_hash = %s, hash = %s "
                               "WHERE sequence = %s", [event.actor, event.prev_hash, event.hash, event.sequence]))
        prev = event.hash
    tamper(*statements)
