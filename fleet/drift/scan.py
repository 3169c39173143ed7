"""Scanning clusters for drift: observe (read and diff), then record (write, audit).

:func:`observe` reads the cluster's applied set (one list per kind and namespace, by
the ApplySet label) and diffs it against the desired state from the cache; ignore
rules hide fields; live ``managedFields`` name who changed each field. It touches no
database row of the cluster, so a fleet scan observes many clusters at once and one
slow or unreachable cluster delays only itself (its own state, ``unknown`` with the
reason). :func:`record` writes the outcome in one short transaction and audits only a
change of state.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from fleet.audit import services as audit
from fleet.core.errors import FleetError
from fleet.core.objects import ObjectRef
from fleet.drift import ownership
from fleet.drift import rules as ignore
from fleet.drift.choices import DriftState as S
from fleet.drift.choices import ResourceState as RS
from fleet.drift.choices import Trigger
from fleet.drift.desired import Deployed, Desired, deployed, desired_for, preload
from fleet.drift.errors import DesiredStateError
from fleet.drift.models import ClusterDrift, DriftedResource, DriftScan, IgnoreRule
from fleet.inventory.models import Cluster
from fleet.kube import services as kube
from fleet.kube.applyset import PART_OF
from fleet.kube.client import client_for
from fleet.kube.diff import FieldChange, ObjectDiff
from fleet.kube.errors import KubeError
from fleet.kube.objects import ref_of

logger = logging.getLogger(__name__)
MAX_CHANGES_PER_OBJECT = 100
_STATE_OF = {"added": RS.MISSING, "changed": RS.MODIFIED, "unchanged": RS.MODIFIED, "removed": RS.PENDING_PRUNE}
# Labels the API server itself sets: never someone's change.
SERVER_LABELS = frozenset({PART_OF, "kubernetes.io/metadata.name"})


@dataclass(frozen=True)
class ResourceDrift:
    """One drifted object as observed: its changes (each with its path, JSON pointer,
    desired and live value, and the field manager that wrote it), and who changed it."""

    ref: ObjectRef
    state: str
    changes: list[dict[str, Any]]
    manager: str = ""
    changed_at: datetime | None = None


@dataclass
class Observation:
    cluster: Cluster
    state: str
    reason: str = ""
    tag: str = ""
    key: str = ""
    cached: bool = False
    resources: list[ResourceDrift] = field(default_factory=list)
    ignored: int = 0
    requests: int = 0
    seconds: float = 0.0
    started_at: datetime = field(default_factory=timezone.now)

    def count(self, state: str) -> int:
        return sum(1 for resource in self.resources if resource.state == state)


def pointer_of(segments: Sequence[Any]) -> str:
    """A diff path as a JSON pointer, list items by their merge key's value: what ignore
    rules take, so a user copies it from the diff into a rule."""
    tokens = [str(s[1]) if isinstance(s, tuple) else str(s) for s in segments]
    return "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens)


def _resource(diff: ObjectDiff, changes) -> ResourceDrift:
    """Who changed it: the writer of its first changed field (else its latest non-Fleet writer)."""
    listed, first = [], None
    for change in changes[:MAX_CHANGES_PER_OBJECT]:
        owner = ownership.who_changed(diff.live, change.segments)
        first = first or owner
        listed.append({**change.as_dict(), "pointer": pointer_of(change.segments),
                       "manager": owner.manager if owner else "",
                       "time": owner.time.isoformat() if owner and owner.time else None})
    if first is None and diff.live is not None:
        first = ownership.who_changed(diff.live, ())
    return ResourceDrift(diff.ref, _STATE_OF[diff.state], listed, first.manager if first else "",
                         first.time if first else None)


def added_labels(diff: ObjectDiff, desired: dict[str, str] | None) -> list[FieldChange]:
    """Labels someone added to a desired object. The diff walks desired fields only, so
    server defaults never count; labels are the exception users expect to see, since
    selectors and policies act on them (the ApplySet's label is Fleet's, the namespace
    name label the server's; an object the diff found unchanged is then modified)."""
    if desired is None or diff.live is None or diff.state not in ("changed", "unchanged"):
        return []
    live = (diff.live.get("metadata") or {}).get("labels") or {}
    return [FieldChange(f"metadata.labels.{key}", None, value, ("metadata", "labels", key))
            for key, value in sorted(live.items()) if key not in desired and key not in SERVER_LABELS]


def compiled_rules() -> list[ignore.CompiledRule]:
    return [ignore.compile_rule(rule) for rule in IgnoreRule.objects.all()]


class _Inline(Executor):
    """Runs what is submitted at once, on the caller's thread: a fleet scan's per-cluster
    reads, which the scan already runs in parallel across clusters."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to whoever reads the future, as a pool would
            future.set_exception(exc)
        return future


INLINE = _Inline()


def observe(cluster: Cluster, deployment: Deployed | None, rules: Sequence[ignore.CompiledRule], *,
            pool: Executor | None = None) -> Observation:
    """Read and diff one cluster (its reads on ``pool`` when given); every failure is this
    cluster's state, never raised."""
    started, clock = timezone.now(), time.perf_counter()
    result = Observation(cluster, S.UNKNOWN, started_at=started)
    client = None
    try:
        if deployment is None:
            result.reason = "not deployed by Fleet yet: no desired state"
            return result
        desired: Desired = desired_for(cluster, deployment)
        result.tag, result.key, result.cached = desired.tag, desired.key, desired.cached
        client = client_for(cluster)
        before = client.requests_sent
        try:
            report = kube.diff(cluster, desired.objects, pool=pool)
        finally:
            result.requests = client.requests_sent - before
        applicable = ignore.for_cluster(rules, cluster.labels)
        labels = {ref_of(obj).key: (obj.get("metadata") or {}).get("labels") or {} for obj in desired.objects}
        for diff in report.objects:
            found = [*diff.changes, *added_labels(diff, labels.get(diff.ref.key))]
            changes, hidden = ignore.split(found, diff.ref, diff.live, applicable, cluster.labels)
            result.ignored += hidden
            if diff.state in ("added", "removed") or changes:
                result.resources.append(_resource(diff, changes))
        result.state = S.DRIFTED if result.resources else S.IN_SYNC
    except DesiredStateError as exc:
        result.state, result.reason = S.ERROR, exc.message
    except KubeError as exc:
        result.state, result.reason = S.UNKNOWN, f"the cluster did not answer the scan: {exc}"
    except FleetError as exc:
        result.state, result.reason = S.ERROR, str(exc)
    except Exception as exc:  # a bug: this cluster's error, logged with its trace, never the fleet's
        logger.exception("drift scan of %s crashed", cluster.name)
        result.state, result.reason = S.ERROR, f"the scan crashed: {type(exc).__name__}"
    finally:
        result.seconds = time.perf_counter() - clock
    return result


def interval_of(drift: ClusterDrift) -> float:
    return float(drift.interval_seconds or settings.FLEET_DRIFT_INTERVAL)


def next_scan(drift: ClusterDrift, now: datetime) -> datetime:
    """The interval, with jitter either side, so scans of a fleet spread out over time."""
    interval = interval_of(drift)
    spread = interval * settings.FLEET_DRIFT_JITTER
    return now + timedelta(seconds=interval + random.uniform(-spread, spread))


def _audit_change(drift: ClusterDrift, previous: str, seen: Observation) -> None:
    action = {S.DRIFTED: "drift.drifted", S.IN_SYNC: "drift.in_sync", S.UNKNOWN: "drift.unknown",
              S.ERROR: "drift.error"}[seen.state]
    audit.record(action, target=drift, metadata={
        "from": previous, "to": seen.state, "reason": seen.reason[:500], "tag": seen.tag,
        "counts": drift.counts,
        "resources": [{"object": str(r.ref), "state": r.state, "manager": r.manager} for r in seen.resources[:20]]})


def record(seen: Observation, trigger: str) -> ClusterDrift:
    """Write one observation: the cluster's report, its open resources, a history row;
    audited only when the state changed."""
    now = timezone.now()
    with transaction.atomic():
        drift, _ = ClusterDrift.objects.select_for_update().get_or_create(cluster=seen.cluster)
        previous = drift.state
        if seen.state in (S.IN_SYNC, S.DRIFTED):
            _record_resources(drift, seen, now)
            drift.missing, drift.modified = seen.count(RS.MISSING), seen.count(RS.MODIFIED)
            drift.pending_prune, drift.ignored = seen.count(RS.PENDING_PRUNE), seen.ignored
            drift.desired_key, drift.deployed_tag = seen.key, seen.tag
        if seen.state == S.DRIFTED and drift.first_drift_observed_at is None:
            drift.first_drift_observed_at = seen.started_at
        elif seen.state == S.IN_SYNC:
            drift.first_drift_observed_at = None
        drift.state, drift.reason = seen.state, seen.reason[:1000]
        if previous != seen.state:
            drift.state_changed_at = now
        drift.last_scan_at, drift.last_scan_seconds = seen.started_at, round(seen.seconds, 4)
        drift.next_scan_at = next_scan(drift, now)
        drift.save()
        DriftScan.objects.create(cluster=seen.cluster, trigger=trigger, started_at=seen.started_at,
                                 seconds=round(seen.seconds, 4), state=seen.state, reason=seen.reason[:1000],
                                 counts=drift.counts, requests=seen.requests, desired_cached=seen.cached,
                                 tag=seen.tag)
        if previous != seen.state:
            _audit_change(drift, previous, seen)
    return drift


STEADY_BATCH = 200


def _steady(seen: Observation, row: ClusterDrift | None) -> bool:
    """In sync now and at the last scan, with nothing open: the fleet's usual case,
    written in bulk (timings and a history row; no state change, nothing to audit)."""
    return (seen.state == S.IN_SYNC and row is not None and row.state == S.IN_SYNC
            and row.missing + row.modified + row.pending_prune == 0)


def record_steady(batch: list[tuple[Observation, ClusterDrift]], trigger: str) -> list[ClusterDrift]:
    """Record many steady observations in two statements. The update is conditional on
    the rows still being in sync with nothing open; if another scan changed one meanwhile,
    the batch is recorded one by one instead."""
    now = timezone.now()
    rows = []
    for seen, row in batch:
        row.last_scan_at, row.last_scan_seconds = seen.started_at, round(seen.seconds, 4)
        row.next_scan_at, row.ignored = next_scan(row, now), seen.ignored
        row.desired_key, row.deployed_tag, row.cluster = seen.key, seen.tag, seen.cluster
        rows.append(row)
    fields = ["last_scan_at", "last_scan_seconds", "next_scan_at", "ignored", "desired_key", "deployed_tag"]
    with transaction.atomic():
        updated = ClusterDrift.objects.filter(state=S.IN_SYNC, missing=0, modified=0, pending_prune=0).bulk_update(
            rows, fields)
        if updated != len(rows):
            transaction.set_rollback(True)
    if updated != len(rows):
        return [record(seen, trigger) for seen, _ in batch]
    DriftScan.objects.bulk_create([DriftScan(
        cluster=seen.cluster, trigger=trigger, started_at=seen.started_at, seconds=round(seen.seconds, 4),
        state=seen.state, counts=row.counts, requests=seen.requests, desired_cached=seen.cached, tag=seen.tag)
        for seen, row in batch])
    return rows


def _record_resources(drift: ClusterDrift, seen: Observation, now: datetime) -> None:
    """Open a row per newly drifted object, update the open ones, resolve those back in sync."""
    had_open = drift.missing + drift.modified + drift.pending_prune > 0 or drift.state != S.IN_SYNC
    if not seen.resources and not had_open:
        return  # in sync before and now: nothing to read or write
    open_rows = {(r.group, r.kind, r.namespace, r.name): r for r in drift.resources.filter(resolved_at=None)}
    seen_keys = set()
    for resource in seen.resources:
        key = resource.ref.key
        seen_keys.add(key)
        fields = {"version": resource.ref.version, "state": resource.state, "changes": resource.changes,
                  "manager": resource.manager, "changed_at": resource.changed_at, "last_observed_at": now}
        row = open_rows.get(key)
        if row is None:
            DriftedResource.objects.create(drift=drift, group=key[0], kind=key[1], namespace=key[2], name=key[3],
                                           first_observed_at=seen.started_at, **fields)
        else:
            DriftedResource.objects.filter(pk=row.pk).update(**fields)
    gone = [row.pk for key, row in open_rows.items() if key not in seen_keys]
    if gone:
        DriftedResource.objects.filter(pk__in=gone).update(resolved_at=now)


def scan_cluster(cluster: Cluster, *, trigger: str = Trigger.MANUAL) -> ClusterDrift:
    """Scan one cluster now and record it (then self-heal, where it is set to)."""
    return scan_clusters([cluster], trigger=trigger)[0]


def scan_clusters(clusters: Iterable[Cluster], *, trigger: str = Trigger.MANUAL,
                  progress: Callable[[ClusterDrift], None] | None = None,
                  max_parallel: int | None = None) -> list[ClusterDrift]:
    """Scan ``clusters`` concurrently: deployments, cached desired sets and rules read
    once for all; each cluster observed on a thread of its own (bounded; no database
    there unless its desired set must be rendered), and recorded on the caller's thread
    as soon as it is observed."""
    from fleet.drift import heal  # heal builds on scans: imported here, not at the top

    clusters = list(clusters)
    current = deployed(c.pk for c in clusters)
    preload(current.values())
    compiled = compiled_rules()
    recorded: list[ClusterDrift] = []

    def observed(cluster: Cluster, reads: Executor | None = None) -> Observation:
        return observe(cluster, current.get(cluster.pk), compiled, pool=reads)

    def on_thread(cluster: Cluster) -> Observation:
        try:
            return observed(cluster, INLINE)
        finally:
            if connection.connection is not None:  # a render on a cache miss used the database
                connection.close()

    rows = {row.cluster_id: row for row in ClusterDrift.objects.filter(cluster__in=clusters)}
    steady: list[tuple[Observation, ClusterDrift]] = []

    def written(drifts: list[ClusterDrift]) -> None:
        recorded.extend(drifts)
        for drift in drifts:
            if progress:
                progress(drift)

    def flush() -> None:
        if steady:
            written(record_steady(steady, trigger))
            steady.clear()

    def done(seen: Observation) -> None:
        row = rows.get(seen.cluster.pk)
        if _steady(seen, row):
            steady.append((seen, row))
            if len(steady) >= STEADY_BATCH:
                flush()
        else:
            written([record(seen, trigger)])

    if len(clusters) == 1:  # on the caller's thread (and in its transaction, if any)
        done(observed(clusters[0]))
    elif clusters:
        # Clusters in parallel, each one's reads in turn on its thread: a thousand
        # clusters start a few dozen threads, not a pool of their own each.
        parallel = max(1, min(max_parallel or settings.FLEET_DRIFT_SCAN_PARALLEL, len(clusters)))
        with ThreadPoolExecutor(parallel, thread_name_prefix="drift-scan") as pool:
            for future in as_completed([pool.submit(on_thread, cluster) for cluster in clusters]):
                done(future.result())
    flush()
    for drift in recorded:
        heal.after_scan(drift)
    return recorded
