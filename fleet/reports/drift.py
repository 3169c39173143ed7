"""The drift report: which clusters ran something other than git said during the period,
what changed, who changed it, how long it stayed, and how it ended (healed, redeployed,
put back by hand, or still open at the end). Evidence that configuration is monitored
and unauthorised changes are found and reverted (PCI DSS 11.5.2, SOC 2 CC7.1, ISO 27001
A.8.9), from drift's own records: each drifted object's window and field manager, the
heals asked for, the clusters contested.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from fleet.drift.models import ClusterDrift, HealAttempt
from fleet.drift.services import resources_in_window
from fleet.drift.writers import writers
from fleet.reports.document import Table, iso, seconds_between
from fleet.reports.scope import ReportScope

JOINED = 2000  # episodes linked to the API-server audit events that wrote them (one query each)


def build(scope: ReportScope) -> tuple[dict[str, Any], list[Table]]:
    clusters = scope.clusters()
    by_id = {c.pk: c for c in clusters}
    drifts = {d.pk: d for d in ClusterDrift.objects.filter(cluster_id__in=by_id)}
    # An episode counts when its window [first observed, resolved or still open) meets the period.
    episodes = list(resources_in_window(since=scope.since, until=scope.until).filter(drift_id__in=drifts))
    objects = Table("episodes", "Drifted objects in the period",
                    ["cluster", "object", "drift", "fields", "changed_by", "written_by", "changed_at",
                     "first_observed_at", "resolved_at", "open_at_end", "seconds_open"],
                    note="One row per object and drift window. changed_by is the field manager that owns the "
                         "first changed field, from the live managedFields; written_by the write the cluster's "
                         "API server recorded for it (user, client, source address), where the cluster sends its "
                         "audit events. Secret values are never shown.")
    resolve_times: list[float] = []
    managers: Counter[str] = Counter()
    for index, row in enumerate(episodes):
        cluster = by_id[drifts[row.drift_id].cluster_id]
        wrote = writers(row, cluster) if index < JOINED else []
        resolved = row.resolved_at if row.resolved_at and row.resolved_at < scope.until else None
        seconds = seconds_between(row.first_observed_at, resolved or scope.until)
        if resolved:
            resolve_times.append(seconds)
        managers[row.manager or "(unknown)"] += 1
        objects.rows.append([cluster.name, str(row.ref), row.state, [c.get("path", "") for c in row.changes],
                             row.manager, wrote[0].describe() if wrote else "", iso(row.changed_at),
                             iso(row.first_observed_at), iso(resolved),
                             resolved is None, seconds])
    heals = Table("heals", "Heals asked for in the period",
                  ["cluster", "requested_at", "automatic", "requested_by", "rollout", "objects"])
    for heal in (HealAttempt.objects.filter(drift_id__in=drifts, requested_at__gte=scope.since,
                                            requested_at__lt=scope.until)
                 .select_related("requested_by").order_by("requested_at", "pk")):
        heals.rows.append([by_id[drifts[heal.drift_id].cluster_id].name, iso(heal.requested_at), heal.automatic,
                           heal.requested_by.get_username() if heal.requested_by else "(self-heal)",
                           heal.rollout_id, len(heal.refs)])
    states = Table("clusters", "Each cluster's drift now", ["cluster", "channel", "state", "first_drift_observed_at",
                                                           "missing", "modified", "pending_prune", "contested_by",
                                                           "last_scan_at"],
                   note="The state when the report was built (drift keeps no state per past instant); "
                        "clusters never scanned are unknown.")
    drift_of = {d.cluster_id: d for d in drifts.values()}
    for cluster in clusters:
        drift = drift_of.get(cluster.pk)
        if drift is None:
            states.rows.append([cluster.name, cluster.channel.name, "unknown", None, 0, 0, 0, "", None])
            continue
        states.rows.append([cluster.name, cluster.channel.name, drift.state, iso(drift.first_drift_observed_at),
                            drift.missing, drift.modified, drift.pending_prune, drift.contested_by,
                            iso(drift.last_scan_at)])
    who = Table("changed_by", "Who drifted objects, by field manager", ["field_manager", "objects"],
                [[manager, n] for manager, n in managers.most_common()])
    summary = {
        "clusters": len(clusters),
        "clusters_drifted_in_period": len({row[0] for row in objects.rows}),
        "drifted_objects": len(objects.rows),
        "resolved_in_period": len(resolve_times),
        "open_at_end": sum(1 for row in objects.rows if row[9]),
        "median_seconds_to_resolve": round(statistics.median(resolve_times), 1) if resolve_times else None,
        "heals": len(heals.rows),
        "contested_now": sum(1 for d in drifts.values() if d.contested_at),
    }
    return summary, [objects, states, heals, who]
