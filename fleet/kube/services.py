"""Cluster operations for the rest of Fleet (rollouts, drift, the API, tasks). They only
talk to clusters: recording what a cluster answered is the caller's (the inventory
records probes, the rollouts their deployments).

Each takes an inventory :class:`~fleet.inventory.models.Cluster` and uses its cached
client. The modules underneath (:mod:`~fleet.kube.apply`, :mod:`~fleet.kube.diff`,
:mod:`~fleet.kube.health`, :mod:`~fleet.kube.probe`) take a
:class:`~fleet.kube.client.KubeClient` and know nothing of the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar

from fleet.core.objects import Key, Manifest, ObjectRef
from fleet.inventory.models import Cluster
from fleet.kube.apply import ApplyResult, Observed, apply_set
from fleet.kube.applyset import ApplySet
from fleet.kube.client import client_for
from fleet.kube.diff import DiffReport, diff_set
from fleet.kube.errors import KubeError
from fleet.kube.health import HealthReport, wait_healthy
from fleet.kube.probe import ProbeResult, probe

T = TypeVar("T")
R = TypeVar("R")


def applyset_for(cluster: Cluster) -> ApplySet:
    """One applied set per inventory cluster, named after it, so several inventory
    clusters may share one API server (each in its own namespaces) without pruning
    each other's objects."""
    return ApplySet(name=cluster.name)


def apply(cluster: Cluster, objects: Iterable[Manifest], *, applyset: ApplySet | None = None,
          dry_run: bool = False, force: bool = False, prune: bool = True,
          validated: bool = False, observed: Observed | None = None) -> ApplyResult:
    """Fields another manager took (someone's ``kubectl edit``) stop the apply as a
    conflict; self-heal and "overwrite drift" pass ``force=True`` to take them back.
    ``observed``: a diff's reading of this set moments before, that nobody else could
    change since (see :class:`~fleet.kube.apply.Observed`)."""
    return apply_set(client_for(cluster), objects, applyset=applyset or applyset_for(cluster),
                     dry_run=dry_run, force=force, prune_missing=prune, validated=validated, observed=observed)


def diff(cluster: Cluster, objects: Iterable[Manifest], *,
         applyset: ApplySet | None = None, pool: Executor | None = None) -> DiffReport:
    """``pool``: where the reads run (see :func:`~fleet.kube.diff.diff_set`)."""
    return diff_set(client_for(cluster), objects, applyset=applyset or applyset_for(cluster), pool=pool)


def health(cluster: Cluster, refs: Iterable[ObjectRef], *, timeout: float,
           live: Mapping[Key, Mapping[str, Any]] | None = None) -> HealthReport:
    """``live``: the objects as last seen (an apply's answers), assessed before anything is read."""
    return wait_healthy(client_for(cluster), refs, timeout=timeout, live=live)


def probe_cluster(cluster: Cluster) -> ProbeResult:
    """Is the cluster there, and may we work on it? Only asks: recording what it answered
    is the inventory's (``inventory.services.record_cluster_status``)."""
    try:
        return probe(client_for(cluster))
    except KubeError as exc:  # refused credentials: no request was made
        return ProbeResult(False, "", None, exc.code, str(exc))


def for_each(targets: Sequence[T], fn: Callable[[T], R], *,
             max_parallel: int = 16) -> list[tuple[T, R | KubeError]]:
    """``fn`` on every target (cluster or client) at once, bounded; one cluster's
    failure is its own result, never the others'. Work within a cluster is itself
    concurrent, so the thread count is about ``max_parallel × CONCURRENCY``."""
    def run(target: T) -> R | KubeError:
        try:
            return fn(target)
        except KubeError as exc:
            return exc

    with ThreadPoolExecutor(max(1, min(max_parallel, len(targets))), thread_name_prefix="fleet") as pool:
        return list(zip(targets, pool.map(run, targets), strict=True))


