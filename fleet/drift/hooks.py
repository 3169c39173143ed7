"""What drift installs into the rollouts at start-up (the rollouts import nothing of drift).

- After a deployment succeeds, its cluster is scanned (through the drift scheduler, on commit),
  against the set the pipeline rendered: kept as that commit's desired set when rendered.
- Freeze: a deploy rollout skips a drifted cluster in ``freeze`` mode until someone
  decides (acknowledges, heals, or changes its mode). Rollbacks and heals pass: a
  way back is never blocked.
- Ignore rules on the apply side: the fields a rule hides from the diff are taken out
  of what the pipeline applies, so heal and rollouts never fight their owner for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction

from fleet.core.objects import Manifest, ObjectRef
from fleet.drift import desired, modes
from fleet.drift import rules as ignore
from fleet.drift.choices import DriftState as S
from fleet.drift.choices import Mode, Trigger
from fleet.drift.models import ClusterDrift
from fleet.inventory.models import Cluster
from fleet.kube.client import client_for
from fleet.kube.errors import KubeError, NotFound
from fleet.kube.objects import ref_of
from fleet.render.services import RenderResult
from fleet.rollouts import orchestrator, pipeline, steps
from fleet.rollouts.models import ClusterDeployment, Rollout
from fleet.rollouts.states import DeploymentState as D

_installed: dict[str, Callable] = {}


def freeze_reason(deployment: ClusterDeployment) -> str:
    if deployment.rollout.kind != Rollout.Kind.DEPLOY:
        return ""
    drift = ClusterDrift.objects.filter(cluster_id=deployment.cluster_id, state=S.DRIFTED).first()
    if drift is None or modes.effective(drift, deployment.cluster.labels).mode != Mode.FREEZE:
        return ""
    since = drift.first_drift_observed_at
    if drift.acknowledged_at and since and drift.acknowledged_at >= since:
        return ""  # someone decided about this drift
    when = f" since {since:%Y-%m-%d %H:%M:%S} UTC" if since else ""
    return (f"cluster is frozen by drift: drifted{when}; heal it, acknowledge the drift or change its mode "
            "before deploying")


def strip_ignored(cluster: Cluster, objects: list[Manifest]) -> list[Manifest]:
    """``objects`` without the fields the cluster's ignore rules hide: by pointer always;
    by field manager, the fields those managers own on the live object now."""
    from fleet.drift.scan import compiled_rules  # the scan's one reader of rules

    applicable = ignore.for_cluster(compiled_rules(), cluster.labels)
    if not applicable:
        return objects
    result = []
    for obj in objects:
        ref = ref_of(obj)
        matching = [rule for rule in applicable if rule.applies_to(ref, cluster.labels)]
        pointers = [p for rule in matching for p in rule.pointers]
        managers = frozenset(m for rule in matching for m in rule.managers)
        if managers:
            pointers += ignore.owned_pointers(_live(cluster, ref), managers)
        result.append(ignore.strip_fields(obj, pointers) if pointers else obj)
    return result


def _live(cluster: Cluster, ref: ObjectRef) -> dict[str, Any] | None:
    client = client_for(cluster)
    try:
        resource, ref = client.discovery.resolve(ref)
        return client.get(resource.path(ref.namespace, ref.name), obj=ref)
    except NotFound:
        return None
    except KubeError:
        return None  # the apply that follows reports an unreachable cluster itself


def install() -> None:
    """Install the hooks once per process (``DriftConfig.ready``)."""
    if _installed:
        return
    from fleet.drift import services  # the scheduler the app installs there

    def scan_after(deployment: ClusterDeployment) -> None:
        if deployment.state == D.SUCCEEDED:
            cluster_id = deployment.cluster_id
            transaction.on_commit(lambda: services.scheduler().scan_cluster(cluster_id, Trigger.DEPLOYMENT))

    def keep_rendered(deployment: ClusterDeployment, result: RenderResult) -> None:
        if deployment.local_sha:
            desired.remember(deployment.local_sha, result.objects)

    _installed.update(scan_after=scan_after, freeze=freeze_reason, strip=strip_ignored, rendered=keep_rendered)
    pipeline.FINISHED_HOOKS.append(scan_after)
    steps.RENDERED_HOOKS.append(keep_rendered)
    orchestrator.SKIP_CHECKS.append(freeze_reason)
    steps.OBJECT_FILTERS.append(strip_ignored)
