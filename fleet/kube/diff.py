"""Live state against desired: a normalised, structured diff, the basis of drift.

Only the fields we set count. The comparison walks the *desired* object and looks
each field up in the live one, so server defaults, status, ``managedFields`` and
annotations other tools add never show up. Lists of maps are matched by their merge
key (``name``, ``containerPort``…) where they have one, as server-side apply merges
them; resource quantities compare by value (``0.5`` equals ``500m``); a zero value
(``false``, ``0``, ``""``, ``{}``) equals an absent field, which is how the API
server stores it. Secret values never appear: they are replaced by a keyed hash,
enough to see *that* a value changed and whether two clusters hold the same one.

Reading is cheap: one list per kind and namespace by the ApplySet label, instead of
one GET per object, plus a GET for desired objects not (yet) labelled, but none for an
object in a Namespace of the set that is not there (nor is anything in it). What was
read is kept for an apply of the same set (:class:`~fleet.kube.apply.Observed`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor
from contextlib import ExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from kubernetes.utils import parse_quantity

from fleet.core.objects import Manifest, ObjectRef
from fleet.kube.apply import Item, Observed, plan
from fleet.kube.applyset import ApplySet, SetState, list_members, read_parent
from fleet.kube.client import KubeClient
from fleet.kube.errors import NotFound
from fleet.kube.objects import NAMESPACE_GROUP_KIND
from fleet.kube.pool import run_all, worker_pool

IGNORED_METADATA = frozenset({"managedFields", "resourceVersion", "uid", "generation",
                              "creationTimestamp", "selfLink", "deletionTimestamp",
                              "deletionGracePeriodSeconds"})
QUANTITY_MAPS = frozenset({"limits", "requests", "hard", "capacity", "allocatable"})
MERGE_KEYS = ("name", "mountPath", "devicePath", "containerPort", "port", "ip")
SECRET_FIELDS = ("data", "stringData")


Segment = str | int | tuple[str, Any]  # a map key, a list index, a list item by (merge key, value)


@dataclass(frozen=True)
class FieldChange:
    """``live`` is None when the field is absent from the live object. ``segments`` is
    ``path`` split exactly (a key may hold dots: ``app.kubernetes.io/name``), for rules
    and field ownership."""

    path: str
    desired: Any
    live: Any
    segments: tuple[Segment, ...] = field(default=(), compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "desired": self.desired, "live": self.live}


@dataclass(frozen=True)
class ObjectDiff:
    """``state``: "added" (not on the cluster), "changed", "unchanged", or "removed"
    (an applyset member no longer desired: what the next prune deletes)."""

    ref: ObjectRef
    state: str
    changes: tuple[FieldChange, ...] = ()
    # The live object as read (None when absent): its managedFields say who changed what.
    live: Manifest | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"object": str(self.ref), "state": self.state,
                "changes": [change.as_dict() for change in self.changes]}


@dataclass(frozen=True)
class DiffReport:
    cluster: str
    objects: list[ObjectDiff]
    # What was read, for an apply of the same set moments later (None: not from diff_set).
    observed: Observed | None = field(default=None, compare=False, repr=False)

    @property
    def drifted(self) -> list[ObjectDiff]:
        return [diff for diff in self.objects if diff.state != "unchanged"]

    @property
    def in_sync(self) -> bool:
        return not self.drifted

    def as_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "in_sync": self.in_sync,
                "objects": [diff.as_dict() for diff in self.objects]}


def desired_view(obj: Mapping[str, Any]) -> Manifest:
    """What we compare: the manifest without status and server-owned metadata, with a
    Secret's ``stringData`` folded into ``data`` as the API server stores it."""
    # apiVersion and kind are the object's identity, already matched (and list items
    # read from the server carry neither).
    view = {key: value for key, value in obj.items() if key not in ("status", "apiVersion", "kind")}
    view["metadata"] = {key: value for key, value in (obj.get("metadata") or {}).items()
                        if key not in IGNORED_METADATA}
    if obj.get("kind") == "Secret" and view.get("stringData"):
        view["data"] = {**(view.get("data") or {}),
                        **{key: base64.b64encode(str(value).encode()).decode()
                           for key, value in view["stringData"].items()}}
        del view["stringData"]
    return view


def compare(ref: ObjectRef, desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> ObjectDiff:
    if live is None:
        return ObjectDiff(ref, "added")
    changes: list[FieldChange] = []
    _walk(desired_view(desired), live, "", (), changes, quantity=False)
    if ref.group_kind == ("", "Secret"):
        changes = [_redact(change) if change.segments and change.segments[0] in SECRET_FIELDS
                   else change for change in changes]
    return ObjectDiff(ref, "changed" if changes else "unchanged", tuple(changes), live)


def _zero(value: Any) -> bool:
    return value is None or value is False or (not isinstance(value, bool) and value == 0) \
        or value in ("", {}, [])


def _walk(desired: Any, live: Any, path: str, segments: tuple[Segment, ...], changes: list[FieldChange], *,
          quantity: bool) -> None:
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            changes.append(FieldChange(path, desired, live, segments))
            return
        for key, value in desired.items():
            sub = f"{path}.{key}" if path else key
            if key not in live:
                if not _zero(value):
                    changes.append(FieldChange(sub, value, None, (*segments, key)))
                continue
            _walk(value, live[key], sub, (*segments, key), changes, quantity=quantity or key in QUANTITY_MAPS)
    elif isinstance(desired, list):
        _walk_list(desired, live, path, segments, changes, quantity=quantity)
    elif not _same_scalar(desired, live, quantity):
        changes.append(FieldChange(path, desired, live, segments))


def _walk_list(desired: list, live: Any, path: str, segments: tuple[Segment, ...], changes: list[FieldChange], *,
               quantity: bool) -> None:
    if not isinstance(live, list):
        if not (_zero(desired) and live is None):
            changes.append(FieldChange(path, desired, live, segments))
        return
    key = next((k for k in MERGE_KEYS if desired and all(isinstance(i, Mapping) and k in i
                                                          for i in desired)), None)
    if key is None:
        if len(desired) != len(live):
            changes.append(FieldChange(path, desired, live, segments))
            return
        for index, (want, have) in enumerate(zip(desired, live, strict=True)):  # lengths equal here
            _walk(want, have, f"{path}[{index}]", (*segments, index), changes, quantity=quantity)
        return
    by_key = {item.get(key): item for item in live if isinstance(item, Mapping)}
    for item in desired:
        sub, at = f"{path}[{key}={item[key]}]", (*segments, (key, item[key]))
        if item[key] in by_key:
            _walk(item, by_key[item[key]], sub, at, changes, quantity=quantity)
        else:
            changes.append(FieldChange(sub, item, None, at))


def _same_scalar(desired: Any, live: Any, quantity: bool) -> bool:
    if desired == live and type(desired) is type(live):
        return True
    if quantity:
        try:
            return Decimal(parse_quantity(desired)) == Decimal(parse_quantity(live))
        except (ValueError, TypeError, ArithmeticError):
            return False
    return live is None and _zero(desired)


def redact(value: Any) -> Any:
    """A Secret value as a keyed hash: equal values match, the value itself never shows."""
    if isinstance(value, Mapping):
        return {key: redact(inner) for key, inner in value.items()}
    if value is None:
        return None
    digest = hmac.new(settings.SECRET_KEY.encode(), str(value).encode(), hashlib.sha256).hexdigest()
    return f"(secret hmac:{digest[:12]})"


def _redact(change: FieldChange) -> FieldChange:
    return FieldChange(change.path, redact(change.desired), redact(change.live), change.segments)


def diff_set(client: KubeClient, objects: Iterable[Manifest], *,
             applyset: ApplySet = ApplySet(), pool: Executor | None = None) -> DiffReport:
    """Compare ``objects`` (labelled as :func:`~fleet.kube.apply.apply_set` would send
    them) with the cluster, and report members of the set no longer desired.

    ``pool``: where the reads run (a fleet-wide scan, already parallel across clusters,
    passes one that runs them in turn); by default a pool of this cluster's own."""
    items = plan(client, objects, applyset)
    with ExitStack() as owned:
        pool = pool or owned.enter_context(worker_pool(client.cluster))
        wanted = SetState.of((item.ref for item in items), applyset)
        recorded = read_parent(client, applyset)
        state = recorded.union(wanted) if recorded else wanted
        versions = {item.ref.group_kind: item.ref.version for item in items if item.resource}
        members = list_members(client, applyset, state, pool, versions)
        live = {key: member.live for key, member in members.items()}
        unlisted = [item for item in items if item.resource is not None and (
            item.ref.key not in members or members[item.ref.key].ref.version != item.ref.version)]
        # Namespaces first: what would live in one that is not there is not there either.
        namespaces = [item for item in unlisted if item.ref.group_kind == NAMESPACE_GROUP_KIND]
        _read_into(live, client, pool, namespaces)
        gone = {item.ref.name for item in namespaces if live[item.ref.key] is None}
        _read_into(live, client, pool, [item for item in unlisted
                                        if item.ref.group_kind != NAMESPACE_GROUP_KIND
                                        and item.ref.namespace not in gone])
    desired_keys = {item.ref.key for item in items}
    diffs = [compare(item.ref, item.body, live.get(item.ref.key)) for item in items]
    prunable = [member for key, member in sorted(members.items()) if key not in desired_keys and member.ours]
    diffs += [ObjectDiff(member.ref, "removed", live=member.live) for member in prunable]
    observed = Observed(applyset, frozenset(desired_keys), recorded,
                        unchanged=frozenset(d.ref.key for d in diffs if d.state == "unchanged"),
                        absent=frozenset(d.ref.key for d in diffs if d.state == "added"), prunable=tuple(prunable))
    return DiffReport(client.cluster, diffs, observed)


def _read_into(live: dict[tuple, Manifest | None], client: KubeClient, pool: Executor, items: list[Item]) -> None:
    for item, obj in zip(items, run_all(pool, lambda i: _get(client, i), items), strict=True):
        live[item.ref.key] = obj


def _get(client: KubeClient, item: Item) -> Manifest | None:
    assert item.resource is not None
    try:
        return client.get(item.resource.path(item.ref.namespace, item.ref.name), obj=item.ref)
    except NotFound:
        return None
