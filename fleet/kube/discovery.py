"""Which URL serves a kind: lazy, cached API discovery for one cluster.

Only the group-versions an object set uses are fetched (one request each), then kept
for ``DISCOVERY_TTL`` (clients are cached for the life of a worker, and a CRD may be
removed or gain a version meanwhile). A kind missing from a cached group-version
triggers one re-fetch at once: a CRD applied a moment ago adds kinds to a known group.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleet.core.objects import ObjectRef
from fleet.kube.constants import DISCOVERY_TTL
from fleet.kube.errors import NotFound, UnknownKind

if TYPE_CHECKING:
    from fleet.kube.client import KubeClient


@dataclass(frozen=True)
class Resource:
    """A served resource: the REST mapping of one kind at one version."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str = "", name: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        scope = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{base}{scope}/{self.plural}" + (f"/{name}" if name else "")


class Discovery:
    def __init__(self, client: KubeClient):
        self._client = client
        self._kinds: dict[tuple[str, str], tuple[float, dict[str, Resource]]] = {}
        self._preferred: dict[str, tuple[float, str]] = {"": (float("inf"), "v1")}
        self._lock = threading.Lock()

    def resource(self, group: str, version: str, kind: str, *, obj: object | None = None) -> Resource:
        """The mapping of ``kind`` in ``group/version``, or :class:`UnknownKind`."""
        expires, kinds = self._kinds.get((group, version), (0.0, {}))
        if kind not in kinds or expires < time.monotonic():
            kinds = self._fetch(group, version, obj)
        if kind not in kinds:
            gv = f"{group}/{version}" if group else version
            raise UnknownKind(f"the cluster serves no kind {kind} in {gv}"
                              f"{' (is its CustomResourceDefinition installed?)' if group else ''}",
                              cluster=self._client.cluster, obj=obj)
        return kinds[kind]

    def resolve(self, ref: ObjectRef) -> tuple[Resource, ObjectRef]:
        """The mapping of ``ref`` and ``ref`` with its namespace settled as kubectl does:
        "default" for a namespaced kind without one, none for a cluster-scoped kind."""
        resource = self.resource(ref.group, ref.version, ref.kind, obj=ref)
        namespace = (ref.namespace or "default") if resource.namespaced else ""
        if namespace != ref.namespace:
            ref = ObjectRef(ref.group, ref.version, ref.kind, namespace, ref.name)
        return resource, ref

    def for_group_kind(self, group: str, kind: str) -> Resource:
        """The mapping at the group's preferred version (for kinds named without one)."""
        expires, version = self._preferred.get(group, (0.0, ""))
        if expires < time.monotonic():
            try:
                body = self._client.get(f"/apis/{group}")
            except NotFound:
                raise UnknownKind(f"the cluster serves no API group {group}",
                                  cluster=self._client.cluster) from None
            version = body["preferredVersion"]["version"]
            with self._lock:
                self._preferred[group] = (time.monotonic() + DISCOVERY_TTL, version)
        return self.resource(group, version, kind)

    def _fetch(self, group: str, version: str, obj: object | None) -> dict[str, Resource]:
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            body: dict[str, Any] = self._client.get(path, obj=obj)
        except NotFound:
            gv = f"{group}/{version}" if group else version
            raise UnknownKind(f"the cluster serves no API {gv}"
                              f"{' (is its CustomResourceDefinition installed?)' if group else ''}",
                              cluster=self._client.cluster, obj=obj) from None
        kinds = {entry["kind"]: Resource(group, version, entry["kind"], entry["name"],
                                         bool(entry.get("namespaced")))
                 for entry in body.get("resources", []) if "/" not in entry["name"]}
        with self._lock:
            self._kinds[(group, version)] = (time.monotonic() + DISCOVERY_TTL, kinds)
        return kinds
