"""Server-side apply of an object set, with a dry-run gate and ApplySet pruning.

Order: CustomResourceDefinitions and Namespaces first (waiting until the CRDs are
established), then everything else, each phase concurrently. Before anything is
written, the whole set is dry-run on the server (but what a caller's reading found live
as desired, below); if any object fails, nothing is applied. Objects the server
cannot dry-run yet because the set itself creates their Namespace or CRD are
*deferred*: they are dry-run as soon as the first phase exists, and before any of
them is applied.

A caller that has just read the set's live state (:class:`Observed`, from
:func:`~fleet.kube.diff.diff_set`, with no other writer of the applyset in between)
passes it, and the apply reads nothing it already knows: the parent's record, which
Namespaces exist, what a prune deletes. Its objects found live exactly as desired are
not dry-run: the server admitted them as they are, and applying them changes nothing
(they are still applied, so ownership and admission still hold for them; an admission
rule added since could refuse one, and the apply would then stop part-way and say how
far it got, as it does for any failure once writing began).

Conflicts with another field manager are not forced by default: they surface as
:class:`~fleet.kube.errors.FieldConflict`, and a caller decides to ``force``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fleet.core.objects import Key, Manifest, ObjectRef
from fleet.kube import constants
from fleet.kube.applyset import ApplySet, Member, SetState, list_members, prune, read_parent, write_parent
from fleet.kube.client import APPLY_PATCH, KubeClient
from fleet.kube.discovery import Resource
from fleet.kube.errors import KubeError, NotFound, Timeout, UnknownKind
from fleet.kube.objects import CRD_GROUP_KIND, NAMESPACE_GROUP_KIND, condition, crd_defines, is_first_phase, refs_of
from fleet.kube.pool import run_all, worker_pool

logger = logging.getLogger(__name__)


@dataclass
class Item:
    """One object of the set: its identity, its mapping (once known) and the body we send."""

    ref: ObjectRef
    body: Manifest
    resource: Resource | None = None
    deferred: bool = False  # dry-run must wait for the first phase (its Namespace or CRD)
    written: bool = False  # the API server acknowledged the real (not dry-run) apply
    live: Manifest | None = None  # the server's answer to the real apply: the object right after it


@dataclass(frozen=True)
class Observed:
    """A set's live state as a diff read it, for an apply of the same set to use instead
    of reading it again. Sound only while nobody else writes the applyset in between:
    the rollout pipeline reads and applies in one run holding the cluster's workspace,
    the one place Fleet writes a cluster's applyset from."""

    applyset: ApplySet
    keys: frozenset[Key]  # every object of the set it was read for
    parent: SetState | None  # the parent's record (None: no parent yet)
    unchanged: frozenset[Key]  # live exactly as desired: every field we set holds our value
    absent: frozenset[Key]  # not on the cluster
    prunable: tuple[Member, ...]  # members no longer desired that we applied: what a prune deletes

    def covers(self, items: list[Item], applyset: ApplySet) -> bool:
        return applyset == self.applyset and self.keys == {item.ref.key for item in items}


@dataclass
class ApplyResult:
    cluster: str
    dry_run: bool
    applied: list[ObjectRef] = field(default_factory=list)
    pruned: list[ObjectRef] = field(default_factory=list)
    deferred: list[ObjectRef] = field(default_factory=list)
    unchanged: list[ObjectRef] = field(default_factory=list)  # not dry-run: live as desired already
    # The server's answers to the real apply, by ObjectRef.key: what health assesses first.
    live: dict[Key, Manifest] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "dry_run": self.dry_run,
                **{name: [str(ref) for ref in getattr(self, name)]
                   for name in ("applied", "pruned", "deferred", "unchanged")}}


def plan(client: KubeClient, objects: Iterable[Manifest], applyset: ApplySet) -> list[Item]:
    """Validate the set and map each object; kinds defined by a CRD in the set stay
    unmapped until that CRD is established; any other unknown kind is an error."""
    objects = list(objects)
    refs = refs_of(objects, cluster=client.cluster)
    defined = {crd_defines(obj) for obj, ref in zip(objects, refs, strict=True) if ref.group_kind == CRD_GROUP_KIND}
    items = []
    for obj, ref in zip(objects, refs, strict=True):
        try:
            resource, ref = client.discovery.resolve(ref)
        except UnknownKind:
            if ref.group_kind not in defined:
                raise
            resource = None
        items.append(Item(ref, applyset.label(obj, ref), resource))
    return items


def apply_set(client: KubeClient, objects: Iterable[Manifest], *, applyset: ApplySet = ApplySet(),
              dry_run: bool = False, force: bool = False, prune_missing: bool = True,
              validated: bool = False, observed: Observed | None = None) -> ApplyResult:
    """Apply (or with ``dry_run`` only validate) ``objects`` as the cluster's applyset.

    ``validated``: the caller has just dry-run this very set (the rollout pipeline's
    dry-run step, moments before, in the same job), so the pre-write dry-run would
    only repeat it; objects deferred then are still dry-run before they are written.
    ``observed``: the caller's reading of this very set moments before (see
    :class:`Observed`); one read for another set or applyset is ignored.

    Raises the first :class:`KubeError` (all of them in ``.failures``); on failure the
    applyset's parent keeps the superset of kinds, so nothing applied is orphaned. A
    failure once writing began says how far it got in its ``detail["partial"]``: the
    objects the server acknowledged and those it did not (never sent, refused, or lost
    in flight: a request the network dropped may or may not have been applied).
    """
    result = ApplyResult(client.cluster, dry_run)
    items = plan(client, objects, applyset)
    if observed is not None and not observed.covers(items, applyset):
        observed = None
    unchanged = observed.unchanged if observed else frozenset()
    result.unchanged = [item.ref for item in items if item.ref.key in unchanged]
    with worker_pool(client.cluster) as pool:
        _dry_run_what_can_be(client, items, pool, force, send=not validated or dry_run, observed=observed)
        result.applied = [item.ref for item in items if not item.deferred and item.ref.key not in unchanged]
        result.deferred = [item.ref for item in items if item.deferred]
        if dry_run and not prune_missing:
            return result
        previous = observed.parent if observed else read_parent(client, applyset)
        wanted = SetState.of((item.ref for item in items), applyset)
        recorded = previous.union(wanted) if previous else wanted
        if dry_run:
            result.pruned = _prune(client, applyset, recorded, items, pool, dry_run=True, observed=observed)
            return result
        if recorded != previous:  # widen first, so an interrupted run orphans nothing
            write_parent(client, applyset, recorded, create_namespace=previous is None)
        try:
            _apply_in_order(client, applyset, items, pool, force)
        except KubeError as exc:
            exc.detail["partial"] = _progress(items)
            raise
        result.applied, result.deferred = [item.ref for item in items], []
        result.live = {item.ref.key: item.live for item in items if item.live is not None}
        if prune_missing:
            result.pruned = _prune(client, applyset, recorded, items, pool, dry_run=False, observed=observed)
            if recorded != wanted:
                write_parent(client, applyset, wanted, create_namespace=False)
    logger.info("cluster %s: applied %d objects, pruned %d (applyset %s)", client.cluster,
                len(result.applied), len(result.pruned), applyset.name)
    return result


def _progress(items: list[Item]) -> dict[str, Any]:
    written = [str(item.ref) for item in items if item.written]
    return {"written": len(written), "total": len(items), "written_objects": written[:100],
            "unconfirmed_objects": [str(item.ref) for item in items if not item.written][:100]}


def _dry_run_what_can_be(client: KubeClient, items: list[Item], pool: ThreadPoolExecutor,
                         force: bool, send: bool, observed: Observed | None) -> None:
    """Dry-run every item whose kind is served and whose Namespace exists (unless not
    ``send``), but those ``observed`` found unchanged; mark the others deferred. Any
    failure is raised before anything has been written."""
    created = [item.ref for item in items if item.ref.group_kind == NAMESPACE_GROUP_KIND]
    if observed is not None:
        absent = {ref.name for ref in created if ref.key in observed.absent}
    else:
        names = [ref.name for ref in created]
        absent = {name for name, found in zip(names, run_all(pool, lambda n: _exists(client, n), names), strict=True)
                  if not found}
    for item in items:
        item.deferred = item.resource is None or item.ref.namespace in absent
    if send:
        unchanged = observed.unchanged if observed else frozenset()
        run_all(pool, lambda i: _patch(client, i, force=force, dry_run=True),
                [item for item in items if not item.deferred and item.ref.key not in unchanged])


def _apply_in_order(client: KubeClient, applyset: ApplySet, items: list[Item], pool: ThreadPoolExecutor,
                    force: bool) -> None:
    """CRDs and Namespaces, then (once the CRDs are established and the deferred
    objects pass their dry-run) everything else."""
    first = [item for item in items if is_first_phase(item.ref)]
    run_all(pool, lambda i: _patch(client, i, force=force, dry_run=False), first)
    _wait_established(client, [i for i in first if i.ref.group_kind == CRD_GROUP_KIND], pool)
    rest = [item for item in items if not is_first_phase(item.ref)]
    deferred = [item for item in rest if item.deferred]
    for item in deferred:
        if item.resource is None:
            item.resource, item.ref = _resolve_when_served(client, item.ref)
            item.body = applyset.label(item.body, item.ref)
    run_all(pool, lambda i: _patch(client, i, force=force, dry_run=True), deferred)
    run_all(pool, lambda i: _patch(client, i, force=force, dry_run=False), rest)


def _prune(client: KubeClient, applyset: ApplySet, recorded: SetState, items: list[Item],
           pool: ThreadPoolExecutor, *, dry_run: bool, observed: Observed | None) -> list[ObjectRef]:
    """``observed`` listed the members of ``recorded`` (its parent's kinds and this set's)
    already, and what the apply wrote since is all in the set: its prunable members are
    what a listing now would find to delete."""
    members = observed.prunable if observed else list_members(client, applyset, recorded, pool).values()
    return prune(client, members, {item.ref.key for item in items}, pool, dry_run=dry_run)


def _patch(client: KubeClient, item: Item, *, force: bool, dry_run: bool) -> Manifest:
    assert item.resource is not None
    query = {"fieldManager": constants.FIELD_MANAGER, "fieldValidation": "Strict",
             "force": "true" if force else "false"}
    if dry_run:
        query["dryRun"] = "All"
    live = client.request("PATCH", item.resource.path(item.ref.namespace, item.ref.name),
                          body=item.body, content_type=APPLY_PATCH, query=query, obj=item.ref)
    if not dry_run:
        item.written, item.live = True, live
    return live


def _exists(client: KubeClient, namespace: str) -> bool:
    try:
        client.get(f"/api/v1/namespaces/{namespace}")
    except NotFound:
        return False
    return True


def _resolve_when_served(client: KubeClient, ref: ObjectRef) -> tuple[Resource, ObjectRef]:
    """An established CRD's group-version reaches discovery a moment later: retry."""
    deadline, delay = time.monotonic() + constants.CRD_ESTABLISHED_TIMEOUT, 0.1
    while True:
        try:
            return client.discovery.resolve(ref)
        except UnknownKind:
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _wait_established(client: KubeClient, crds: list[Item], pool: ThreadPoolExecutor) -> None:
    """Poll until every CRD has ``Established=True`` (its kinds are then served); what
    was read is then each CRD's latest known state."""
    deadline = time.monotonic() + constants.CRD_ESTABLISHED_TIMEOUT
    pending, delay = crds, 0.1
    while pending:
        live = run_all(pool, lambda i: client.get(i.resource.path(name=i.ref.name), obj=i.ref), pending)
        for item, obj in zip(pending, live, strict=True):
            item.live = obj
        pending = [item for item, obj in zip(pending, live, strict=True)
                   if (condition(obj, "Established") or {}).get("status") != "True"]
        if pending and time.monotonic() > deadline:
            raise Timeout(f"not established after {constants.CRD_ESTABLISHED_TIMEOUT:.0f}s",
                          cluster=client.cluster, obj=pending[0].ref)
        if pending:
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

