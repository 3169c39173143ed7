"""Is what we applied working? Per-object health, watched until a deadline.

``assess`` is pure (a live object in, a verdict out) so the rules are unit-tested;
``wait_healthy`` assesses what it is given or reads once, then watches only the objects
not yet healthy. A verdict is ``True`` (healthy), ``False`` (not yet, or failed) or
``None`` (the kind has no notion of health, e.g. a ConfigMap: existing is all it can
do). Some failures are terminal (a failed Job, a Deployment past its progress
deadline): waiting stops for them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from fleet.core.objects import Key, ObjectRef
from fleet.kube import constants
from fleet.kube.client import KubeClient
from fleet.kube.discovery import Resource
from fleet.kube.errors import NotFound, Timeout, from_response
from fleet.kube.objects import condition
from fleet.kube.pool import run_all, worker_pool

Verdict = tuple[bool | None, str, bool]  # (healthy, reason, terminal)


@dataclass(frozen=True)
class Health:
    ref: ObjectRef
    healthy: bool | None
    reason: str
    terminal: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"object": str(self.ref), "healthy": self.healthy, "reason": self.reason}


@dataclass(frozen=True)
class HealthReport:
    cluster: str
    results: list[Health]
    timed_out: bool
    elapsed: float

    @property
    def ok(self) -> bool:
        return all(result.healthy is not False for result in self.results)

    @property
    def unhealthy(self) -> list[Health]:
        return [result for result in self.results if result.healthy is False]

    def raise_for_health(self) -> None:
        """Raise :class:`Timeout` naming the first unhealthy object and why."""
        if not self.ok:
            first = self.unhealthy[0]
            raise Timeout(f"not healthy after {self.elapsed:.0f}s: {first.reason}"
                          f" ({len(self.unhealthy)} unhealthy)", cluster=self.cluster, obj=first.ref)


def _observed(obj: Mapping[str, Any]) -> str:
    generation = (obj.get("metadata") or {}).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return f"waiting for the controller to observe generation {generation}"
    return ""


def _count(status: Mapping[str, Any], key: str) -> int:
    return int(status.get(key) or 0)


def _deployment(obj: Mapping[str, Any]) -> Verdict:
    status, want = obj.get("status") or {}, (obj.get("spec") or {}).get("replicas", 1)
    # Until the controller has seen this generation, its conditions are about the previous
    # one: a deadline the old spec missed says nothing of the new (just applied to fix it).
    if waiting := _observed(obj):
        return False, waiting, False
    progressing = condition(obj, "Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return False, f"progress deadline exceeded: {progressing.get('message', '')}", True
    updated, total = _count(status, "updatedReplicas"), _count(status, "replicas")
    available = _count(status, "availableReplicas")
    if updated < want:
        return False, f"{updated} of {want} replicas updated", False
    if total > updated:
        return False, f"{total - updated} old replicas pending termination", False
    if available < want:
        return False, f"{available} of {want} updated replicas available", False
    return True, f"{want} replicas updated and available", False


def _statefulset(obj: Mapping[str, Any]) -> Verdict:
    status, spec = obj.get("status") or {}, obj.get("spec") or {}
    want = spec.get("replicas", 1)
    if waiting := _observed(obj):
        return False, waiting, False
    ready = _count(status, "readyReplicas")
    if ready < want:
        return False, f"{ready} of {want} replicas ready", False
    rolling = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
    if rolling and status.get("updateRevision") != status.get("currentRevision"):
        return False, f"{_count(status, 'updatedReplicas')} of {want} replicas updated", False
    return True, f"{want} replicas ready", False


def _daemonset(obj: Mapping[str, Any]) -> Verdict:
    status = obj.get("status") or {}
    if waiting := _observed(obj):
        return False, waiting, False
    want = _count(status, "desiredNumberScheduled")
    for key, what in (("currentNumberScheduled", "scheduled"), ("updatedNumberScheduled", "updated"),
                      ("numberAvailable", "available")):
        if _count(status, key) < want:
            return False, f"{_count(status, key)} of {want} pods {what}", False
    if _count(status, "numberMisscheduled"):
        return False, f"{_count(status, 'numberMisscheduled')} pods on nodes they should not run on", False
    return True, f"{want} pods scheduled and available", False


def _job(obj: Mapping[str, Any]) -> Verdict:
    if (condition(obj, "Complete") or {}).get("status") == "True":
        return True, "complete", False
    failed = condition(obj, "Failed") or {}
    if failed.get("status") == "True":
        return False, f"failed: {failed.get('message') or failed.get('reason', '')}", True
    status = obj.get("status") or {}
    return False, f"{_count(status, 'active')} active, {_count(status, 'succeeded')} succeeded", False


def _crd(obj: Mapping[str, Any]) -> Verdict:
    names = condition(obj, "NamesAccepted") or {}
    if names.get("status") == "False":
        return False, f"names not accepted: {names.get('message', '')}", True
    if (condition(obj, "Established") or {}).get("status") == "True":
        return True, "established", False
    return False, "not established yet", False


def _pvc(obj: Mapping[str, Any]) -> Verdict:
    phase = (obj.get("status") or {}).get("phase", "Pending")
    if phase == "Bound":
        return True, "bound", False
    return False, f"phase {phase}", phase == "Lost"


def _generic(obj: Mapping[str, Any]) -> Verdict:
    for kind in ("Ready", "Available"):
        found = condition(obj, kind)
        if found is not None:
            if found.get("status") == "True":
                return True, f"{kind}", False
            detail = found.get("message") or found.get("reason") or found.get("status")
            return False, f"{kind} is {found.get('status')}: {detail}", False
    return None, "no health to assess", False


_RULES: dict[tuple[str, str], Callable[[Mapping[str, Any]], Verdict]] = {
    ("apps", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("batch", "Job"): _job,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
    ("", "PersistentVolumeClaim"): _pvc,
}


def assess(ref: ObjectRef, obj: Mapping[str, Any]) -> Health:
    healthy, reason, terminal = _RULES.get(ref.group_kind, _generic)(obj)
    return Health(ref, healthy, reason, terminal)


def _waiting(health: Health) -> bool:
    return health.healthy is False and not health.terminal


def wait_healthy(client: KubeClient, refs: Iterable[ObjectRef], *, timeout: float,
                 live: Mapping[Key, Mapping[str, Any]] | None = None) -> HealthReport:
    """Wait until every object is healthy (or has no health), fails terminally, or
    ``timeout`` seconds pass; the report says which, per object.

    ``live``: objects as the caller last saw them, by :attr:`ObjectRef.key` (an apply's
    answers are the live objects right after its writes): those are assessed as they
    are, and each other object is read once. What is not healthy yet is then watched:
    the server sends each change as it happens, where polling would read every pending
    object again and again. Every request, each watch included, waits at most until the
    deadline: a hung cluster cannot hold the wait past it.
    """
    start = time.monotonic()
    deadline = start + timeout
    resolved = [client.discovery.resolve(ref) for ref in refs]
    known = live or {}
    results = {ref: assess(ref, known[ref.key]) for _, ref in resolved if ref.key in known}
    unread = [entry for entry in resolved if entry[1].key not in known]
    with worker_pool(client.cluster) as pool:
        for health in run_all(pool, lambda entry: _read(client, entry, deadline), unread):
            results[health.ref] = health
    pending = [entry for entry in resolved if _waiting(results[entry[1]])]
    if pending and time.monotonic() < deadline:
        results.update(_watch_all(client, pending, deadline))
    return HealthReport(client.cluster, [results[ref] for _, ref in resolved],
                        any(_waiting(results[ref]) for _, ref in resolved), time.monotonic() - start)


def _read(client: KubeClient, entry: tuple[Resource, ObjectRef], deadline: float) -> Health:
    resource, ref = entry
    # A request that hangs (a blackholed cluster) must not outlive the deadline by the
    # client's timeouts (a TLS handshake waits up to the connect timeout, a read 30 s):
    # wait at most what is left, and at least a second.
    left = max(1.0, deadline - time.monotonic())
    try:
        return assess(ref, client.get(resource.path(ref.namespace, ref.name), obj=ref,
                                      timeout=(min(constants.CONNECT_TIMEOUT, left),
                                               min(constants.READ_TIMEOUT, left))))
    except NotFound:
        return Health(ref, False, "not found")


def _watch_all(client: KubeClient, pending: list[tuple[Resource, ObjectRef]],
               deadline: float) -> dict[ObjectRef, Health]:
    """One watch per kind and namespace, all at once, each until its objects settle or the
    deadline passes (so each has a thread and a connection of its own: past the client's
    pool size, connections are not kept alive afterwards)."""
    groups: dict[tuple[Resource, str], list[ObjectRef]] = {}
    for resource, ref in pending:
        groups.setdefault((resource, ref.namespace), []).append(ref)
    with ThreadPoolExecutor(len(groups), thread_name_prefix=f"kube-{client.cluster}-watch") as pool:
        batches = run_all(pool, lambda group: _watch(client, *group[0], group[1], deadline), list(groups.items()))
    return {health.ref: health for batch in batches for health in batch}


def _watch(client: KubeClient, resource: Resource, namespace: str, refs: list[ObjectRef],
           deadline: float) -> list[Health]:
    """Follow ``refs`` (one kind, in one namespace) until each settles or the deadline
    passes. A watch that names no resourceVersion starts with every object it covers as it
    is now, so a change made before it opened is not missed. It covers the kind in the
    namespace (a label could have been changed by anyone), or one object by name."""
    waiting = {ref.name: ref for ref in refs}
    results: dict[ObjectRef, Health] = {}
    query = {"watch": "true", **({"fieldSelector": f"metadata.name={refs[0].name}"} if len(refs) == 1 else {})}
    while waiting and (left := deadline - time.monotonic()) > 0:
        query["timeoutSeconds"] = str(math.ceil(left))  # the server's end of it too
        answer = max(1.0, left)  # as for a read: what is left for the answer, and at least a second
        with closing(client.stream(resource.path(namespace), query=query, until=deadline,
                                   timeout=(min(constants.CONNECT_TIMEOUT, answer), answer))) as events:
            for event in events:
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    raise from_response(int(obj.get("code") or 500), json.dumps(obj).encode(),
                                        cluster=client.cluster, obj=None)
                ref = waiting.get((obj.get("metadata") or {}).get("name"))
                if ref is None:
                    continue
                health = Health(ref, False, "not found") if event.get("type") == "DELETED" else assess(ref, obj)
                results[ref] = health
                if not _waiting(health):
                    del waiting[ref.name]
                    if not waiting:
                        break
        if waiting and (left := deadline - time.monotonic()) > 0:  # the server ended it early
            time.sleep(min(constants.HEALTH_REWATCH_DELAY, left))
    return list(results.values())
