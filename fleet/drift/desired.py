"""The desired state of a cluster: what its last successful deployment applied.

That is the deployment's tag (its commit, ``local_sha``), rendered as the pipeline
renders (``gitops.render_tree``) with the same inputs (render limits, kustomize's
version), not the channel's head. Rendered sets are cached by content, the commit and
those inputs: in the process (a bounded LRU) and in the database (``DesiredSet``,
shared by every worker), so a scan of a cluster that was not redeployed runs no git
and no kustomize. A cache entry never goes stale: a new deployment is a new commit or
new inputs, hence a new key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from fleet.core.errors import FleetError
from fleet.core.lru import LRU
from fleet.core.objects import Manifest
from fleet.drift.errors import DesiredStateError
from fleet.drift.models import DesiredSet
from fleet.gitops import services as gitops
from fleet.gitops.errors import BadInput
from fleet.inventory.models import Cluster
from fleet.render.limits import RenderLimits
from fleet.rollouts.deployed import current_deployments
from fleet.toolchain.constants import KUSTOMIZE_VERSION

MEMORY_ENTRIES = 2048  # rendered sets kept in the process (a 20-object set is ~20 KB)
TOUCH_EVERY = timedelta(hours=1)  # how stale DesiredSet.used_at may get before it is written


@dataclass(frozen=True)
class Deployed:
    """What a cluster's current deployment left: its tag and commit."""

    tag: str
    commit: str


@dataclass(frozen=True)
class Desired:
    tag: str
    commit: str
    key: str
    objects: list[Manifest]
    cached: bool  # from a cache: no git, no render ran


def render_inputs() -> dict:
    """Everything besides the commit that decides what a render gives."""
    return {"limits": asdict(RenderLimits.from_settings()), "kustomize": KUSTOMIZE_VERSION, "layout": 1}


def content_key(commit: str, inputs: dict | None = None) -> str:
    text = json.dumps([commit, inputs if inputs is not None else render_inputs()], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def deployed(cluster_ids: Iterable[int]) -> dict[int, Deployed]:
    """The current deployment of each cluster that has one: one query for any number."""
    rows = (current_deployments().filter(cluster_id__in=list(cluster_ids))
            .values_list("cluster_id", "tag", "local_sha"))
    return {pk: Deployed(tag, sha) for pk, tag, sha in rows if tag}


MEMORY: LRU[list[Manifest]] = LRU(MEMORY_ENTRIES)  # the process's rendered sets, by content key


def preload(deployments: Iterable[Deployed], *, inputs: dict | None = None) -> int:
    """Bring the cached sets of ``deployments`` into the process in one query (a fleet
    scan's threads then read no database at all); returns how many were loaded."""
    inputs = inputs if inputs is not None else render_inputs()
    keys = {content_key(d.commit, inputs) for d in deployments}
    missing = [key for key in keys if MEMORY.get(key) is None]
    loaded = 0
    for start in range(0, len(missing), 500):
        for key, sealed in DesiredSet.objects.filter(key__in=missing[start:start + 500]).values_list(
                "key", "manifests_encrypted"):
            MEMORY.put(key, DesiredSet.unseal(sealed))
            loaded += 1
    if missing:
        DesiredSet.objects.filter(key__in=missing, used_at__lt=timezone.now() - TOUCH_EVERY).update(
            used_at=timezone.now())
    return loaded


def desired_for(cluster: Cluster, deployment: Deployed, *, inputs: dict | None = None) -> Desired:
    """The desired set of ``cluster`` at ``deployment``; raises :class:`DesiredStateError`
    when the deploy tag is gone or its render fails now (the cluster's ``error`` state)."""
    inputs = inputs if inputs is not None else render_inputs()
    key = content_key(deployment.commit, inputs)
    found = MEMORY.get(key)
    if found is not None:
        return Desired(deployment.tag, deployment.commit, key, found, True)
    row = DesiredSet.objects.filter(key=key).only("manifests_encrypted", "used_at").first()
    if row is not None:
        if timezone.now() - row.used_at > TOUCH_EVERY:
            DesiredSet.objects.filter(pk=row.pk).update(used_at=timezone.now())
        manifests = DesiredSet.unseal(row.manifests_encrypted)
        MEMORY.put(key, manifests)
        return Desired(deployment.tag, deployment.commit, key, manifests, True)
    objects = _render(cluster, deployment)
    _store(key, deployment.commit, objects)
    return Desired(deployment.tag, deployment.commit, key, objects, False)


def remember(commit: str, objects: list[Manifest], *, inputs: dict | None = None) -> None:
    """Keep ``objects`` as the desired set of ``commit``: what the rollout pipeline has just
    rendered from that commit's tree, with the same inputs (a render is the same wherever
    the tree comes from), so the scan that follows its deployment needs no git and no render."""
    key = content_key(commit, inputs)
    if MEMORY.get(key) is None:
        _store(key, commit, objects)


def _store(key: str, commit: str, objects: list[Manifest]) -> None:
    try:
        with transaction.atomic():
            DesiredSet.objects.create(key=key, commit=commit, manifests_encrypted=DesiredSet.seal(objects),
                                      used_at=timezone.now())
    except IntegrityError:
        pass  # another worker rendered the same content first: same objects
    MEMORY.put(key, objects)


def _render(cluster: Cluster, deployment: Deployed) -> list[Manifest]:
    try:
        result = gitops.render_deployed(cluster, deployment.tag)
    except BadInput as exc:
        raise DesiredStateError(f"deploy tag {deployment.tag} (commit {deployment.commit[:12]}) cannot be read "
                                f"from the internal repo: {exc.message}", code="tag-gone") from None
    except FleetError as exc:
        raise DesiredStateError(f"the render of deploy tag {deployment.tag} fails now: {exc}",
                                code="render-failed") from None
    return result.objects


def forget_older_than(days: int) -> int:
    """Drop cached sets no scan used for ``days``; returns how many."""
    cutoff = timezone.now() - timedelta(days=days)
    return DesiredSet.objects.filter(used_at__lt=cutoff).delete()[0]
