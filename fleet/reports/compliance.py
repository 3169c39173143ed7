"""The compliance posture at the end of the period: each cluster's latest policy
verdict, the violations in force by rule and severity, the waivers in effect and
those about to expire, and the clusters never gated (PCI DSS 6.5.1 and SOC 2 CC8.1
ask that every change be checked; this shows where it is and where it is not)."""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Any

from django.db.models import OuterRef, Subquery

from fleet.policy.models import PolicyDecision, Waiver
from fleet.reports.document import Table, iso
from fleet.reports.scope import ReportScope

DEFAULT_EXPIRING_DAYS = 14


def build(scope: ReportScope, expiring_days: int = DEFAULT_EXPIRING_DAYS) -> tuple[dict[str, Any], list[Table]]:
    clusters = scope.clusters()
    latest = PolicyDecision.objects.filter(cluster_name=OuterRef("cluster_name"), created_at__lt=scope.until) \
        .order_by("-created_at", "-id").values("id")[:1]
    decisions = {d.cluster_name: d for d in PolicyDecision.objects.filter(
        cluster_name__in=[c.name for c in clusters], created_at__lt=scope.until,
        id=Subquery(latest))}
    verdicts = Table("clusters", "Latest verdict per cluster", ["cluster", "channel", "verdict", "decided_at",
                                                               "source", "deny", "warn", "waived", "bundle"])
    never = Table("never_gated", "Clusters never gated", ["cluster", "channel", "labels"],
                  note="No policy decision was ever recorded for these clusters before the end of the period.")
    by_rule: Counter[tuple[str, str, str]] = Counter()
    for cluster in clusters:
        decision = decisions.get(cluster.name)
        if decision is None:
            never.rows.append([cluster.name, cluster.channel.name, cluster.labels])
            continue
        counts = Counter(v.get("enforcement", "") for v in decision.violations)
        verdicts.rows.append([cluster.name, cluster.channel.name, "allowed" if decision.allowed else "denied",
                              iso(decision.created_at), decision.source, counts["deny"], counts["warn"],
                              counts["waived"], decision.bundle_hash[:12]])
        for violation in decision.violations:
            by_rule[(violation.get("rule", ""), violation.get("severity", ""), violation.get("enforcement", ""))] += 1
    rules = Table("violations", "Violations in force, by rule and severity",
                  ["rule", "severity", "enforcement", "findings"],
                  [[*key, n] for key, n in sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0]))],
                  note="Counted over each cluster's latest verdict.")
    in_effect = list(Waiver.objects.filter(created_at__lte=scope.until, expires_at__gt=scope.until)
                     .select_related("policy_set").order_by("expires_at", "name"))
    soon = scope.until + datetime.timedelta(days=expiring_days)
    waivers = Table("waivers", "Waivers in effect at the end of the period",
                    ["waiver", "rule", "objects", "clusters", "policy_set", "author", "reason", "created_at",
                     "expires_at", f"expires_within_{expiring_days}_days"],
                    [[w.name, w.rule, w.object_pattern, w.cluster_selector or "(all)",
                      w.policy_set.name if w.policy_set else "(any)", w.author, w.reason, iso(w.created_at),
                      iso(w.expires_at), w.expires_at <= soon] for w in in_effect])
    summary = {"clusters": len(clusters), "gated": len(verdicts.rows), "never_gated": len(never.rows),
               "denied": sum(1 for r in verdicts.rows if r[2] == "denied"),
               "waivers_in_effect": len(in_effect),
               "waivers_expiring_soon": sum(1 for w in in_effect if w.expires_at <= soon)}
    return summary, [verdicts, rules, waivers, never]
