"""Delivery metrics: the four DORA keys, with the Four Keys project's formulas, for
the whole scope, per channel and per label value, as trends over the period.

- A *deployment* is a cluster deployment that changed the cluster: it succeeded, or
  it failed after its apply step (blocked, conflicting, skipped and cancelled ones
  changed nothing). Rollbacks are deployments too.
- Deployment frequency: deployments per day; its category follows the Four Keys
  dashboard: *daily* when the median week has deployments on 3 days or more, *weekly*
  when on at least one, *monthly* when the median month has a week with one, else
  *yearly*.
- Lead time for changes: median of (deployment finished - upstream commit time) over
  deployments; the commit time is read from git (Four Keys drops non-positive ones).
- Change failure rate: deployments that failed (after applying, or regressed while
  baking) or were rolled back, over deployments.
- Time to restore: per failure, from when the failed change was in place (its
  finish) to the next successful deployment of that cluster (the rollback or a fix);
  median, in hours, bucketed by the failure's day, as Four Keys buckets incidents.
"""

from __future__ import annotations

import bisect
import datetime
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fleet.inventory.models import Cluster
from fleet.reports.document import Table
from fleet.reports.scope import ReportError, ReportScope
from fleet.rollouts.models import ClusterDeployment, Rollout

# (cluster, upstream SHA) pairs -> commit time per SHA; unknown SHAs are left out.
CommitTimes = Callable[[Iterable[tuple[Cluster, str]]], dict[str, datetime.datetime]]
MAX_GROUP_KEYS = 3


@dataclass
class _Deployment:
    cluster: Cluster
    channel: str  # what was deployed: the release's channel, or for a rollback its target tag's
    finished_at: datetime.datetime
    upstream_sha: str
    failed: bool
    restored_at: datetime.datetime | None = None
    lead_time: float | None = None  # hours


def _changed(deployment: ClusterDeployment) -> bool:
    if deployment.state == "succeeded":
        return True
    apply = deployment.steps.get("apply") if isinstance(deployment.steps, dict) else None
    return deployment.state == "failed" and bool(apply and apply.get("ok"))


def _collect(scope: ReportScope, commit_times: CommitTimes) -> list[_Deployment]:
    in_scope = Cluster.objects.filter(scope.selector.to_q("labels"))
    rows = list(ClusterDeployment.objects.filter(cluster__in=in_scope, finished_at__gte=scope.since,
                                                 finished_at__lt=scope.until,
                                                 state__in=("succeeded", "failed"))
                .select_related("cluster__channel", "rollout__release__channel").order_by("finished_at", "id"))
    rows = [d for d in rows if _changed(d)]
    targets = dict(((d.cluster_id, d.tag), d.rollout.release.channel.name) for d in ClusterDeployment.objects.filter(
        cluster_id__in={d.cluster_id for d in rows}, tag__in={d.target_tag for d in rows if d.target_tag})
        .select_related("rollout__release__channel"))
    rolled_back = set(ClusterDeployment.objects.filter(
        rollout__kind=Rollout.Kind.ROLLBACK, rollout__rollback_of_id__in={d.rollout_id for d in rows},
        started_at__isnull=False).values_list("rollout__rollback_of_id", "cluster_id"))
    successes: dict[int, list[datetime.datetime]] = defaultdict(list)
    for cluster_id, finished in (ClusterDeployment.objects.filter(
            cluster__in=in_scope, state="succeeded", finished_at__gte=scope.since)
            .values_list("cluster_id", "finished_at").order_by("finished_at")):
        successes[cluster_id].append(finished)
    times = commit_times({(d.cluster, d.upstream_sha) for d in rows if d.upstream_sha})
    found = []
    for d in rows:
        failed = d.state == "failed" or (d.rollout_id, d.cluster_id) in rolled_back
        channel = targets.get((d.cluster_id, d.target_tag), "") if d.target_tag else d.rollout.release.channel.name
        item = _Deployment(d.cluster, channel or d.rollout.release.channel.name, d.finished_at, d.upstream_sha, failed)
        if failed:
            later = successes[d.cluster_id]
            index = bisect.bisect_right(later, d.finished_at)
            item.restored_at = later[index] if index < len(later) else None
        committed = times.get(d.upstream_sha)
        if committed is not None and d.finished_at > committed:
            item.lead_time = (d.finished_at - committed).total_seconds() / 3600
        found.append(item)
    return found


def _hours(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _keys(items: list[_Deployment]) -> dict[str, Any]:
    failures = [d for d in items if d.failed]
    restores = [(d.restored_at - d.finished_at).total_seconds() / 3600 for d in failures if d.restored_at]
    return {"deployments": len(items), "failures": len(failures),
            "change_failure_rate": round(len(failures) / len(items), 3) if items else None,
            "median_lead_time_h": _hours([d.lead_time for d in items if d.lead_time is not None]),
            "median_time_to_restore_h": _hours(restores), "unrestored_failures": len(failures) - len(restores)}


def frequency_category(days: list[datetime.date]) -> str:
    """The Four Keys dashboard's categories, from the days that had a deployment."""
    if not days:
        return "none"
    weeks: dict[tuple[int, int], set] = defaultdict(set)
    months: dict[tuple[int, int], set] = defaultdict(set)
    for day in days:
        weeks[day.isocalendar()[:2]].add(day)
        months[(day.year, day.month)].add(day.isocalendar()[:2])
    first, last = min(days), max(days)
    all_weeks = {(first + datetime.timedelta(days=n)).isocalendar()[:2] for n in range((last - first).days + 1)}
    per_week = sorted(len(weeks.get(week, ())) for week in all_weeks)
    if statistics.median(per_week) >= 3:
        return "daily"
    if statistics.median(per_week) >= 1:
        return "weekly"
    return "monthly" if statistics.median(len(w) for w in months.values()) >= 1 and len(months) > 1 else "yearly"


def _bucket(moment: datetime.datetime, weekly: bool) -> str:
    day = moment.date()
    return (day - datetime.timedelta(days=day.weekday())).isoformat() if weekly else day.isoformat()


def parse_group_by(text: str) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if len(keys) > MAX_GROUP_KEYS:
        raise ReportError(f"group by at most {MAX_GROUP_KEYS} label keys", field="group_by")
    return keys


def build(scope: ReportScope, commit_times: CommitTimes, group_by: list[str]) -> tuple[dict[str, Any], list[Table]]:
    items = _collect(scope, commit_times)
    weekly = scope.until - scope.since > datetime.timedelta(days=31)
    days = (scope.until - scope.since).total_seconds() / 86400
    overall = _keys(items)
    summary = {**overall, "deployments_per_day": round(len(items) / days, 3),
               "frequency_category": frequency_category([d.finished_at.date() for d in items]),
               "lead_times_known": sum(1 for d in items if d.lead_time is not None)}
    groups: dict[tuple[str, str], list[_Deployment]] = defaultdict(list)
    for d in items:
        groups[("channel", d.channel)].append(d)
        for key in group_by:
            groups[("label", f"{key}={d.cluster.labels.get(key, '(none)')}")].append(d)
    metric_columns = ["deployments", "failures", "change_failure_rate", "median_lead_time_h",
                      "median_time_to_restore_h", "unrestored_failures"]
    per_group = Table("groups", "Four keys per channel and label", ["by", "group", "deployments_per_day",
                                                                    *metric_columns])
    trend = Table("trend", f"Trend per {'week' if weekly else 'day'}", ["by", "group", "period", *metric_columns],
                  note="Failures and restores are counted in the period of the failed deployment.")
    for (by, name), members in sorted(groups.items()):
        keys = _keys(members)
        per_group.rows.append([by, name, round(len(members) / days, 3), *(keys[c] for c in metric_columns)])
        buckets: dict[str, list[_Deployment]] = defaultdict(list)
        for d in members:
            buckets[_bucket(d.finished_at, weekly)].append(d)
        for period, bucket in sorted(buckets.items()):
            keys = _keys(bucket)
            trend.rows.append([by, name, period, *(keys[c] for c in metric_columns)])
    return summary, [per_group, trend]
