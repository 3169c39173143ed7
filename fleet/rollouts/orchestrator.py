"""Advancing a rollout: the one function that moves waves and starts clusters.

``advance`` is called after every event that may let a rollout move (start,
resume, approval, a cluster finishing, a bake timer, the sweeper). It takes the
rollout row's lock, so advancers run one at a time per rollout, and it is
idempotent: called twice, the second call finds nothing to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from fleet.accounts import rules
from fleet.accounts.rules import Act
from fleet.audit import services as audit
from fleet.kube import services as kube
from fleet.kube.errors import KubeError, Timeout, Unreachable
from fleet.rollouts.models import ClusterDeployment, Rollout, Wave
from fleet.rollouts.states import (
    DEPLOYMENT_FAILURES,
    DEPLOYMENT_FINISHED,
    WAVE_FINISHED,
    transition,
)
from fleet.rollouts.states import (
    DeploymentState as D,
)
from fleet.rollouts.states import (
    RolloutState as R,
)
from fleet.rollouts.states import (
    WaveState as W,
)

logger = logging.getLogger(__name__)
BAKE_RECHECK_SECONDS = 5
BAKE_RECHECK_PARALLEL = 16  # clusters rechecked at once (each reads its objects concurrently too)
HIDDEN = (Unreachable, Timeout)  # a recheck's errors that say nothing of the objects, only of the network


@dataclass(frozen=True)
class Scheduler:
    """How rollouts ask for work: injected, so neither ``advance`` nor the services know
    how it is enqueued. The rollouts app installs Celery's (``tasks.SCHEDULER``) at
    start-up; tests install a fake that records what was asked."""

    run_deployment: Callable[[int], None]  # run (or resume) a claimed deployment's pipeline
    advance: Callable[[int], None]  # advance a rollout soon: a request just let it move
    advance_later: Callable[[int, float], None]  # advance a rollout after a delay (seconds)
    # None: healthy, else the reason; raises a HIDDEN error when the network hid the cluster
    recheck_health: Callable[[ClusterDeployment], str | None]


_installed: Scheduler | None = None


def install(scheduler: Scheduler) -> Scheduler | None:
    """Make ``scheduler`` the one the services enqueue through; returns the one it replaces."""
    global _installed
    previous, _installed = _installed, scheduler
    return previous


def scheduler() -> Scheduler:
    """The installed scheduler; the rollouts app installs one in every process at start-up."""
    if _installed is None:
        raise RuntimeError("no rollout scheduler is installed (RolloutsConfig.ready installs Celery's)")
    return _installed


def _audit_transition(obj, action: str, **metadata) -> None:
    audit.record(action, target=obj, cluster=getattr(obj, "audit_cluster_name", ""),
                 metadata={"state": obj.state, **metadata})


def _cancel_remaining(rollout: Rollout, reason: str) -> None:
    for deployment in rollout.deployments.filter(state=D.PENDING).select_related("cluster"):
        if transition(deployment, D.CANCELLED, error=reason, finished_at=timezone.now()):
            _audit_transition(deployment, "deployment.cancelled", reason=reason)
    for wave in rollout.waves.exclude(state__in=WAVE_FINISHED).exclude(state=W.RUNNING):
        transition(wave, W.CANCELLED, reason=reason, finished_at=timezone.now())


def _finish(rollout: Rollout, state: str, reason: str = "") -> None:
    if transition(rollout, state, reason=reason, finished_at=timezone.now()):
        _audit_transition(rollout, f"rollout.{state}", reason=reason)


def _counts(wave: Wave) -> dict[str, int]:
    rows = wave.deployments.values("state").annotate(n=Count("id"))
    return {row["state"]: row["n"] for row in rows}


# Reasons to skip a cluster besides paused and pinned, from packages above the rollouts
# (drift's freeze: a drifted cluster in freeze mode is skipped by deploy rollouts until
# someone decides). Each returns the reason, or "" to let the deployment start.
SKIP_CHECKS: list[Callable[[ClusterDeployment], str]] = []


def _skip_reason(deployment: ClusterDeployment) -> str:
    cluster = deployment.cluster
    # A rollback may move a pinned cluster back; nothing touches a paused one.
    pinned = cluster.pinned and deployment.rollout.kind == Rollout.Kind.DEPLOY
    if cluster.paused:
        return "cluster is paused"
    if pinned:
        return "cluster is pinned"
    return next((reason for check in SKIP_CHECKS if (reason := check(deployment))), "")


def _claim(deployment: ClusterDeployment, scheduler: Scheduler) -> bool:
    """Start one cluster, or skip it with the reason; False if it must wait."""
    cluster = deployment.cluster
    skip = _skip_reason(deployment)
    if skip:
        if transition(deployment, D.SKIPPED, error=skip, finished_at=timezone.now()):
            _audit_transition(deployment, "deployment.skipped", reason=skip)
        return True
    # The protected rule once more, as the cluster is now: it may have become protected
    # since the rollout was planned, and its author is the one deploying.
    author = deployment.rollout.author
    if cluster.protected and not rules.allows(Act.DEPLOY_PROTECTED, author):
        refusal = (f"cluster {cluster.name} is protected and the rollout's author, {author.get_username()}, "
                   "is not an admin")
        if transition(deployment, D.FAILED, error=refusal, finished_at=timezone.now()):
            _audit_transition(deployment, "deployment.refused", reason=refusal)
        return True
    try:
        with transaction.atomic():
            claimed = transition(deployment, D.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now())
    except IntegrityError:
        return False  # another rollout is running on this cluster right now
    if claimed:
        _audit_transition(deployment, "deployment.started")
        transaction.on_commit(lambda: scheduler.run_deployment(deployment.pk))
    return claimed


def _halt_if_over_budget(rollout: Rollout, wave: Wave, counts: dict[str, int], why: str = "") -> bool:
    """Halt the wave and the rollout when more clusters failed than the wave allows."""
    size = sum(counts.values())
    failures = sum(counts.get(state, 0) for state in DEPLOYMENT_FAILURES)
    if failures <= wave.failure_budget(size):
        return False
    reason = f"{wave.name}: {failures} of {size} clusters failed{why}; the budget is {wave.max_failures}"
    if transition(wave, W.HALTED, reason=reason, finished_at=timezone.now()):
        _audit_transition(wave, "wave.halted", reason=reason)
    _cancel_remaining(rollout, f"rollout halted: {reason}")
    _finish(rollout, R.HALTED, reason)
    return True


def _run_wave(rollout: Rollout, wave: Wave, scheduler: Scheduler) -> bool:
    """Start clusters up to max_parallel; True when the wave moved on (loop again)."""
    counts = _counts(wave)
    if _halt_if_over_budget(rollout, wave, counts):
        return False
    if sum(counts.get(state, 0) for state in DEPLOYMENT_FINISHED) == sum(counts.values()):
        bake_until = timezone.now() + timedelta(seconds=wave.bake_seconds)
        if transition(wave, W.BAKING, bake_until=bake_until):
            _audit_transition(wave, "wave.baking", bake_seconds=wave.bake_seconds)
        return True
    free = wave.max_parallel - counts.get(D.RUNNING, 0)
    pending = wave.deployments.filter(state=D.PENDING).select_related("cluster", "rollout__author")
    for deployment in pending[:max(free, 0)]:
        _claim(deployment, scheduler)
    return False


def _recheck_baking(rollout_id: int, scheduler: Scheduler) -> dict[int, str]:
    """The problems of a baking wave's clusters, by deployment, read before ``advance``
    takes any lock. A recheck reads every object of every cluster of the wave: under
    the rollout's row lock it held up every other advancer, and once the transaction
    had written an audit event, every audited write in Fleet, for as long."""
    wave = Wave.objects.filter(rollout_id=rollout_id, rollout__state=R.RUNNING, state=W.BAKING).first()
    if wave is None:
        return {}
    deployments = list(wave.deployments.filter(state=D.SUCCEEDED).select_related("cluster"))
    checked = kube.for_each(deployments, scheduler.recheck_health, max_parallel=BAKE_RECHECK_PARALLEL)
    return {deployment.pk: problem if isinstance(problem, HIDDEN) else str(problem)
            for deployment, problem in checked if problem}


def _bake(rollout: Rollout, wave: Wave, scheduler: Scheduler, regressions: dict[int, str | KubeError]) -> bool:
    """A regression seen by the recheck counts as a failure; then wait out the bake.

    A cluster the network hid from the recheck (unreachable, no answer in time) is not
    a regression yet: it is rechecked while the bake lasts, its outage (and recovery)
    kept on its record, ``steps["bake"]``. Still hidden when the bake ends, it fails.
    """
    remaining = (wave.bake_until - timezone.now()).total_seconds() if wave.bake_until else 0
    concerned = Q(pk__in=list(regressions)) | Q(steps__bake__unreachable=True)  # the others: nothing to do
    for deployment in wave.deployments.filter(concerned, state=D.SUCCEEDED).select_related("cluster"):
        problem = regressions.get(deployment.pk)
        if isinstance(problem, HIDDEN):
            _note_outage(deployment, str(problem))
            if remaining > 0:
                continue
            problem = f"unreachable when the bake ended: {problem}"
        elif (deployment.steps.get("bake") or {}).get("unreachable"):
            _note_outage(deployment, "")
        if problem and transition(deployment, D.FAILED, error=f"regressed while baking: {problem}"):
            _audit_transition(deployment, "deployment.regressed", reason=problem)
    if _halt_if_over_budget(rollout, wave, _counts(wave), " (regressions while baking)"):
        return False
    if remaining > 0:
        delay = min(remaining, BAKE_RECHECK_SECONDS)
        transaction.on_commit(lambda: scheduler.advance_later(rollout.pk, delay))
        return False
    if transition(wave, W.SUCCEEDED, finished_at=timezone.now()):
        _audit_transition(wave, "wave.succeeded")
    return True


def _note_outage(deployment: ClusterDeployment, error: str) -> None:
    """Keep on the record each outage a bake saw: since when, why, and when it ended
    (``error`` empty: the cluster answered again)."""
    bake = dict(deployment.steps.get("bake") or {})
    outages = list(bake.get("outages", []))
    now = timezone.now().isoformat()
    if error and not bake.get("unreachable"):
        outages.append({"since": now, "error": error[:500]})
    elif not error and outages:
        outages[-1] = {**outages[-1], "recovered_at": now}
    deployment.steps = {**deployment.steps, "bake": {"unreachable": bool(error), "outages": outages[-20:]}}
    ClusterDeployment.objects.filter(pk=deployment.pk).update(steps=deployment.steps)


def _step(rollout: Rollout, scheduler: Scheduler, regressions: dict[int, str | KubeError]) -> bool:
    """One move; True if another may follow at once."""
    if rollout.state == R.ABORTING:
        _cancel_remaining(rollout, "rollout aborted")
        if not rollout.deployments.filter(state=D.RUNNING).exists():
            for wave in rollout.waves.exclude(state__in=WAVE_FINISHED):
                transition(wave, W.CANCELLED, reason="rollout aborted", finished_at=timezone.now())
            _finish(rollout, R.ABORTED, rollout.reason or "aborted")
        return False
    if rollout.state != R.RUNNING:
        return False
    wave = rollout.waves.exclude(state__in=WAVE_FINISHED).order_by("index").first()
    if wave is None:
        _finish(rollout, R.SUCCEEDED)
        return False
    if wave.state == W.PENDING:
        target = W.AWAITING_APPROVAL if wave.require_approval and not wave.approved_by_id else W.RUNNING
        if transition(wave, target, started_at=timezone.now()):
            _audit_transition(wave, f"wave.{target}")
        return target == W.RUNNING
    if wave.state == W.RUNNING:
        return _run_wave(rollout, wave, scheduler)
    if wave.state == W.BAKING:
        return _bake(rollout, wave, scheduler, regressions)
    return False  # awaiting approval


def advance(rollout_id: int, scheduler: Scheduler) -> None:
    regressions = _recheck_baking(rollout_id, scheduler)
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().filter(pk=rollout_id).first()
        if rollout is None:
            return
        for _ in range(100):  # bounded: each move changes a state, there are few states
            if not _step(rollout, scheduler, regressions):
                break
            rollout.refresh_from_db()


def stuck_deployments(older_than: timedelta) -> list[int]:
    """Running deployments whose worker stopped sending heartbeats (it died)."""
    cutoff = timezone.now() - older_than
    return list(ClusterDeployment.objects.filter(state=D.RUNNING)
                .filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True))
                .values_list("pk", flat=True))


def active_rollouts() -> list[int]:
    return list(Rollout.objects.filter(state__in=(R.RUNNING, R.ABORTING)).values_list("pk", flat=True))
