"""The outside-GitOps report: every change made to the selected clusters in the period by an
identity other than Fleet's own and Kubernetes' components, from the API servers' own audit
events (``fleet.clusteraudit``). What git cannot show: who changed a cluster behind its back
(SOC 2 CC8.1 and PCI DSS 6.5.1 ask that changes go through change control; ISO 27001 A.8.9)."""

from __future__ import annotations

from typing import Any

from fleet.clusteraudit import queries
from fleet.reports.document import Table, iso
from fleet.reports.scope import ReportScope

MAX_ROWS = 10_000


def build(scope: ReportScope) -> tuple[dict[str, Any], list[Table]]:
    f = queries.EventFilter(since=scope.since, until=scope.until, selector=scope.selector_text)
    found = queries.outside_gitops(None, f)
    rows = []
    for e in found[:MAX_ROWS]:
        what = "/".join(p for p in (e.namespace, e.resource + (f"/{e.subresource}" if e.subresource else ""), e.name)
                        if p)
        rows.append([iso(e.request_received_at), e.cluster.name, e.username, e.impersonated_user, e.verb,
                     f"{what}{' (' + e.api_group + ')' if e.api_group else ''}", e.response_code,
                     ", ".join(e.source_ips), e.field_manager or queries.tool_of(e.user_agent), e.audit_id])
    total = found.count() if len(rows) == MAX_ROWS else len(rows)
    changes = Table("changes", "Changes outside GitOps",
                    ["at", "cluster", "user", "as_user", "verb", "object", "code", "source_ips", "client", "audit_id"],
                    rows, note=f"The first {MAX_ROWS:,} of {total:,}; narrow the period or selector for the rest."
                    if total > MAX_ROWS else "Times are each cluster's own clock.")
    actors = queries.top_actors(None, f, limit=20)
    by_actor = Table("actors", "Who changed each cluster", ["cluster", "user", "changes", "outside_gitops", "last_at"],
                     [[a.cluster, a.username, a.changes, a.outside_gitops, iso(a.last_at)] for a in actors
                      if a.outside_gitops])
    summary = {"changes_outside_gitops": total, "clusters": len({r[1] for r in rows}),
               "identities": len({r[2] for r in rows})}
    return summary, [changes, by_actor]
