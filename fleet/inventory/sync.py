"""``inventory sync``: make the inventory match the clusters-as-code files.

All or nothing: every file is parsed and validated before anything is written, and
the writes happen in one transaction. Fields a file omits among ``paused``,
``pinned``, ``protected`` and ``credentials`` are left as they are (operational
toggles and secrets may be managed elsewhere); everything else is the file's.
Only clusters that came from files are ever pruned, and a file never silently takes
over a cluster created through the API or admin (a later ``--prune`` could then delete
it): that needs ``--adopt``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction

from fleet.core.errors import FleetError
from fleet.core.yaml import YamlError
from fleet.inventory import services
from fleet.inventory.api import ClusterSerializer
from fleet.inventory.choices import ClusterOrigin
from fleet.inventory.clusterfile import ClusterFile, cluster_files, parse_cluster_file
from fleet.inventory.models import Cluster


class SyncError(FleetError):
    """Every problem found, one ``file:line: reason`` per line; nothing was changed."""

    domain = "inventory"
    code = "sync"

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class Change:
    action: str  # create | update | delete | keep (not in files, no --prune)
    name: str
    file: str = ""
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    credentials: Any = services.UNCHANGED
    cluster: Cluster | None = None

    def describe(self) -> str:
        if self.action == "create":
            return f"+ create {self.name} ({self.file})"
        if self.action == "delete":
            return f"- delete {self.name} (its file is gone)"
        if self.action == "keep":
            return f"! {self.name} came from a file that is gone; --prune would delete it"
        details = "; ".join(
            f"{name}: changed" if name == "credentials" else f"{name}: {old!r} -> {new!r}"
            for name, (old, new) in sorted(self.fields.items()))
        return f"~ update {self.name}: {details}"


@dataclass
class SyncPlan:
    changes: list[Change]
    unchanged: list[str]

    @property
    def writes(self) -> list[Change]:
        return [c for c in self.changes if c.action in ("create", "update", "delete")]

    def lines(self) -> list[str]:
        lines = [c.describe() for c in self.changes]
        lines.append(f"= {len(self.unchanged)} unchanged")
        return lines


def _field_changes(cluster: Cluster, data: dict[str, Any], file: ClusterFile) -> dict[str, tuple[Any, Any]]:
    changes = {}
    for name, new in data.items():
        old = getattr(cluster, name)
        if name == "channel":
            old, new = old.name, new.name
        if old != new:
            changes[name] = (old, new)
    if file.credentials is not None and services.credentials_differ(cluster, file.credentials):
        changes["credentials"] = ("(set)" if cluster.has_credentials else "(unset)", "(set)")
    return changes


def _validate(file: ClusterFile, existing: Cluster | None, relative: str, adopt: bool) -> Change:
    if existing is not None and existing.origin != ClusterOrigin.FILE and not adopt:
        raise SyncError([str(file.error("name", f"cluster {file.name!r} was created through the API or admin; "
                                                "this file would take it over (and --prune could later delete "
                                                "it): pass --adopt to let the file manage it"))])
    serializer = ClusterSerializer(instance=existing, data=file.fields)
    if not serializer.is_valid():
        raise SyncError([str(file.error(name, "; ".join(map(str, messages))))
                         for name, messages in serializer.errors.items()])
    data = dict(serializer.validated_data)
    data.update(origin=ClusterOrigin.FILE, source_file=relative)
    credentials = file.credentials if file.credentials is not None else services.UNCHANGED
    if existing is None:
        return Change("create", file.name, relative, data=data, credentials=credentials)
    fields = _field_changes(existing, data, file)
    return Change("update" if fields else "unchanged", file.name, relative, fields, data,
                  credentials, existing)


def plan_sync(directory: Path, *, prune: bool = False, adopt: bool = False) -> SyncPlan:
    """Parse and validate every file, and say what would change; writes nothing."""
    if not directory.is_dir():
        raise SyncError([f"{directory}: not a directory"])
    problems: list[str] = []
    files: list[tuple[ClusterFile, str]] = []
    for path in cluster_files(directory):
        try:
            files.append((parse_cluster_file(path), str(path.relative_to(directory))))
        except YamlError as exc:
            problems.append(str(exc))
    seen: dict[str, str] = {}
    for file, relative in files:
        if file.name in seen:
            problems.append(str(file.error("name", f"cluster {file.name!r} is also defined in {seen[file.name]}")))
        seen.setdefault(file.name, relative)
    existing = {c.name: c for c in Cluster.objects.select_related("channel").filter(name__in=list(seen))}
    changes: list[Change] = []
    unchanged: list[str] = []
    for file, relative in files:
        try:
            change = _validate(file, existing.get(file.name), relative, adopt)
        except SyncError as exc:
            problems.extend(exc.problems)
            continue
        (unchanged.append(change.name) if change.action == "unchanged" else changes.append(change))
    if problems:
        raise SyncError(problems)
    for cluster in Cluster.objects.filter(origin=ClusterOrigin.FILE).exclude(name__in=list(seen)):
        changes.append(Change("delete" if prune else "keep", cluster.name, cluster=cluster))
    return SyncPlan(changes, unchanged)


@transaction.atomic
def apply_sync(plan: SyncPlan) -> dict[str, int]:
    counts = {"create": 0, "update": 0, "delete": 0}
    for change in plan.writes:
        if change.action == "create":
            credentials = None if change.credentials is services.UNCHANGED else change.credentials
            services.create_cluster(change.data, credentials)
        elif change.action == "update":
            services.update_cluster(change.cluster, change.data, change.credentials)
        else:
            services.delete_cluster(change.cluster)
        counts[change.action] += 1
    return counts
