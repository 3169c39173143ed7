"""What the gate reads of the target cluster, so Gatekeeper templates judge an apply as
Gatekeeper on that cluster would: live objects, Namespaces, ``data.inventory``, identity.

Read through the kube adapter at gate time, one decision at a time (so as fresh as the
decision; nothing is cached but Fleet's identity, for ``IDENTITY_TTL``), one paged
list per kind across the cluster:

- the kinds of the release and of what the apply prunes (for ``oldObject`` and
  ``DELETE`` reviews, and each kind's plural and scope, from discovery);
- Namespaces (labels for ``namespaceSelector``, ``namespaceObject``); a Namespace in
  the release wins over the live one;
- the kinds the applicable sets sync (``Bundle.sync``: Gatekeeper's ``Config``,
  ``SyncSet`` and ``requires-sync-data``; of an annotation's interchangeable kinds, each
  one the cluster serves). ``data.inventory`` is those live objects with the release
  applied over them: the release's objects of those kinds replace or add, the pruned
  ones go; namespaces the Config exempts from ``sync`` are left out.

A synced kind the cluster does not serve, or that Fleet's credentials may not list, is
an error of the sets that sync it (they fail closed unless set to fail open), never a
silently empty inventory. Fleet's identity is the cluster's answer to a
``SelfSubjectReview`` for Fleet's credentials (Kubernetes 1.28+), else ``fleet``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleet.core.objects import Key, ObjectRef
from fleet.inventory.models import Cluster
from fleet.kube.client import KubeClient, client_for
from fleet.kube.discovery import Resource
from fleet.kube.errors import KubeError, NotFound, UnknownKind
from fleet.policy.bundle import Bundle
from fleet.policy.errors import PolicyError
from fleet.policy.gatekeeper.match import namespace_excluded
from fleet.policy.gatekeeper.review import DEFAULT_USER
from fleet.policy.gatekeeper.templates import GVK
from fleet.policy.inputs import Admission, namespaces_of, placed

IDENTITY_TTL = 600.0
NAMESPACE_GVK: GVK = ("", "v1", "Namespace")
PAGE = 500
_identities: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
_identities_lock = threading.Lock()


@dataclass
class ClusterState:
    """One decision's reading of the cluster."""

    live: dict[Key, dict[str, Any]] = field(default_factory=dict)  # by ObjectRef.key
    synced: list[dict[str, Any]] = field(default_factory=list)
    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    plurals: dict[tuple[str, str], str] = field(default_factory=dict)
    namespaced: dict[tuple[str, str], bool] = field(default_factory=dict)
    user_info: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_USER))
    unreadable: dict[GVK, str] = field(default_factory=dict)  # synced kind -> why it could not be read

    def sync_error(self, bundle: Bundle) -> PolicyError | None:
        """Why ``bundle``'s inventory is incomplete: a kind it syncs that could not be
        read, or a requirement none of whose kinds could."""
        for gvk in sorted(bundle.sync.kinds):
            if gvk in self.unreadable:
                return self._error(gvk, self.unreadable[gvk])
        for kind, requirement in bundle.sync.requirements:
            if requirement and all(gvk in self.unreadable for gvk in requirement):
                gvk = min(requirement)
                return self._error(gvk, f"{self.unreadable[gvk]} (template {kind} requires one of "
                                        + ", ".join("/".join(g) for g in sorted(requirement)) + ")")
        return None

    @staticmethod
    def _error(gvk: GVK, reason: str) -> PolicyError:
        return PolicyError(f"cannot sync {'/'.join(gvk)} into data.inventory: {reason}", code="input")


def sync_kinds(bundles: Iterable[Bundle]) -> set[GVK]:
    """Every kind some bundle syncs; of a requirement, every alternative."""
    kinds: set[GVK] = set()
    for bundle in bundles:
        kinds |= bundle.sync.kinds
        for _, requirement in bundle.sync.requirements:
            kinds |= requirement
    return kinds


def _describe(client: KubeClient, group: str, version: str, kind: str, state: ClusterState) -> Resource:
    """The kind's plural and scope, from discovery (raises :class:`UnknownKind`)."""
    resource = client.discovery.resource(group, version, kind)
    state.plurals[(group, kind)] = resource.plural
    state.namespaced[(group, kind)] = resource.namespaced
    return resource


def _namespaces(client: KubeClient, objects: Sequence[Mapping[str, Any]], state: ClusterState,
                ) -> dict[str, dict[str, Any]]:
    """The live Namespaces the objects are placed in (those :attr:`ClusterState.live`
    holds already, the others read one by one; one that is not there is left out)."""
    names = {(placed(dict(obj), state.namespaced).get("metadata") or {}).get("namespace") for obj in objects}
    found = {}
    for name in sorted(n for n in names if n):
        live = state.live.get(("", "Namespace", "", name))
        if live is None:
            try:
                live = {"apiVersion": "v1", "kind": "Namespace", **client.get(f"/api/v1/namespaces/{name}")}
            except NotFound:
                continue
        found[name] = live
    return found


def _list(client: KubeClient, group: str, version: str, kind: str, state: ClusterState) -> list[dict[str, Any]]:
    resource = _describe(client, group, version, kind, state)
    api_version = f"{group}/{version}" if group else version
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": PAGE}
    while True:
        body = client.get(resource.path(), query=query)
        items += [{"apiVersion": api_version, "kind": kind, **item} for item in body.get("items", [])]
        token = (body.get("metadata") or {}).get("continue")
        if not token:
            return items
        query = {"limit": PAGE, "continue": token}


def _identity(client: KubeClient) -> dict[str, Any]:
    key = (client.cluster, client.server)
    with _identities_lock:
        cached = _identities.get(key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    try:
        body = client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                              body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        user = (body.get("status") or {}).get("userInfo") or dict(DEFAULT_USER)
    except KubeError:
        user = dict(DEFAULT_USER)  # an older server, or no permission: Fleet's own name
    with _identities_lock:
        _identities[key] = (time.monotonic() + IDENTITY_TTL, user)
    return user


def read_state(cluster: Cluster, objects: Sequence[Mapping[str, Any]], deployed: Sequence[Mapping[str, Any]],
               synced: set[GVK], *, known: Mapping[Key, dict[str, Any]] | None = None) -> ClusterState:
    """Read what the reviews and the inventory need. A kind of the release the cluster
    does not serve yet (its CRD comes with the release) has no live objects; any other
    failure to read the release's kinds or the Namespaces propagates as a KubeError (the
    gate cannot judge without them).

    ``known``: the live objects of the release and of what the apply prunes, by
    :attr:`ObjectRef.key`, as the caller has just read them (the pipeline's diff: one of
    them missing is not on the cluster). Then none of those kinds is listed across the
    cluster (the lists grow with everything else the cluster runs), and of the Namespaces
    only those the reviews place objects in are read."""
    client = client_for(cluster)
    state = ClusterState(user_info=_identity(client))
    wanted = {(ObjectRef.of(o).group, ObjectRef.of(o).version, o["kind"]) for o in [*objects, *deployed]}
    wanted.add(NAMESPACE_GVK)
    listed: dict[GVK, list[dict[str, Any]]] = {}
    for gvk in sorted(wanted):
        try:
            if known is None:
                listed[gvk] = _list(client, *gvk, state)
            else:
                _describe(client, *gvk, state)
        except UnknownKind:
            continue
        state.live.update((ObjectRef.of(item).key, item) for item in listed.get(gvk, []))
    if known is None:
        state.namespaces = namespaces_of(listed.get(NAMESPACE_GVK, []))
    else:
        state.live.update(known)
        state.namespaces = _namespaces(client, [*objects, *deployed], state)
    for gvk in sorted(synced):
        try:
            state.synced += listed[gvk] if gvk in listed else _list(client, *gvk, state)
        except KubeError as exc:
            state.unreadable[gvk] = exc.message
    return state


def admission_of(state: ClusterState, objects: Sequence[Mapping[str, Any]], pruned: Sequence[Key], *,
                 sync_excluded: Sequence[str] = (), dry_run: bool = False) -> Admission:
    """The admission context for ``objects`` applied over ``state``: the inventory is the
    synced live objects with the release applied over them."""
    synced_kinds = {(ObjectRef.of(o).group, o["kind"]) for o in state.synced}
    gone = set(pruned)
    inventory: dict[Key, dict[str, Any]] = {ObjectRef.of(o).key: o for o in state.synced}
    for obj in objects:
        if ObjectRef.of(obj).group_kind in synced_kinds:
            applied = placed(obj, state.namespaced)
            inventory[ObjectRef.of(applied).key] = applied
    kept = tuple(o for key, o in inventory.items() if key not in gone and not (
        sync_excluded and namespace_excluded(sync_excluded, o)))
    return Admission(deleted=tuple(state.live[key] for key in pruned if key in state.live),
                     inventory=kept, namespaces={**state.namespaces, **namespaces_of(objects)},
                     user_info=state.user_info, dry_run=dry_run, plurals=state.plurals,
                     namespaced=state.namespaced)
