"""Recording and verifying audit events, and audited create/update/delete.

Every write path (API, admin, commands, tasks) goes through :func:`create`,
:func:`update` and :func:`delete` or calls :func:`record` itself, inside the same
transaction as the change, so an event exists exactly when the change does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import models, transaction
from django.utils import timezone

from fleet.audit import checkpoints
from fleet.audit.models import GENESIS_HASH, AuditArchive, AuditEvent, ChainVerification
from fleet.audit.snapshot import changed_fields, snapshot
from fleet.audit.verify import ChainReport, verify_chain
from fleet.core import context
from fleet.core.locks import xact_lock

__all__ = ["ChainHead", "ChainReport", "chain_head", "create", "delete", "latest_verification", "record", "update",
           "verify_and_record", "verify_chain"]

KEPT_VERIFICATIONS = 500  # about three weeks of hourly checks

M = TypeVar("M", bound=models.Model)


def record(action: str, *, target: models.Model | None = None, target_type: str = "",
           target_id: str = "", target_repr: str = "", cluster: str = "",
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
           metadata: dict[str, Any] | None = None) -> AuditEvent:
    """Append one event to the chain, as the actor of the active audit context."""
    ctx = context.current()
    if target is not None:
        target_type = target_type or target._meta.model_name
        target_id = target_id or str(target.pk)
        target_repr = target_repr or str(target)
        cluster = cluster or getattr(target, "audit_cluster_name", "")
    with transaction.atomic():
        xact_lock("audit-chain")
        head = chain_head()
        sequence, prev_hash = head.sequence + 1, head.hash
        event = AuditEvent(
            sequence=sequence, timestamp=timezone.now(), actor=ctx.actor_name()[:150],
            source=ctx.source, action=action, target_type=target_type, target_id=target_id,
            target_repr=target_repr[:255], cluster=cluster, before=before, after=after,
            request_id=ctx.request_id, metadata=metadata or {}, prev_hash=prev_hash,
        )
        event.hash = event.compute_hash()
        event.save(force_insert=True)
        if checkpoints.due(sequence):
            checkpoints.make(sequence, event.hash)
    return event


@dataclass(frozen=True)
class ChainHead:
    """The last event of the chain (``0`` and the genesis hash before the first one)."""

    sequence: int
    hash: str

    @property
    def anchor(self) -> str:
        """How a deploy tag records it: ``<sequence>:<hash>``."""
        return f"{self.sequence}:{self.hash}"

    def as_dict(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "hash": self.hash}


def chain_head() -> ChainHead:
    last = AuditEvent.objects.order_by("-sequence").values_list("sequence", "hash").first()
    if last is None:  # every event archived, or none yet
        archive = AuditArchive.objects.order_by("-last_sequence").values_list("last_sequence", "last_hash").first()
        return ChainHead(*archive) if archive else ChainHead(0, GENESIS_HASH)
    return ChainHead(*last)


def _action(instance: models.Model, verb: str) -> str:
    return f"{instance._meta.model_name}.{verb}"


def create(instance: M, *, metadata: dict[str, Any] | None = None) -> M:
    with transaction.atomic():
        instance.full_clean(validate_unique=False, validate_constraints=False)
        instance.save(force_insert=True)
        record(_action(instance, "create"), target=instance, after=snapshot(instance),
               metadata=metadata)
    return instance


def update(instance: M, changes: dict[str, Any], *, secrets_changed: Iterable[str] = (),
           metadata: dict[str, Any] | None = None) -> M:
    """Apply ``changes`` and audit them; a no-op update writes nothing.

    Snapshots show a secret only as set or unset, so a replaced secret is invisible
    to the comparison: callers name the secret fields they really changed. Only the
    changed fields are validated: a value stored under an earlier rule (a repository
    path outside a since-narrowed ``FLEET_GIT_LOCAL_ROOTS``) must not stop an operator
    from pausing the cluster.
    """
    with transaction.atomic():
        before = snapshot(instance)
        for name, value in changes.items():
            setattr(instance, name, value)
        after = snapshot(instance)
        changed = sorted(set(changed_fields(before, after)) | set(secrets_changed))
        if not changed:
            return instance
        unchanged = [field.name for field in instance._meta.concrete_fields if field.name not in changed]
        instance.full_clean(exclude=unchanged, validate_unique=False, validate_constraints=False)
        instance.save()
        record(_action(instance, "update"), target=instance, before=before, after=after,
               metadata={"changed": changed, **(metadata or {})})
    return instance


def delete(instance: models.Model, *, metadata: dict[str, Any] | None = None) -> None:
    with transaction.atomic():
        before = snapshot(instance)
        target = dict(target_type=instance._meta.model_name, target_id=str(instance.pk),
                      target_repr=str(instance),
                      cluster=getattr(instance, "audit_cluster_name", ""))
        instance.delete()
        record(_action(instance, "delete"), before=before, metadata=metadata, **target)


def verify_and_record(**options: Any) -> ChainReport:
    """Walk the chain (``options`` as :func:`verify_chain` takes them) and keep the
    outcome, for the console's status line and for whoever asks when it was last intact."""
    report = verify_chain(**options)
    ChainVerification.objects.create(
        ran_at=timezone.now(), ok=report.ok, checked=report.checked, first_broken_sequence=report.first_broken,
        reason=report.reason, seconds=report.elapsed, source=context.current().source)
    stale = ChainVerification.objects.order_by("-ran_at").values_list("pk", flat=True)[KEPT_VERIFICATIONS:]
    ChainVerification.objects.filter(pk__in=list(stale)).delete()
    return report


def latest_verification() -> ChainVerification | None:
    return ChainVerification.objects.order_by("-ran_at").first()
