"""Tracking what Fleet applied to a cluster, the way kubectl's ApplySet does (KEP-3659).

A parent Secret (``fleet-system/applyset-<name>``) carries the set's id label, our
tooling annotation, the group-kinds its members have (``contains-group-kinds``) and
the namespaces beyond its own (``additional-namespaces``). Every member carries
``applyset.kubernetes.io/part-of=<id>``. Pruning lists each recorded group-kind by
that label and deletes members no longer desired, and only those our field manager
applied: an object someone else labelled by hand is left alone.

Like kubectl, the parent is widened to the superset of old and new kinds before an
apply and narrowed after a successful prune, so an interrupted run leaks nothing.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from fleet.core.objects import Manifest, ObjectRef
from fleet.kube import constants
from fleet.kube.client import APPLY_PATCH, KubeClient
from fleet.kube.errors import ConfigRefused, InvalidObject, NotFound, UnknownKind
from fleet.kube.objects import is_first_phase
from fleet.kube.pool import run_all

PART_OF = "applyset.kubernetes.io/part-of"
ID_LABEL = "applyset.kubernetes.io/id"
TOOLING = "applyset.kubernetes.io/tooling"
GROUP_KINDS = "applyset.kubernetes.io/contains-group-kinds"
NAMESPACES = "applyset.kubernetes.io/additional-namespaces"
PARENT_FIELD_MANAGER = f"{constants.FIELD_MANAGER}-applyset"  # as kubectl: "<tool>-applyset"

GroupKind = tuple[str, str]
logger = logging.getLogger(__name__)


def applyset_id(name: str, namespace: str, kind: str, group: str) -> str:
    """kubectl's id: ``applyset-<base64url(sha256(name.namespace.kind.group))>-v1``."""
    digest = hashlib.sha256(".".join((name, namespace, kind, group)).encode()).digest()
    return f"applyset-{base64.urlsafe_b64encode(digest).decode().rstrip('=')}-v1"


def format_group_kind(group_kind: GroupKind) -> str:
    group, kind = group_kind
    return f"{kind}.{group}" if group else kind


def parse_group_kind(text: str) -> GroupKind:
    kind, _, group = text.partition(".")
    return (group, kind)


@dataclass(frozen=True)
class ApplySet:
    """One applied set per cluster and name; its parent is a Secret, kubectl's default."""

    name: str = "fleet"
    namespace: str = constants.SYSTEM_NAMESPACE

    @property
    def parent_name(self) -> str:
        return f"applyset-{self.name}"

    @cached_property
    def id(self) -> str:
        return applyset_id(self.parent_name, self.namespace, "Secret", "")

    @property
    def selector(self) -> str:
        return f"{PART_OF}={self.id}"

    def label(self, obj: Manifest, ref: ObjectRef) -> Manifest:
        """A copy of ``obj`` carrying our part-of label (and its settled namespace)."""
        metadata = dict(obj.get("metadata") or {})
        labels = dict(metadata.get("labels") or {})
        if labels.get(PART_OF, self.id) != self.id:
            raise InvalidObject(f"already carries label {PART_OF}={labels[PART_OF]}; another "
                                "tool's ApplySet owns it", obj=ref)
        labels[PART_OF] = self.id
        metadata["labels"] = labels
        if ref.namespace:
            metadata["namespace"] = ref.namespace
        else:
            metadata.pop("namespace", None)
        return {**obj, "metadata": metadata}


@dataclass
class SetState:
    """What the parent records: member group-kinds and namespaces."""

    group_kinds: set[GroupKind] = field(default_factory=set)
    namespaces: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, refs: Iterable[ObjectRef], applyset: ApplySet) -> SetState:
        """The state ``refs`` need; like the annotation, namespaces leave out the parent's."""
        refs = list(refs)
        return cls({ref.group_kind for ref in refs},
                   {ref.namespace for ref in refs if ref.namespace not in ("", applyset.namespace)})

    def union(self, other: SetState) -> SetState:
        return SetState(self.group_kinds | other.group_kinds, self.namespaces | other.namespaces)


def _parent_path(applyset: ApplySet) -> str:
    return f"/api/v1/namespaces/{applyset.namespace}/secrets/{applyset.parent_name}"


def read_parent(client: KubeClient, applyset: ApplySet) -> SetState | None:
    """The recorded state, or None when there is no parent yet. A parent another tool
    manages, or one whose id label is wrong, is refused rather than adopted."""
    try:
        parent = client.get(_parent_path(applyset), obj=f"ApplySet parent {applyset.parent_name}")
    except NotFound:
        return None
    metadata = parent.get("metadata") or {}
    annotations, labels = metadata.get("annotations") or {}, metadata.get("labels") or {}
    where = f"ApplySet parent Secret {applyset.namespace}/{applyset.parent_name}"
    tooling = annotations.get(TOOLING, "")
    if tooling.rpartition("/")[0] != constants.TOOLING.rpartition("/")[0]:
        raise ConfigRefused(f"{where} is managed by tooling {tooling or '(none)'!r}, not Fleet",
                            cluster=client.cluster)
    if labels.get(ID_LABEL) != applyset.id:
        raise ConfigRefused(f"{where} has the wrong {ID_LABEL} label", cluster=client.cluster)
    return SetState({parse_group_kind(gk) for gk in annotations.get(GROUP_KINDS, "").split(",") if gk},
                    {ns for ns in annotations.get(NAMESPACES, "").split(",") if ns})


def write_parent(client: KubeClient, applyset: ApplySet, state: SetState, *,
                 create_namespace: bool) -> None:
    """Record ``state`` on the parent, first creating its namespace if asked."""
    if create_namespace:
        client.request("PATCH", f"/api/v1/namespaces/{applyset.namespace}", body={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": applyset.namespace}},
            content_type=APPLY_PATCH, query={"fieldManager": PARENT_FIELD_MANAGER},
            obj=f"Namespace {applyset.namespace}")
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": applyset.parent_name, "namespace": applyset.namespace,
        "labels": {ID_LABEL: applyset.id},
        "annotations": {
            TOOLING: constants.TOOLING,
            GROUP_KINDS: ",".join(sorted(format_group_kind(gk) for gk in state.group_kinds)),
            NAMESPACES: ",".join(sorted(state.namespaces)),
        }}}
    # Forced, as kubectl retries it: the parent is ours by construction (id + tooling).
    client.request("PATCH", _parent_path(applyset), body=body, content_type=APPLY_PATCH,
                   query={"fieldManager": PARENT_FIELD_MANAGER, "force": "true"},
                   obj=f"ApplySet parent {applyset.parent_name}")


@dataclass(frozen=True)
class Member:
    ref: ObjectRef
    live: Manifest

    @property
    def ours(self) -> bool:
        """Server-side applied by our field manager, not merely labelled: the only
        members we prune."""
        return any(entry.get("manager") == constants.FIELD_MANAGER and entry.get("operation") == "Apply"
                   for entry in self.live["metadata"].get("managedFields") or [])


def list_members(client: KubeClient, applyset: ApplySet, state: SetState, pool: ThreadPoolExecutor,
                 versions: Mapping[GroupKind, str] | None = None) -> dict[tuple, Member]:
    """Every live member of the set, keyed by :attr:`ObjectRef.key`. A group-kind is
    read at ``versions[gk]`` when given (the version we apply it at), else at its
    preferred version; a kind the cluster no longer serves has no members left."""
    namespaces = sorted(state.namespaces | {applyset.namespace})
    requests: list[tuple[str, str, str, str]] = []  # (group, version, kind, path)
    for group, kind in sorted(state.group_kinds):
        try:
            version = (versions or {}).get((group, kind))
            resource = (client.discovery.resource(group, version, kind) if version
                        else client.discovery.for_group_kind(group, kind))
        except UnknownKind:
            continue
        paths = [resource.path(ns) for ns in namespaces] if resource.namespaced else [resource.path()]
        requests += [(group, resource.version, kind, path) for path in paths]

    def fetch(request: tuple[str, str, str, str]) -> list[Member]:
        group, version, kind, path = request
        body = client.get(path, query={"labelSelector": applyset.selector})
        return [Member(ObjectRef(group, version, kind, item["metadata"].get("namespace", ""),
                                 item["metadata"]["name"]), item) for item in body.get("items", [])]

    return {member.ref.key: member for batch in run_all(pool, fetch, requests) for member in batch}


def prune(client: KubeClient, members: Iterable[Member], keep: set[tuple], pool: ThreadPoolExecutor,
          *, dry_run: bool) -> list[ObjectRef]:
    """Delete members not in ``keep`` that we applied: workloads first, then the
    Namespaces and CRDs that may contain them. Returns what was (or would be) pruned."""
    doomed = sorted((m for m in members if m.ref.key not in keep and m.ours),
                    key=lambda m: (is_first_phase(m.ref), m.ref))
    if dry_run:
        return [m.ref for m in doomed]
    for last in (False, True):
        run_all(pool, lambda m: _delete(client, m), [m for m in doomed if is_first_phase(m.ref) == last])
    return [m.ref for m in doomed]


def _delete(client: KubeClient, member: Member) -> None:
    resource = client.discovery.resource(member.ref.group, member.ref.version, member.ref.kind)
    # The uid precondition deletes exactly the object we listed, never a newer namesake.
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background",
                            "preconditions": {"uid": member.live["metadata"]["uid"]}}
    try:
        client.request("DELETE", resource.path(member.ref.namespace, member.ref.name), body=body,
                       obj=member.ref)
    except NotFound:
        return  # already gone (a pruned Namespace took it along)
    logger.info("cluster %s: pruned %s (no longer desired)", client.cluster, member.ref)
