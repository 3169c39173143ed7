"""Signed checkpoints of the chain's head, every N events and every interval.

A checkpoint is made in the transaction of the event that brings the count since the
last one to ``FLEET_AUDIT_CHECKPOINT_EVERY``, so there is never a window where the
rule is broken; ``verify`` can therefore treat a longer gap as a removed checkpoint.
The periodic task adds one when the head moved, so a quiet log is still attested.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from fleet.audit.keys import signing_key, signing_key_id
from fleet.audit.models import AuditCheckpoint, AuditEvent
from fleet.core.locks import xact_lock
from fleet_audit_verify.signing import checkpoint_statement, sign


def last_sequence() -> int:
    return AuditCheckpoint.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


def due(sequence: int) -> bool:
    return sequence - last_sequence() >= settings.FLEET_AUDIT_CHECKPOINT_EVERY


def make(sequence: int, head_hash: str) -> AuditCheckpoint:
    """Sign and store a checkpoint of event ``sequence`` (the caller holds the chain lock)."""
    now = timezone.now()
    statement = checkpoint_statement(sequence=sequence, hash=head_hash, time=now.isoformat(),
                                     every=settings.FLEET_AUDIT_CHECKPOINT_EVERY, key_id=signing_key_id())
    checkpoint = AuditCheckpoint(sequence=sequence, hash=head_hash, created_at=now, every=statement["every"],
                                 key_id=statement["key_id"], signature=sign(signing_key(), statement))
    checkpoint.save(force_insert=True)
    return checkpoint


def checkpoint_head() -> AuditCheckpoint | None:
    """Checkpoint the head if it moved since the last checkpoint (the periodic task)."""
    with transaction.atomic():
        xact_lock("audit-chain")
        head = AuditEvent.objects.order_by("-sequence").values_list("sequence", "hash").first()
        if head is None or head[0] <= last_sequence():
            return None
        return make(*head)
