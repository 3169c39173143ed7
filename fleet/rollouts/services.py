"""Rollout operations shared by the API, the admin actions and the CLI.

Each one validates, records (audited) and then enqueues on commit: the database
changes first, and a task that finds nothing to do exits quietly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from fleet.accounts import rules
from fleet.accounts.rules import Act
from fleet.audit import services as audit
from fleet.core.labels import LabelError, parse_selector
from fleet.inventory.models import Cluster, Release
from fleet.rollouts import orchestrator
from fleet.rollouts.errors import RolloutError
from fleet.rollouts.models import ClusterDeployment, Rollout, StrategyTemplate, Wave
from fleet.rollouts.states import (
    DEPLOYMENT_FINISHED,
    ROLLOUT_ACTIVE,
    transition,
    transition_all,
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
from fleet.rollouts.strategy import PlannedWave, parse_waves, plan_waves


@dataclass
class RolloutRequest:
    release: Release
    selector: str = ""
    waves: list[dict[str, Any]] | None = None
    template: str = ""
    health_timeout_seconds: int = 300
    clusters: list[str] | None = None  # explicit targets instead of the selector (rollbacks)


def _enqueue_advance(rollout: Rollout) -> None:
    scheduler = orchestrator.scheduler()
    transaction.on_commit(lambda: scheduler.advance(rollout.pk))


def resolve_waves(request: RolloutRequest) -> tuple[str, list[dict[str, Any]]]:
    if request.template:
        template = StrategyTemplate.objects.filter(name=request.template).first()
        if template is None:
            raise RolloutError(f"no strategy template {request.template!r}", code="invalid", field="template")
        return template.name, template.waves
    if request.waves is None:
        raise RolloutError("give waves or a strategy template", code="invalid", field="waves")
    return "", request.waves


def targets(selector: str) -> list[Cluster]:
    try:
        query = parse_selector(selector).to_q("labels")
    except LabelError as exc:
        raise RolloutError(str(exc), code="invalid", field="selector") from None
    return list(Cluster.objects.filter(query).select_related("channel").order_by("name"))


def plan(request: RolloutRequest) -> tuple[str, list[PlannedWave]]:
    """Validate a request and assign clusters to waves; writes nothing."""
    name, raw = resolve_waves(request)
    specs = parse_waves(raw)
    chosen = (list(Cluster.objects.filter(name__in=request.clusters).select_related("channel"))
              if request.clusters is not None else targets(request.selector))
    return name, plan_waves(chosen, specs)


def busy_clusters(clusters: Iterable[Cluster]) -> dict[str, int]:
    """Clusters already in an unfinished rollout, with that rollout's id."""
    rows = (ClusterDeployment.objects.filter(cluster__in=list(clusters), rollout__state__in=ROLLOUT_ACTIVE)
            .exclude(state__in=DEPLOYMENT_FINISHED).values_list("cluster__name", "rollout_id"))
    return dict(rows)


def require_deploy_rights(clusters: Iterable[Cluster], author) -> None:
    """Rollouts to protected clusters are admins' (``accounts.rules``), whichever way the
    rollout is created (API, CLI, rollback) and again when it starts: if any of
    ``clusters`` is protected, its author and whoever is acting must be admins."""
    protected = ", ".join(sorted({c.name for c in clusters if c.protected}))
    if protected:
        rules.require(Act.DEPLOY_PROTECTED, author, subject=protected)
        rules.require(Act.DEPLOY_PROTECTED, subject=protected)


@transaction.atomic
def create_rollout(request: RolloutRequest, author, *, kind: str = Rollout.Kind.DEPLOY,
                   rollback_of: Rollout | None = None,
                   target_tags: dict[int, str] | None = None) -> Rollout:
    name, planned = plan(request)
    require_deploy_rights((c for wave in planned for c in wave.clusters), author)
    busy = busy_clusters(c for wave in planned for c in wave.clusters)
    if busy:
        listed = ", ".join(f"{cluster} (rollout #{rid})" for cluster, rid in sorted(busy.items()))
        raise RolloutError(f"clusters already in an unfinished rollout: {listed}", field="selector")
    rollout = audit.create(Rollout(
        release=request.release, kind=kind, rollback_of=rollback_of, selector=request.selector,
        strategy_name=name, strategy=[w.spec.as_dict() for w in planned],
        health_timeout_seconds=request.health_timeout_seconds, author=author))
    for index, planned_wave in enumerate(planned):
        spec = planned_wave.spec
        wave = Wave.objects.create(
            rollout=rollout, index=index, name=spec.name, selector=spec.selector,
            max_parallel=spec.max_parallel, max_failures=spec.max_failures,
            bake_seconds=spec.bake_seconds, require_approval=spec.require_approval)
        ClusterDeployment.objects.bulk_create(
            ClusterDeployment(rollout=rollout, wave=wave, cluster=cluster,
                              upstream_sha=request.release.upstream_sha,
                              target_tag=(target_tags or {}).get(cluster.pk, ""))
            for cluster in planned_wave.clusters)
    return rollout


def _act(rollout: Rollout, to: str, action: str, **fields: Any) -> Rollout:
    if not transition(rollout, to, **fields):
        raise RolloutError(f"rollout #{rollout.pk} changed meanwhile; it is now {rollout.state}")
    audit.record(f"rollout.{action}", target=rollout, metadata={"state": rollout.state})
    return rollout


def _require(rollout: Rollout, states: tuple[str, ...], verb: str) -> None:
    if rollout.state not in states:
        raise RolloutError(f"cannot {verb} rollout #{rollout.pk}: it is {rollout.state}")


@transaction.atomic
def start(rollout: Rollout) -> Rollout:
    """Start a pending rollout; the protected rule is checked again, against its author and
    whoever starts it, on the clusters as they are now (one may have become protected)."""
    _require(rollout, (R.PENDING,), "start")
    clusters = Cluster.objects.filter(deployments__rollout=rollout, deployments__state=D.PENDING)
    require_deploy_rights(clusters, rollout.author)
    _act(rollout, R.RUNNING, "start", started_at=timezone.now())
    _enqueue_advance(rollout)
    return rollout


@transaction.atomic
def pause(rollout: Rollout) -> Rollout:
    _require(rollout, (R.RUNNING,), "pause")
    return _act(rollout, R.PAUSED, "pause")


@transaction.atomic
def resume(rollout: Rollout) -> Rollout:
    _require(rollout, (R.PAUSED,), "resume")
    _act(rollout, R.RUNNING, "resume")
    _enqueue_advance(rollout)
    return rollout


@transaction.atomic
def abort(rollout: Rollout, reason: str = "") -> Rollout:
    _require(rollout, (R.PENDING, R.RUNNING, R.PAUSED), "abort")
    reason = reason or "aborted by request"
    if rollout.state == R.PENDING:
        _act(rollout, R.ABORTED, "abort", reason=reason, finished_at=timezone.now())
        transition_all(rollout.deployments.all(), D.PENDING, D.CANCELLED, error=reason)
        transition_all(rollout.waves.all(), W.PENDING, W.CANCELLED, reason=reason)
        return rollout
    _act(rollout, R.ABORTING, "abort", reason=reason)
    _enqueue_advance(rollout)
    return rollout


@transaction.atomic
def approve(rollout: Rollout, user) -> Wave:
    """Approve the wave waiting for it: an admin's act, never the author's (``accounts.rules``)."""
    _require(rollout, (R.RUNNING, R.PAUSED, R.PENDING), "approve")
    rules.require_not_author(user, rollout.author_id, "a rollout")
    rules.require(Act.APPROVE, user, subject=f"rollout #{rollout.pk}")
    wave = rollout.waves.filter(require_approval=True, approved_by__isnull=True).exclude(
        state__in=(W.SUCCEEDED, W.HALTED, W.CANCELLED)).order_by("index").first()
    if wave is None:
        raise RolloutError(f"rollout #{rollout.pk} has no wave waiting for approval")
    Wave.objects.filter(pk=wave.pk).update(approved_by=user, approved_at=timezone.now())
    if wave.state == W.AWAITING_APPROVAL:
        transition(wave, W.RUNNING)
    audit.record("rollout.approve", target=rollout, metadata={"wave": wave.index, "wave_name": wave.name})
    _enqueue_advance(rollout)
    return wave


@transaction.atomic
def rollback(rollout: Rollout, author, *, scope: str = "failed") -> Rollout:
    """Re-deploy each affected cluster's previous deployment tag, as a rollout of its own.

    ``scope`` is ``failed`` (clusters that failed) or ``all`` (every cluster the
    rollout deployed or tried to). Clusters with no earlier deployment are left out.
    """
    if scope not in ("failed", "all"):
        raise RolloutError("scope must be failed or all", code="invalid", field="scope")
    if rollout.state in ROLLOUT_ACTIVE and rollout.state != R.PAUSED:
        raise RolloutError(f"rollout #{rollout.pk} is {rollout.state}: pause or abort it before rolling back")
    states = (D.FAILED, D.BLOCKED, D.CONFLICT) if scope == "failed" else (
        D.SUCCEEDED, D.FAILED, D.BLOCKED, D.CONFLICT)
    affected = list(rollout.deployments.filter(state__in=states).exclude(previous_tag="")
                    .select_related("cluster"))
    if not affected:
        raise RolloutError(f"rollout #{rollout.pk} has no {scope} cluster with a previous deployment to return to",
                           code="invalid")
    names = [d.cluster.name for d in affected]
    waves = [{"name": "rollback", "clusters": names,
              "max_parallel": max(w["max_parallel"] for w in rollout.strategy),
              "max_failures": str(len(names))}]
    request = RolloutRequest(release=rollout.release, waves=waves, clusters=names,
                             health_timeout_seconds=rollout.health_timeout_seconds)
    return create_rollout(request, author, kind=Rollout.Kind.ROLLBACK, rollback_of=rollout,
                          target_tags={d.cluster_id: d.previous_tag for d in affected})
