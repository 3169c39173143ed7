"""Self-heal: a deployment of the cluster's deployed tag, of its drifted objects only.

A heal is a rollout of kind ``heal`` through the rollout services and the pipeline,
so it has every guarantee a deployment has: it is refused while another rollout holds
the cluster (and the database keeps one running deployment per cluster), a paused
cluster is skipped, the policy gate judges it, and it is audited, here with the diff
it undoes. The pipeline applies only ``heal_refs`` with forced ownership (taking the
fields back from whoever changed them) and prunes only when an object is pending
prune. Rollouts and rollbacks are never blocked by a heal: a heal is refused while
they run, never the other way round (a heal's own rollout is one like any other).

Retries: a heal that failed is tried again after 2 s, 6 s, 18 s… (×3, at most 5 min).
Contest: when the drift comes back ``FLEET_DRIFT_CONTEST_COUNT`` times within
``FLEET_DRIFT_CONTEST_MINUTES`` after successful heals, the cluster is ``contested``,
naming the competing field manager, and is not healed again until someone
acknowledges it.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from fleet.accounts import rules as access
from fleet.accounts.roles import Role
from fleet.audit import services as audit
from fleet.core.errors import FleetError
from fleet.drift import modes
from fleet.drift.access import require
from fleet.drift.choices import DriftState as S
from fleet.drift.choices import Mode
from fleet.drift.choices import ResourceState as RS
from fleet.drift.errors import DriftError
from fleet.drift.models import ClusterDrift, HealAttempt
from fleet.inventory.models import Cluster
from fleet.rollouts import services as rollouts
from fleet.rollouts.deployed import deployed_on
from fleet.rollouts.models import Rollout
from fleet.rollouts.states import ROLLOUT_FINISHED
from fleet.rollouts.states import DeploymentState as D

logger = logging.getLogger(__name__)
SYSTEM_USER = "fleet-drift"  # the author of automatic heals
BACKOFF_FIRST, BACKOFF_FACTOR, BACKOFF_MAX = 2.0, 3.0, 300.0


def backoff(failures: int) -> float:
    """Seconds before retrying after ``failures`` failed heals in a row."""
    return min(BACKOFF_FIRST * BACKOFF_FACTOR ** max(failures - 1, 0), BACKOFF_MAX)


def _system_user():
    user, created = get_user_model().objects.get_or_create(username=SYSTEM_USER, defaults={"is_active": False})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def _diff_of(drift: ClusterDrift) -> list[dict]:
    """What the heal undoes, for its audit event: Secret values are already keyed hashes."""
    return [{"object": str(r.ref), "state": r.state, "manager": r.manager,
             "changes": r.changes[:20]} for r in drift.resources.filter(resolved_at=None)[:100]]


def request_heal(cluster: Cluster, *, user=None, automatic: bool = False) -> HealAttempt:
    """Heal ``cluster`` now: create and start its heal rollout; raises :class:`DriftError`
    (``refused``) when it may not run, saying why. ``user``: who asks (None: the machine)."""
    require(Role.OPERATOR, "healing a cluster", user)
    with transaction.atomic():
        drift = ClusterDrift.objects.select_for_update().filter(cluster=cluster).first()
        if drift is None or drift.state != S.DRIFTED:
            raise DriftError(f"cluster {cluster.name} is {drift.state if drift else 'not scanned yet'}: "
                             "nothing to heal", code="refused")
        if cluster.paused:
            raise DriftError(f"cluster {cluster.name} is paused: nothing is applied to it", code="refused")
        if automatic and drift.contested_at:
            raise DriftError(f"cluster {cluster.name} is contested by {drift.contested_by}: "
                             "acknowledge it before it is healed again", code="refused")
        current = deployed_on([cluster.pk]).get(cluster.pk)
        if current is None or current.release is None:
            raise DriftError(f"cluster {cluster.name} has no deployment to heal from", code="refused")
        open_rows = list(drift.resources.filter(resolved_at=None))
        refs = [r.ref.as_dict() for r in open_rows]
        # An object pending prune is healed by pruning it: then the whole set is applied.
        heal_refs = [] if any(r.state == RS.PENDING_PRUNE for r in open_rows) else refs
        author = user if user is not None else (access.acting_user() or _system_user())
        request = rollouts.RolloutRequest(
            release=current.release, clusters=[cluster.name],
            waves=[{"name": "heal", "clusters": [cluster.name], "max_parallel": 1, "max_failures": "1"}])
        try:
            rollout = rollouts.create_rollout(request, author, kind=Rollout.Kind.HEAL,
                                              target_tags={cluster.pk: current.tag})
        except FleetError as exc:  # busy (another rollout holds it), a protected cluster…
            raise DriftError(f"cluster {cluster.name} cannot be healed now: {exc.message}", code="refused") from None
        rollout.deployments.update(heal_refs=heal_refs)
        attempt = HealAttempt.objects.create(drift=drift, rollout=rollout, requested_at=timezone.now(),
                                             requested_by=user, automatic=automatic, refs=refs)
        ClusterDrift.objects.filter(pk=drift.pk).update(heal_rollout=rollout)
        audit.record("drift.heal", target=drift, metadata={
            "rollout": rollout.pk, "tag": current.tag, "automatic": automatic, "diff": _diff_of(drift)})
        rollouts.start(rollout)
    return attempt


def acknowledge(cluster: Cluster, *, user=None) -> ClusterDrift:
    """Someone decided: a contested cluster may be healed again, a frozen one deployed."""
    require(Role.OPERATOR, "acknowledging drift", user)
    drift = ClusterDrift.objects.filter(cluster=cluster).first()
    if drift is None:
        raise DriftError(f"cluster {cluster.name} has not been scanned", code="not-found")
    who = (user or access.acting_user())
    fields = {"acknowledged_at": timezone.now(), "acknowledged_by": who.get_username() if who else "system",
              "contested_at": None, "contested_by": "", "heal_failures": 0, "heal_retry_at": None}
    with transaction.atomic():
        audit.update(drift, fields)
    drift.refresh_from_db()
    return drift


def _settle_heal(drift: ClusterDrift) -> Rollout | None:
    """Account for the last heal once its rollout finished; the rollout while it runs."""
    rollout = drift.heal_rollout
    if rollout is None:
        return None
    if rollout.state not in ROLLOUT_FINISHED:
        return rollout
    deployment = rollout.deployments.first()
    now = timezone.now()
    if deployment is not None and deployment.state == D.SUCCEEDED:
        fields = {"heal_rollout": None, "heal_failures": 0, "heal_retry_at": None}
        if drift.state == S.IN_SYNC:
            audit.record("drift.healed", target=drift, metadata={"rollout": rollout.pk})
    else:
        failures = drift.heal_failures + 1
        fields = {"heal_rollout": None, "heal_failures": failures,
                  "heal_retry_at": now + timedelta(seconds=backoff(failures))}
        audit.record("drift.heal_failed", target=drift, metadata={
            "rollout": rollout.pk, "failures": failures, "retry_in_seconds": backoff(failures),
            "error": (deployment.error if deployment else rollout.reason)[:500]})
    ClusterDrift.objects.filter(pk=drift.pk).update(**fields)
    for name, value in fields.items():
        setattr(drift, name, value)
    return None


def _contest_if_recurring(drift: ClusterDrift) -> bool:
    """Drift back N times in M minutes after successful heals: contested, naming the manager."""
    since = timezone.now() - timedelta(minutes=settings.FLEET_DRIFT_CONTEST_MINUTES)
    healed = HealAttempt.objects.filter(drift=drift, requested_at__gte=since,
                                        rollout__deployments__state=D.SUCCEEDED).count()
    if healed < settings.FLEET_DRIFT_CONTEST_COUNT:
        return False
    managers = Counter(change["manager"] for r in drift.resources.filter(resolved_at=None)
                       for change in r.changes if change.get("manager"))
    competitor = managers.most_common(1)[0][0] if managers else "an unknown manager"
    now = timezone.now()
    ClusterDrift.objects.filter(pk=drift.pk).update(contested_at=now, contested_by=competitor[:255])
    drift.contested_at, drift.contested_by = now, competitor
    audit.record("drift.contested", target=drift, metadata={
        "manager": competitor, "heals": healed, "minutes": settings.FLEET_DRIFT_CONTEST_MINUTES})
    return True


def after_scan(drift: ClusterDrift) -> None:
    """What a scan's outcome asks of self-heal: settle the last heal, then heal again if
    the cluster is drifted, set to heal, not contested, not backing off, in its window.
    ``drift`` is the row as the scan just recorded it."""
    if _settle_heal(drift) is not None:
        return  # a heal (or another rollout) is running: never heal under it
    if drift.state != S.DRIFTED or drift.contested_at:
        return
    mode = modes.effective(drift, drift.cluster.labels)
    now = timezone.now()
    if mode.mode != Mode.HEAL or not mode.may_heal_at(now):
        return
    if drift.heal_retry_at and drift.heal_retry_at > now:
        return
    if _contest_if_recurring(drift):
        return
    try:
        request_heal(drift.cluster, automatic=True)
    except DriftError as exc:
        logger.info("drift: not healing %s: %s", drift.cluster.name, exc)
