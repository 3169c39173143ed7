"""One cluster's deployment: the pipeline of DESIGN.md, step by step, resumable.

    prepare -> render -> gate -> dry_run -> apply -> verify -> tag -> record

Each finished step's outcome is written to ``ClusterDeployment.steps`` before the
next starts, so a worker that dies mid-pipeline is replaced by one that skips
what is done; each step is itself idempotent (a rebase onto the same upstream is a
no-op, server-side apply of the same objects changes nothing, an existing tag for
the same commit is reused). Abort is cooperative: checked before every step, and
honoured only before ``apply``: once objects reach the cluster the pipeline
finishes so the cluster is left verified and tagged, never half-done.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone

from fleet.audit import services as audit
from fleet.core.errors import FleetError
from fleet.gitops import services as gitops
from fleet.rollouts import steps
from fleet.rollouts.models import ClusterDeployment
from fleet.rollouts.states import DeploymentState as D
from fleet.rollouts.states import RolloutState as R
from fleet.rollouts.states import transition
from fleet.rollouts.steps import Context, StepFailed

logger = logging.getLogger(__name__)

CANCELLABLE_BEFORE = "apply"
PREPARE = steps.PIPELINE[0][0]  # taking the workspace is part of it: its failures are prepare's


@dataclass(frozen=True)
class Failure:
    """How a step failed: the state its deployment ends in, the message, the recorded detail."""

    state: str
    message: str
    detail: dict[str, Any]


# Called with each deployment that finished (any end state), after its row says so:
# packages above the pipeline react to it (drift scans a cluster right after it was
# deployed). Installed at start-up; a failing one is logged, never the deployment's failure.
FINISHED_HOOKS: list[Callable[[ClusterDeployment], None]] = []


def _finish(deployment: ClusterDeployment, state: str, error: str = "") -> None:
    if transition(deployment, state, error=error[:5000], finished_at=timezone.now(), step=""):
        audit.record(f"deployment.{state}", target=deployment, cluster=deployment.cluster.name,
                     metadata={"rollout": deployment.rollout_id, "error": error[:500]})
        for hook in FINISHED_HOOKS:
            try:
                hook(deployment)
            except Exception:
                logger.exception("deployment %s: a finished hook failed", deployment.pk)


def run(deployment_id: int) -> int | None:
    """Run (or resume) a deployment; returns its rollout id for the caller to advance."""
    deployment = (ClusterDeployment.objects.select_related("cluster__channel", "rollout__release__channel", "wave")
                  .filter(pk=deployment_id).first())
    if deployment is None or deployment.state != D.RUNNING:
        return None
    if _out_of_attempts(deployment):
        return deployment.rollout_id
    with _heartbeat(deployment.pk), ExitStack() as held:
        started = time.perf_counter()
        try:
            # The workspace is held for the whole run, so no other job moves it between
            # the upgrade and the tag. Taking it clones on first use: that is prepare's.
            workspace = held.enter_context(gitops.session(deployment.cluster))
        except Exception as exc:
            return _fail(deployment, PREPARE, started, exc)
        return _run_steps(Context(deployment, workspace), session_started=started)


def _out_of_attempts(deployment: ClusterDeployment) -> bool:
    """Count this run; fail the deployment if workers died running it too often. A
    deployment that kills its worker (out of memory on a huge render, say) would
    otherwise be resumed by the sweeper, and kill the next one, forever."""
    ClusterDeployment.objects.filter(pk=deployment.pk).update(attempts=F("attempts") + 1)
    deployment.refresh_from_db(fields=["attempts"])
    stopped = deployment.attempts - 1  # runs before this one that never finished
    if stopped < settings.FLEET_ROLLOUT_MAX_ATTEMPTS:
        return False
    where = f"during {deployment.step}" if deployment.step else "before its first step"
    _finish(deployment, D.FAILED, f"the worker running it stopped {stopped} times ({where}); "
                                  "not resumed again")
    return True


@contextmanager
def _heartbeat(deployment_id: int) -> Iterator[None]:
    """Beat while the pipeline runs, even inside a long step (a health wait), so the
    sweeper only ever resumes deployments whose worker really died."""
    stop = threading.Event()
    interval = max(1.0, settings.FLEET_ROLLOUT_HEARTBEAT_TIMEOUT / 4)

    def beat() -> None:
        try:
            while not stop.wait(interval):
                ClusterDeployment.objects.filter(pk=deployment_id).update(heartbeat_at=timezone.now())
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{deployment_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _run_steps(context: Context, session_started: float) -> int:
    """The steps not yet done, in order. Prepare's time includes taking the workspace
    (waiting for it, and the clone on first use), which happens before it starts."""
    deployment = context.deployment
    for name, step in steps.PIPELINE:
        if deployment.steps.get(name, {}).get("ok"):
            continue
        rollout_state = type(deployment.rollout).objects.values_list("state", flat=True).get(pk=deployment.rollout_id)
        if rollout_state == R.ABORTING and _before(name, CANCELLABLE_BEFORE):
            _finish(deployment, D.CANCELLED, "rollout aborted before this cluster was changed")
            return deployment.rollout_id
        ClusterDeployment.objects.filter(pk=deployment.pk).update(step=name, heartbeat_at=timezone.now())
        started = session_started if name == PREPARE else time.perf_counter()
        try:
            detail = step(context)
        except Exception as exc:
            return _fail(deployment, name, started, exc)
        _record(deployment, name, started, detail, None)
    _finish(deployment, D.SUCCEEDED)
    return deployment.rollout_id


def _fail(deployment: ClusterDeployment, name: str, started: float, exc: Exception) -> int:
    """Record the step as failed, then end the deployment in the state the failure says."""
    failure = _failure(deployment, name, exc)
    _record(deployment, name, started, failure.detail, failure)
    _finish(deployment, failure.state, f"{name}: {failure.message}")
    return deployment.rollout_id


def _failure(deployment: ClusterDeployment, name: str, exc: Exception) -> Failure:
    """The one place a step's exception becomes its outcome. Fleet's own error is a
    failed step, with its message and its ``as_dict()``; ``StepFailed`` also says which
    state the deployment ends in. Anything else is a bug or an outage nobody expected:
    logged with its trace, and recorded all the same, never lost."""
    if isinstance(exc, FleetError):
        state = exc.state if isinstance(exc, StepFailed) else D.FAILED
        return Failure(state, str(exc), exc.as_dict())
    logger.error("deployment %s: step %s crashed", deployment.pk, name, exc_info=exc)
    return Failure(D.FAILED, f"{name} crashed: {type(exc).__name__}: {exc}", {})


def _record(deployment: ClusterDeployment, name: str, started: float, detail: dict[str, Any],
            failure: Failure | None) -> None:
    """Persist a step's outcome before anything else happens: what resumes reads."""
    deployment.steps = {**deployment.steps, name: {
        "ok": failure is None, "seconds": round(time.perf_counter() - started, 3),
        "at": timezone.now().isoformat(), **({"detail": detail} if detail else {}),
        **({"error": failure.message} if failure else {})}}
    ClusterDeployment.objects.filter(pk=deployment.pk).update(steps=deployment.steps)


def _before(step: str, boundary: str) -> bool:
    names = [name for name, _ in steps.PIPELINE]
    return names.index(step) < names.index(boundary)

