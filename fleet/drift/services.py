"""Drift operations for the API, CLI, console, admin and tasks: scans, the fleet
summary, a cluster's detail and unified diff, heal and acknowledge, modes and rules.

Reads return plain data (dicts and rows) so every interface shows the same thing;
requests that start work (:func:`request_scan`, :func:`request_heal`) check the
actor's role here as well as in the view, record first and enqueue on commit.
"""

from __future__ import annotations

import difflib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from fleet.accounts.roles import Role
from fleet.audit import services as audit
from fleet.core.labels import LabelError, parse_selector
from fleet.drift import heal, modes
from fleet.drift import rules as ignore
from fleet.drift import scan as scanning
from fleet.drift.access import require
from fleet.drift.choices import SEVERITY, Mode, Trigger
from fleet.drift.choices import DriftState as S
from fleet.drift.desired import forget_older_than
from fleet.drift.errors import DriftError
from fleet.drift.models import ClusterDrift, DriftedResource, DriftScan, HealAttempt, IgnoreRule, ModeRule
from fleet.drift.writers import writers
from fleet.inventory.models import Cluster
from fleet.render import cache as render_cache
from fleet.rollouts.deployed import deployed_on

JOINED = 50  # drifted objects of a cluster's detail linked to the API-server audit events that wrote them
SUMMARY_CLUSTERS = 100  # clusters listed in the summary's detail; the totals count them all
TOP = 10


@dataclass(frozen=True)
class Scheduler:
    """How drift enqueues scans: Celery's, installed by the app; tests install their own."""

    scan_cluster: Callable[[int, str], None]
    scan_selector: Callable[[str, str], None]


_scheduler: Scheduler | None = None


def install(scheduler: Scheduler) -> Scheduler | None:
    global _scheduler
    previous, _scheduler = _scheduler, scheduler
    return previous


def scheduler() -> Scheduler:
    if _scheduler is None:
        raise RuntimeError("no drift scheduler is installed (DriftConfig.ready installs Celery's)")
    return _scheduler


def clusters_matching(selector: str = "") -> QuerySet[Cluster]:
    try:
        query = parse_selector(selector or "").to_q("labels")
    except LabelError as exc:
        raise DriftError(f"bad selector: {exc.message}", field="selector") from None
    return Cluster.objects.filter(query).select_related("channel").order_by("name")


# -- scans -----------------------------------------------------------------------------------

def scan(selector: str = "", *, trigger: str = Trigger.SELECTOR,
         progress: Callable[[ClusterDrift], None] | None = None) -> list[ClusterDrift]:
    """Scan every cluster the selector matches, now, in this process."""
    return scanning.scan_clusters(list(clusters_matching(selector)), trigger=trigger, progress=progress)


def scan_by_id(cluster_id: int, *, trigger: str = Trigger.MANUAL) -> ClusterDrift | None:
    cluster = Cluster.objects.select_related("channel").filter(pk=cluster_id).first()
    return scanning.scan_cluster(cluster, trigger=trigger) if cluster else None


def request_scan(cluster: Cluster, *, user=None) -> ClusterDrift:
    """Ask for a scan of ``cluster`` soon (an operator's request); returns its drift row."""
    require(Role.OPERATOR, "scanning a cluster", user)
    drift, _ = ClusterDrift.objects.get_or_create(cluster=cluster)
    cluster_id = cluster.pk
    transaction.on_commit(lambda: scheduler().scan_cluster(cluster_id, Trigger.MANUAL))
    return drift


def request_selector_scan(selector: str, *, user=None) -> int:
    """Ask for a scan of every cluster the selector matches; returns how many match."""
    require(Role.OPERATOR, "scanning clusters", user)
    count = clusters_matching(selector).count()
    transaction.on_commit(lambda: scheduler().scan_selector(selector, Trigger.SELECTOR))
    return count


def due_for_scan(limit: int) -> list[int]:
    """Clusters whose periodic scan is due, claimed (their next scan pushed out by one
    interval) so the next tick does not enqueue them again while the scan is queued.
    Clusters never scanned get a first scan spread over one interval; a row with no
    next scan (made by a request whose scan never ran) is due at once."""
    now = timezone.now()
    new = Cluster.objects.filter(drift__isnull=True).values_list("pk", flat=True)[:limit]
    interval = settings.FLEET_DRIFT_INTERVAL
    ClusterDrift.objects.bulk_create(
        [ClusterDrift(cluster_id=pk, next_scan_at=now + timedelta(seconds=random.uniform(0, interval)))
         for pk in new], ignore_conflicts=True)
    with transaction.atomic():
        due = list(ClusterDrift.objects.select_for_update(skip_locked=True)
                   .filter(Q(next_scan_at__lte=now) | Q(next_scan_at__isnull=True))
                   .order_by(F("next_scan_at").asc(nulls_first=True))
                   .values_list("pk", "cluster_id")[:limit])
        ClusterDrift.objects.filter(pk__in=[pk for pk, _ in due]).update(
            next_scan_at=now + timedelta(seconds=settings.FLEET_DRIFT_INTERVAL))
    return [cluster_id for _, cluster_id in due]


def prune_history(days: int | None = None) -> dict[str, int]:
    """Drop scans, resolved resources and unused desired and rendered sets older than the
    retention (the render cache is what scans and rollouts fill; nothing else prunes it)."""
    days = days or settings.FLEET_DRIFT_HISTORY_DAYS
    cutoff = timezone.now() - timedelta(days=days)
    return {"scans": DriftScan.objects.filter(started_at__lt=cutoff).delete()[0],
            "resources": DriftedResource.objects.filter(resolved_at__lt=cutoff).delete()[0],
            "desired_sets": forget_older_than(days), "rendered_sets": render_cache.forget_older_than(days)}


# -- reading -----------------------------------------------------------------------------------

def _worst(states: Counter) -> str:
    return max(states, key=lambda state: SEVERITY[state]) if states else S.UNKNOWN


def _group(rows: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """(group, state) pairs -> per group: counts per state and the worst state."""
    groups: dict[str, Counter] = defaultdict(Counter)
    for name, state in rows:
        groups[name][state] += 1
    return {name: {"counts": dict(counts), "worst": _worst(counts), "total": sum(counts.values())}
            for name, counts in sorted(groups.items())}


def summary(*, selector: str = "", label: str = "", limit: int = SUMMARY_CLUSTERS, user=None) -> dict[str, Any]:
    """The fleet's drift: counts per state; per channel, running release and a label's
    values (with the worst state of each group); the most drifted kinds and fields; the
    oldest open drift; and the first ``limit`` clusters, worst first, with the total."""
    require(Role.VIEWER, "reading drift", user)
    clusters = list(clusters_matching(selector).select_related("drift"))
    states = {c.pk: (c.drift.state if hasattr(c, "drift") else S.UNKNOWN) for c in clusters}
    releases = deployed_on(states)
    drifts = [c.drift for c in clusters if hasattr(c, "drift")]
    open_rows = DriftedResource.objects.filter(drift__in=drifts, resolved_at=None).values_list("kind", "group",
                                                                                                  "changes")
    kinds, fields = Counter(), Counter()
    for kind, group, changes in open_rows:
        kinds[f"{kind}.{group}" if group else kind] += 1
        for change in changes:
            fields[change.get("path", "")] += 1
    oldest = min((d for d in drifts if d.state == S.DRIFTED and d.first_drift_observed_at),
                 key=lambda d: d.first_drift_observed_at, default=None)
    ranked = sorted(clusters, key=lambda c: (-SEVERITY[states[c.pk]], _since(c), c.name))
    label_rows = [(c.labels.get(label, "(none)"), states[c.pk]) for c in clusters] if label else []
    return {
        "total": len(clusters),
        "counts": dict(Counter(states.values())),
        "worst": _worst(Counter(states.values())),
        "by_channel": _group([(c.channel.name, states[c.pk]) for c in clusters]),
        "by_release": _group([(str(releases[c.pk].release) if c.pk in releases and releases[c.pk].release
                               else "(not deployed)", states[c.pk]) for c in clusters]),
        **({"by_label": {"label": label, "groups": _group(label_rows)}} if label else {}),
        "most_drifted_kinds": [{"kind": k, "objects": n} for k, n in kinds.most_common(TOP)],
        "most_drifted_fields": [{"path": p, "objects": n} for p, n in fields.most_common(TOP)],
        "oldest_open_drift": ({"cluster": oldest.cluster.name, "since": oldest.first_drift_observed_at.isoformat()}
                              if oldest else None),
        "clusters": [_row(c, states[c.pk]) for c in ranked[:limit]],
        "clusters_total": len(clusters),
        "clusters_shown": min(limit, len(clusters)),
    }


def _since(cluster: Cluster) -> float:
    drift = getattr(cluster, "drift", None)
    return drift.first_drift_observed_at.timestamp() if drift and drift.first_drift_observed_at else float("inf")


def _row(cluster: Cluster, state: str) -> dict[str, Any]:
    drift = getattr(cluster, "drift", None)
    return {"cluster": cluster.name, "state": state, "reason": drift.reason if drift else "",
            "counts": drift.counts if drift else {}, "contested": bool(drift and drift.contested_at),
            "first_drift_observed_at": drift.first_drift_observed_at if drift else None,
            "last_scan_at": drift.last_scan_at if drift else None}


def drift_rows(*, selector: str = "", state: str = "", channel: str = "") -> QuerySet[ClusterDrift]:
    """Each scanned cluster's drift, filtered: what ``/drift/clusters/`` lists."""
    rows = ClusterDrift.objects.select_related("cluster__channel").filter(
        cluster__in=clusters_matching(selector)).order_by("cluster__name")
    if state:
        if state not in S.values:
            raise DriftError(f"state must be one of {', '.join(S.values)}", field="state")
        rows = rows.filter(state=state)
    if channel:
        rows = rows.filter(cluster__channel__name=channel)
    return rows


def drift_of(cluster: Cluster) -> ClusterDrift:
    """The cluster's drift row; for a cluster never scanned, an unsaved one (``unknown``):
    reading never writes."""
    return ClusterDrift.objects.select_related("cluster").filter(cluster=cluster).first() or ClusterDrift(
        cluster=cluster)


def _open_resources(drift: ClusterDrift) -> QuerySet[DriftedResource]:
    if drift.pk is None:
        return DriftedResource.objects.none()
    return drift.resources.filter(resolved_at=None)


def resource_dict(row: DriftedResource) -> dict[str, Any]:
    """One drifted object, with what a join with the cluster's API-server audit events
    needs: the object reference, the field manager, the change time and the window."""
    return {"object": str(row.ref), "ref": row.ref.as_dict(), "state": row.state, "changes": row.changes,
            "manager": row.manager, "changed_at": row.changed_at, "first_observed_at": row.first_observed_at,
            "last_observed_at": row.last_observed_at, "resolved_at": row.resolved_at}


def resources_in_window(*, cluster: Cluster | None = None, since=None, until=None) -> QuerySet[DriftedResource]:
    """Drifted resources (open and resolved) whose drift window overlaps ``since``..``until``:
    what a join with the clusters' own API-server audit events starts from (object
    reference, ``manager``, ``changed_at``, ``first_observed_at``..``resolved_at``)."""
    rows = DriftedResource.objects.select_related("drift__cluster")
    if cluster is not None:
        rows = rows.filter(drift__cluster=cluster)
    if until is not None:
        rows = rows.filter(first_observed_at__lte=until)
    if since is not None:
        rows = rows.filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=since))
    return rows.order_by("first_observed_at", "pk")


def cluster_detail(cluster: Cluster, *, resources_limit: int = 500, user=None) -> dict[str, Any]:
    """A cluster's drift report: state, mode, counts, its open drifted resources (JSON
    diff), recent scans and heals."""
    require(Role.VIEWER, "reading drift", user)
    drift = drift_of(cluster)
    mode = modes.effective(drift, cluster.labels)
    rows = list(_open_resources(drift)[:resources_limit])
    return {
        "cluster": cluster.name, "state": drift.state, "reason": drift.reason,
        "mode": mode.mode, "mode_source": mode.source, "interval_seconds": scanning.interval_of(drift),
        "first_drift_observed_at": drift.first_drift_observed_at, "last_scan_at": drift.last_scan_at,
        "next_scan_at": drift.next_scan_at, "deployed_tag": drift.deployed_tag, "counts": drift.counts,
        "contested": ({"since": drift.contested_at, "manager": drift.contested_by} if drift.contested_at else None),
        "acknowledged_at": drift.acknowledged_at, "acknowledged_by": drift.acknowledged_by,
        "heal": {"failures": drift.heal_failures, "retry_at": drift.heal_retry_at,
                 "rollout": drift.heal_rollout_id},
        "resources": [{**resource_dict(row), "written_by": [w.as_dict() for w in writers(row, cluster)]
                       if index < JOINED else None} for index, row in enumerate(rows)],
        "resources_total": _open_resources(drift).count(),
        "scans": list(DriftScan.objects.filter(cluster=cluster)[:10].values(
            "started_at", "trigger", "state", "reason", "seconds", "requests", "desired_cached", "counts")),
    }


def _value(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def unified_diff(cluster: Cluster, *, user=None) -> str:
    """The open drift as a unified diff, desired (``-``) against live (``+``), object by
    object, as ``kubectl diff`` prints it; Secret values as their keyed hashes."""
    require(Role.VIEWER, "reading drift", user)
    out: list[str] = []
    for row in _open_resources(drift_of(cluster)):
        name = str(row.ref)
        if row.state == "missing":
            desired, live = [f"{name}: present"], ["(deleted live)"]
        elif row.state == "pending_prune":
            desired, live = ["(no longer desired)"], [f"{name}: present"]
        else:
            desired = [f"{c['path']}: {_value(c['desired'])}" for c in row.changes]
            live = [f"{c['path']}: {_value(c['live'])}" + (f"  # {c['manager']}" if c.get("manager") else "")
                    for c in row.changes]
        out.extend(difflib.unified_diff(desired, live, fromfile=f"desired/{name}", tofile=f"live/{name}",
                                        lineterm="", n=0))
    return "\n".join(out) + ("\n" if out else "")


# -- acting ----------------------------------------------------------------------------------

def request_heal(cluster: Cluster, *, user=None) -> HealAttempt:
    """Heal ``cluster`` now (an operator's request, checked there): see
    :func:`fleet.drift.heal.request_heal`."""
    return heal.request_heal(cluster, user=user)


def acknowledge(cluster: Cluster, *, user=None) -> ClusterDrift:
    """An operator decides about a cluster's drift: see :func:`fleet.drift.heal.acknowledge`."""
    return heal.acknowledge(cluster, user=user)


def set_cluster_mode(cluster: Cluster, *, mode: str | None = None, interval_seconds: int | None = None,
                     user=None) -> ClusterDrift:
    """A cluster's own mode ("" to follow the rules) and scan interval (None: default)."""
    require(Role.OPERATOR, "setting a cluster's drift mode", user)
    changes: dict[str, Any] = {}
    if mode is not None:
        if mode not in ("", *Mode.values):
            raise DriftError(f"mode must be one of {', '.join(Mode.values)} (or empty)", field="mode")
        changes["mode"] = mode
    if interval_seconds is not None:
        if not 10 <= interval_seconds <= 86400:
            raise DriftError("interval_seconds must be between 10 and 86400", field="interval_seconds")
        changes["interval_seconds"] = interval_seconds
    drift, _ = ClusterDrift.objects.get_or_create(cluster=cluster)
    return audit.update(drift, changes)


def _rule_fields(data: dict[str, Any], current: IgnoreRule | None = None) -> dict[str, Any]:
    base = {f: getattr(current, f) for f in ("group", "kind", "namespace", "object_name", "cluster_selector",
                                             "json_pointers", "managers")} if current else {}
    checked = ignore.validate({**base, **data})
    return {**{k: v for k, v in data.items() if k in ("name", "description", "source")}, **checked}


def create_ignore_rule(data: dict[str, Any], *, user=None) -> IgnoreRule:
    """A new ignore rule, validated (a bad pointer, glob or selector is refused) and audited."""
    require(Role.ADMIN, "changing drift ignore rules", user)
    return audit.create(IgnoreRule(**_rule_fields(data)))


def _not_code(rule: IgnoreRule) -> None:
    if rule.source == IgnoreRule.Source.CODE:
        raise DriftError(f"ignore rule {rule.name} comes from the rules file: change it there", code="refused")


def update_ignore_rule(rule: IgnoreRule, data: dict[str, Any], *, user=None) -> IgnoreRule:
    require(Role.ADMIN, "changing drift ignore rules", user)
    _not_code(rule)
    return audit.update(rule, _rule_fields(data, rule))


def delete_ignore_rule(rule: IgnoreRule, *, user=None) -> None:
    require(Role.ADMIN, "changing drift ignore rules", user)
    _not_code(rule)
    audit.delete(rule)


def sync_rules(path) -> dict[str, int]:
    """Load the rules file (rules as code): ``ignore:`` and ``modes:`` lists of rules as
    the API takes them. Every rule is validated before anything is written; ignore rules
    from the file are marked ``source: code`` and those no longer in it are removed; mode
    rules are upserted by name. All or nothing, each change audited."""
    from pathlib import Path

    from fleet.core import yaml

    path = Path(path)
    if not path.is_file():
        raise DriftError(f"{path} does not exist", field="file")
    data = yaml.load(path.read_text(encoding="utf-8"), source=str(path)) or {}
    if not isinstance(data, dict) or set(data) - {"ignore", "modes"}:
        raise DriftError(f"{path}: the file holds two lists, ignore: and modes:", field="file")
    ignores, mode_rules = data.get("ignore") or [], data.get("modes") or []
    checked_ignores, checked_modes = [], []
    for index, item in enumerate(ignores):
        where = f"{path}: ignore[{index}]"
        if not isinstance(item, dict) or not item.get("name"):
            raise DriftError(f"{where}: each rule is a mapping with a name", field="file")
        try:
            checked_ignores.append({**_rule_fields(item), "name": str(item["name"]), "source": "code"})
        except DriftError as exc:
            raise DriftError(f"{where}.{exc.field}: {exc.message}", field="file") from None
    for index, item in enumerate(mode_rules):
        where = f"{path}: modes[{index}]"
        if not isinstance(item, dict) or not item.get("name"):
            raise DriftError(f"{where}: each rule is a mapping with a name", field="file")
        try:
            checked_modes.append(modes.validate_rule(item))
        except DriftError as exc:
            raise DriftError(f"{where}.{exc.field}: {exc.message}", field="file") from None
    counts = {"created": 0, "updated": 0, "removed": 0}
    with transaction.atomic():
        names = set()
        for fields in checked_ignores:
            names.add(fields["name"])
            rule = IgnoreRule.objects.filter(name=fields["name"]).first()
            if rule is None:
                audit.create(IgnoreRule(**fields))
                counts["created"] += 1
            else:
                before = rule.updated_at
                audit.update(rule, fields)
                counts["updated"] += rule.updated_at != before
        for rule in IgnoreRule.objects.filter(source=IgnoreRule.Source.CODE).exclude(name__in=names):
            audit.delete(rule)
            counts["removed"] += 1
        for fields in checked_modes:
            rule = ModeRule.objects.filter(name=fields["name"]).first()
            if rule is None:
                audit.create(ModeRule(**fields))
                counts["created"] += 1
            else:
                audit.update(rule, fields)
    return counts


def create_mode_rule(data: dict[str, Any], *, user=None) -> ModeRule:
    require(Role.ADMIN, "changing drift mode rules", user)
    return audit.create(ModeRule(**modes.validate_rule(data)))


def update_mode_rule(rule: ModeRule, data: dict[str, Any], *, user=None) -> ModeRule:
    require(Role.ADMIN, "changing drift mode rules", user)
    current = {"cluster_selector": rule.cluster_selector, "mode": rule.mode, "heal_windows": rule.heal_windows}
    return audit.update(rule, modes.validate_rule({**current, **data}))


def delete_mode_rule(rule: ModeRule, *, user=None) -> None:
    require(Role.ADMIN, "changing drift mode rules", user)
    audit.delete(rule)
