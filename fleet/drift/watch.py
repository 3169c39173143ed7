"""Event-driven detection: watches on a cluster's applied kinds, resumed from their
resourceVersion, that scan the cluster as soon as one of its objects drifts (or comes
back), instead of waiting for the next periodic scan.

One :class:`ClusterWatcher` per cluster lists each kind of the desired set in each of
its namespaces by the ApplySet label (as a scan does) and watches from the list's
resourceVersion with bookmarks, so a reconnect resumes where it was; a watch the
server expired (410 Gone) is relisted. Each event's object is compared with its
desired object (``kube.diff.compare``, plus added labels): status churn from
controllers changes nothing, so only an object whose drift *flips* (a field changed, a
label added, deleted, put back) asks for a scan of its cluster, debounced. The scan is
the ordinary one (one list per kind and namespace, recorded and audited as always);
the periodic scan stays as the safety net, and catches what a watch cannot see (an
object pending prune in another namespace).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connection

from fleet.core.errors import FleetError
from fleet.drift import desired as desired_state
from fleet.drift.errors import DesiredStateError
from fleet.drift.scan import SERVER_LABELS
from fleet.inventory.models import Cluster
from fleet.kube.client import KubeClient, client_for
from fleet.kube.diff import compare
from fleet.kube.errors import KubeError
from fleet.kube.objects import ref_of
from fleet.kube.services import applyset_for

logger = logging.getLogger(__name__)
WATCH_SECONDS = 240  # the server ends a watch after this; it is resumed from the last resourceVersion
RETRY_SECONDS = 2.0


class ClusterWatcher:
    """Watch one cluster's applied objects; call ``on_drift(cluster)`` (debounced) when one
    starts or stops drifting. ``start()`` returns once every watch is established."""

    def __init__(self, cluster: Cluster, on_drift: Callable[[Cluster], None], *, debounce: float = 0.5):
        self.cluster, self.on_drift, self.debounce = cluster, on_drift, debounce
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._drifted: dict[tuple, bool] = {}
        self.events = 0  # events seen, for measurements
        self.triggers = 0  # scans asked for

    def _desired(self) -> dict[tuple, dict[str, Any]]:
        current = desired_state.deployed([self.cluster.pk]).get(self.cluster.pk)
        if current is None:
            return {}
        objects = desired_state.desired_for(self.cluster, current).objects
        applyset = applyset_for(self.cluster)
        return {ref_of(obj).key: applyset.label(obj, ref_of(obj)) for obj in objects}

    def start(self) -> ClusterWatcher:
        try:
            wanted = self._desired()
        except DesiredStateError as exc:
            logger.info("drift watch of %s: no desired state: %s", self.cluster.name, exc)
            return self
        client = client_for(self.cluster)
        selector = applyset_for(self.cluster).selector
        targets: dict[tuple[str, str], Any] = {}
        for obj in wanted.values():
            resource, ref = client.discovery.resolve(ref_of(obj))
            targets.setdefault(resource.path(ref.namespace), resource)
        ready = threading.Barrier(len(targets) + 1) if targets else None
        for path in targets:
            thread = threading.Thread(target=self._watch, args=(client, path, selector, wanted, ready),
                                      name=f"drift-watch-{self.cluster.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if ready is not None:
            try:
                ready.wait(timeout=30)
            except threading.BrokenBarrierError:
                logger.info("drift watch of %s: not every watch is established yet", self.cluster.name)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._timer:
                self._timer.cancel()

    def _refresh(self, wanted: dict[tuple, dict[str, Any]]) -> None:
        try:
            fresh = self._desired()
        except (DesiredStateError, KubeError):
            return  # keep comparing with what was desired; the periodic scan reports the error
        with self._lock:
            wanted.clear()
            wanted.update(fresh)

    def _list(self, client: KubeClient, path: str, selector: str, wanted) -> str:
        listed = client.get(path, query={"labelSelector": selector})
        for item in listed.get("items") or []:
            self._seen(item, wanted, deleted=False, initial=True)
        return (listed.get("metadata") or {}).get("resourceVersion", "")

    def _watch(self, client: KubeClient, path: str, selector: str, wanted, ready) -> None:
        version, signalled = "", False
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._list(client, path, selector, wanted)
                if ready is not None and not signalled:
                    signalled = True
                    ready.wait(timeout=30)
                query = {"watch": "1", "labelSelector": selector, "resourceVersion": version,
                         "allowWatchBookmarks": "true", "timeoutSeconds": str(WATCH_SECONDS)}
                for event in client.stream(path, query=query, timeout=(5.0, WATCH_SECONDS + 10)):
                    if self._stop.is_set():
                        return
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        version = ""  # 410 Gone: the version expired; relist
                        break
                    version = (obj.get("metadata") or {}).get("resourceVersion", version)
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self.events += 1
                        self._seen(obj, wanted, deleted=kind == "DELETED")
                self._refresh(wanted)  # the watch ended: a deployment may have changed what is desired
            except (KubeError, ValueError, threading.BrokenBarrierError) as exc:
                logger.info("drift watch of %s %s: %s; retrying", self.cluster.name, path, exc)
                if ready is not None and not signalled:
                    signalled = True
                    try:
                        ready.wait(timeout=0.1)
                    except threading.BrokenBarrierError:
                        pass
                self._stop.wait(RETRY_SECONDS)

    def _seen(self, obj: dict[str, Any], wanted, *, deleted: bool, initial: bool = False) -> None:
        """Note whether ``obj`` drifts now; ask for a scan when that flipped (or when an
        object first seen by an event drifts)."""
        try:
            key = ref_of(obj).key
        except FleetError:
            return
        desired = wanted.get(key)
        if desired is None:
            return
        labels = set((obj.get("metadata") or {}).get("labels") or {})
        added = labels - set((desired.get("metadata") or {}).get("labels") or {}) - SERVER_LABELS
        drifted = deleted or bool(added) or compare(ref_of(desired), desired, obj).state != "unchanged"
        with self._lock:
            before = self._drifted.get(key)
            self._drifted[key] = drifted
        if not initial and (before != drifted if before is not None else drifted):
            self._poke()

    def _poke(self) -> None:
        with self._lock:
            if self._timer is not None:
                return
            self._timer = threading.Timer(self.debounce, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
        self.triggers += 1
        try:
            self.on_drift(self.cluster)
        except Exception:
            logger.exception("drift watch of %s: the scan it asked for failed", self.cluster.name)
        finally:
            connection.close()  # the timer's thread ends here: give its connection back


def watch(clusters: list[Cluster], on_drift: Callable[[Cluster], None]) -> list[ClusterWatcher]:
    """Start a watcher per cluster (each established before the next starts)."""
    started = []
    for cluster in clusters:
        started.append(ClusterWatcher(cluster, on_drift).start())
    return started


def run_forever(clusters: list[Cluster], on_drift: Callable[[Cluster], None]) -> None:
    """``drift watch``: watch until interrupted."""
    watchers = watch(clusters, on_drift)
    try:
        while True:
            time.sleep(3600)
    finally:
        for watcher in watchers:
            watcher.stop()
