"""The three state machines of a rollout, and the one place transitions happen.

Every transition is a compare-and-set on the row
(``UPDATE … WHERE pk = … AND state = <expected>``), so two workers racing to advance
the same rollout, wave or cluster cannot both succeed: the loser sees zero rows and
backs off. An illegal transition is a programming error and raises.

Rollout::

    pending ──start──▶ running ──all waves succeeded──▶ succeeded
       │                │  ▲ │
       │             pause resume └─failure budget exceeded─▶ halted
       │                ▼  │
       │               paused
       └──abort──▶ aborted ◀──(nothing in flight)── aborting ◀──abort── running|paused

Wave::

    pending ─▶ awaiting_approval ─approve─▶ running ─▶ baking ─▶ succeeded
       └──────────────────────────────────────▲   │         └─regression─▶ halted
                                                  └─budget exceeded─▶ halted
    pending|awaiting_approval|running|baking ─(rollout ended)─▶ cancelled

ClusterDeployment::

    pending ─claim─▶ running ─▶ succeeded | failed | blocked (policy) | conflict (rebase)
    pending ─▶ skipped (paused/pinned cluster) | cancelled (rollout ended)
    pending ─▶ failed (refused at claim: a protected cluster, an author who is not an admin)
    running ─▶ cancelled (abort between steps)
    succeeded ─▶ failed (health regression while baking)
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import QuerySet
from django.utils import timezone


class RolloutState(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    ABORTING = "aborting"
    SUCCEEDED = "succeeded"
    HALTED = "halted"
    ABORTED = "aborted"


class WaveState(models.TextChoices):
    PENDING = "pending"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    BAKING = "baking"
    SUCCEEDED = "succeeded"
    HALTED = "halted"
    CANCELLED = "cancelled"


class DeploymentState(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    BLOCKED = "blocked"
    CONFLICT = "conflict"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


R, W, D = RolloutState, WaveState, DeploymentState

TRANSITIONS: dict[type[models.TextChoices], dict[str, set[str]]] = {
    RolloutState: {
        R.PENDING: {R.RUNNING, R.ABORTED},
        R.RUNNING: {R.PAUSED, R.ABORTING, R.SUCCEEDED, R.HALTED},
        R.PAUSED: {R.RUNNING, R.ABORTING},
        R.ABORTING: {R.ABORTED},
    },
    WaveState: {
        W.PENDING: {W.AWAITING_APPROVAL, W.RUNNING, W.CANCELLED},
        W.AWAITING_APPROVAL: {W.RUNNING, W.CANCELLED},
        W.RUNNING: {W.BAKING, W.HALTED, W.CANCELLED},
        W.BAKING: {W.SUCCEEDED, W.HALTED, W.CANCELLED},
    },
    DeploymentState: {
        D.PENDING: {D.RUNNING, D.SKIPPED, D.CANCELLED, D.FAILED},
        D.RUNNING: {D.SUCCEEDED, D.FAILED, D.BLOCKED, D.CONFLICT, D.CANCELLED},
        D.SUCCEEDED: {D.FAILED},
    },
}

ROLLOUT_ACTIVE = (R.PENDING, R.RUNNING, R.PAUSED, R.ABORTING)
ROLLOUT_FINISHED = (R.SUCCEEDED, R.HALTED, R.ABORTED)
WAVE_FINISHED = (W.SUCCEEDED, W.HALTED, W.CANCELLED)
DEPLOYMENT_FINISHED = (D.SUCCEEDED, D.FAILED, D.BLOCKED, D.CONFLICT, D.SKIPPED, D.CANCELLED)
DEPLOYMENT_FAILURES = (D.FAILED, D.BLOCKED, D.CONFLICT)


class IllegalTransition(Exception):
    """A transition the state machine does not have: a bug, never a race."""


def _check(model: type[models.Model], current: str, to: str, what: str) -> None:
    if to not in TRANSITIONS[model.STATES].get(current, set()):
        raise IllegalTransition(f"{what}: {current} -> {to} is not allowed")


def _row_fields(model: type[models.Model], to: str, fields: dict[str, Any]) -> dict[str, Any]:
    fields = {"state": to, **fields}
    if "updated_at" in {f.name for f in model._meta.fields}:
        fields["updated_at"] = timezone.now()
    return fields


def transition(obj: models.Model, to: str, **fields: Any) -> bool:
    """Move ``obj`` from its current state to ``to`` if nobody else moved it first.

    Returns False (and leaves ``obj`` untouched) when the row is no longer in the
    state ``obj`` holds: another worker won. Raises IllegalTransition when the move
    is not in the machine.
    """
    model, current = type(obj), obj.state
    _check(model, current, to, f"{model.__name__} #{obj.pk}")
    fields = _row_fields(model, to, fields)
    rows = model._default_manager.filter(pk=obj.pk, state=current).update(**fields)
    if rows:
        for name, value in fields.items():
            setattr(obj, name, value)
    return bool(rows)


def transition_all(queryset: QuerySet, current: str, to: str, **fields: Any) -> int:
    """Move every row of ``queryset`` that is still in ``current`` to ``to``, as one
    compare-and-set ``UPDATE``: rows another worker moved first are left as they are.
    Returns how many rows moved; raises IllegalTransition as :func:`transition` does."""
    model = queryset.model
    _check(model, current, to, f"{model.__name__} (bulk)")
    return queryset.filter(state=current).update(**_row_fields(model, to, fields))
