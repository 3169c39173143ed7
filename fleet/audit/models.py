"""The audit log: append-only and hash-chained, with signed checkpoints and archives.

Each event stores the hash of the one before it (by ``sequence``), so removing,
reordering or editing any event breaks the chain at that point, which
``manage.py audit verify`` finds. The code has no update or delete path (the
querysets and models refuse), and database triggers refuse them too, except the
deletion of events an archive already holds (retention).

A checkpoint is a signed statement "the chain had N events ending in hash H at time
T" (``fleet_audit_verify.signing``): without the signing key, nobody can rewrite the
chain consistently or cut its tail unnoticed.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from fleet.core.context import SOURCES
from fleet.core.errors import FleetError
from fleet_audit_verify.canonical import GENESIS_HASH, event_hash
from fleet_audit_verify.signing import checkpoint_statement

__all__ = ["GENESIS_HASH", "AppendOnlyError", "AuditArchive", "AuditCheckpoint", "AuditEvent", "ChainVerification"]


class AppendOnlyError(FleetError):
    """Raised on any attempt to change or remove an audit event."""

    domain = "audit"
    code = "append-only"


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("audit events are append-only: update refused")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit events are append-only: delete refused")

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        raise AppendOnlyError("audit events are append-only: update refused")


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("audit records are append-only: update refused")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit records are append-only: delete refused")


class AuditEvent(AppendOnlyModel):
    sequence = models.PositiveBigIntegerField(unique=True, editable=False)
    timestamp = models.DateTimeField(db_index=True, editable=False)
    actor = models.CharField(max_length=150, db_index=True, editable=False)
    source = models.CharField(max_length=16, choices=[(s, s) for s in SOURCES], editable=False)
    action = models.CharField(max_length=64, db_index=True, editable=False)
    target_type = models.CharField(max_length=64, blank=True, editable=False)
    target_id = models.CharField(max_length=64, blank=True, editable=False)
    target_repr = models.CharField(max_length=255, blank=True, editable=False)
    cluster = models.CharField(max_length=63, blank=True, db_index=True, editable=False)
    before = models.JSONField(null=True, blank=True, editable=False)
    after = models.JSONField(null=True, blank=True, editable=False)
    request_id = models.CharField(max_length=64, blank=True, editable=False)
    metadata = models.JSONField(default=dict, blank=True, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)

    class Meta:
        ordering = ["-sequence"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target_idx")]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.target_repr} by {self.actor}"

    def hashed_fields(self) -> dict[str, Any]:
        """What the hash covers (every recorded field and the previous hash), as bundles carry it."""
        return {"sequence": self.sequence, "timestamp": self.timestamp.isoformat(), "actor": self.actor,
                "source": self.source, "action": self.action, "target_type": self.target_type,
                "target_id": self.target_id, "target_repr": self.target_repr, "cluster": self.cluster,
                "before": self.before, "after": self.after, "request_id": self.request_id,
                "metadata": self.metadata, "prev_hash": self.prev_hash}

    def compute_hash(self) -> str:
        """SHA-256 over every recorded field and the previous hash, canonically encoded."""
        return event_hash(self.hashed_fields())


class AuditCheckpoint(AppendOnlyModel):
    """A signed statement of the chain's head: made every ``FLEET_AUDIT_CHECKPOINT_EVERY``
    events (in the transaction of the event that reaches the count) and every
    ``FLEET_AUDIT_CHECKPOINT_SECONDS`` when the head moved."""

    sequence = models.PositiveBigIntegerField(unique=True, editable=False)
    hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(editable=False)
    every = models.PositiveIntegerField(editable=False, help_text="the checkpoint interval in force")
    key_id = models.CharField(max_length=16, editable=False)
    signature = models.CharField(max_length=100, editable=False)

    class Meta:
        ordering = ["-sequence"]

    def __str__(self) -> str:
        return f"checkpoint of #{self.sequence} ({self.created_at:%Y-%m-%d %H:%M:%S}, key {self.key_id})"

    def statement(self) -> dict[str, Any]:
        """The signed statement, exactly as signed (``signature`` included)."""
        return {**checkpoint_statement(sequence=self.sequence, hash=self.hash, time=self.created_at.isoformat(),
                                       every=self.every, key_id=self.key_id), "signature": self.signature}


class AuditArchive(AppendOnlyModel):
    """Events moved out of the database into a signed bundle (retention). The chain
    goes on across the cut: the first event kept links to ``last_hash``."""

    first_sequence = models.PositiveBigIntegerField(editable=False)
    last_sequence = models.PositiveBigIntegerField(unique=True, editable=False)
    first_prev_hash = models.CharField(max_length=64, editable=False)
    last_hash = models.CharField(max_length=64, editable=False)
    count = models.PositiveBigIntegerField(editable=False)
    until = models.DateTimeField(editable=False, help_text="every archived event is older than this")
    path = models.CharField(max_length=1000, editable=False, help_text="the bundle file")
    sha256 = models.CharField(max_length=64, editable=False, help_text="of the bundle file")
    created_at = models.DateTimeField(editable=False)

    class Meta:
        ordering = ["-last_sequence"]

    def __str__(self) -> str:
        return f"archive of #{self.first_sequence}..#{self.last_sequence}"


class ChainVerification(models.Model):
    """The outcome of one walk of the whole chain (the hourly task, the console, the API,
    the CLI), so the console shows the chain's state without reading a million events
    per page view. Not part of the evidence: a verifier re-walks the chain itself."""

    ran_at = models.DateTimeField(db_index=True)
    ok = models.BooleanField()
    checked = models.PositiveBigIntegerField()
    first_broken_sequence = models.PositiveBigIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    seconds = models.FloatField()
    source = models.CharField(max_length=16, choices=[(s, s) for s in SOURCES])

    class Meta:
        ordering = ["-ran_at"]

    def __str__(self) -> str:
        return f"chain {'intact' if self.ok else 'broken'} at {self.ran_at:%Y-%m-%d %H:%M}"
