"""Thin Celery entry points for rollouts; the logic is in orchestrator and pipeline."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from fleet.rollouts import orchestrator, pipeline, steps


@shared_task(name="rollouts.advance", acks_late=True)
def advance_rollout(rollout_id: int) -> None:
    orchestrator.advance(rollout_id, SCHEDULER)


@shared_task(name="rollouts.run_deployment", acks_late=True)
def run_deployment(deployment_id: int) -> None:
    rollout_id = pipeline.run(deployment_id)
    if rollout_id is not None:
        advance_rollout.delay(rollout_id)


@shared_task(name="rollouts.sweep")
def sweep() -> dict[str, int]:
    """Resume what a dead worker left: re-run stuck deployments, re-advance rollouts."""
    stale = timedelta(seconds=settings.FLEET_ROLLOUT_HEARTBEAT_TIMEOUT)
    stuck = orchestrator.stuck_deployments(stale)
    for pk in stuck:
        run_deployment.delay(pk)
    active = orchestrator.active_rollouts()
    for pk in active:
        advance_rollout.delay(pk)
    return {"deployments": len(stuck), "rollouts": len(active)}


# What the orchestrator and the services enqueue through (installed by RolloutsConfig.ready).
SCHEDULER = orchestrator.Scheduler(
    run_deployment=lambda pk: run_deployment.delay(pk),
    advance=lambda pk: advance_rollout.delay(pk),
    advance_later=lambda pk, delay: advance_rollout.apply_async((pk,), countdown=delay),
    recheck_health=steps.recheck_health,
)
