"""The audit log: append-only and hash-chained.

Each event stores the hash of the one before it (by ``sequence``), so removing,
reordering or editing any event breaks the chain at that point, which
``manage.py audit verify`` finds. The code has no update or delete path (the
queryset and model refuse), and database triggers refuse them too.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import models

from fleet.core.context import SOURCES
from fleet.core.errors import FleetError

GENESIS_HASH = "0" * 64


class AppendOnlyError(FleetError):
    """Raised on any attempt to change or remove an audit event."""

    domain = "audit"
    code = "append-only"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("audit events are append-only: update refused")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit events are append-only: delete refused")

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        raise AppendOnlyError("audit events are append-only: update refused")


class AuditEvent(models.Model):
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

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-sequence"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target_idx")]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.target_repr} by {self.actor}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("audit events are append-only: update refused")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit events are append-only: delete refused")

    def compute_hash(self) -> str:
        """SHA-256 over every recorded field and the previous hash, canonically encoded."""
        payload = {
            "sequence": self.sequence,
            "timestamp": self.timestamp.isoformat(),
            "actor": self.actor,
            "source": self.source,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "target_repr": self.target_repr,
            "cluster": self.cluster,
            "before": self.before,
            "after": self.after,
            "request_id": self.request_id,
            "metadata": self.metadata,
            "prev_hash": self.prev_hash,
        }
        encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(encoded.encode()).hexdigest()
