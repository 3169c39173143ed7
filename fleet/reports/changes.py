"""The changes report: every deployment in the period, with the evidence change
management asks for (SOC 2 CC8.1, ISO 27001 A.8.32, PCI DSS 6.5.1): what changed
(release from and to, upstream and local SHA, deploy tag), who made it and who
approved it (someone else?), the policy verdict and the waivers it used, how it was
verified, how long it took, and the tag to roll back to.

Emergency changes are flagged: a deployment in a wave whose strategy asked for an
approval that it ran without, and a rollout during which a waiver was created (the
audit log's ``waiver.create`` events, so a waiver deleted since still counts).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fleet.audit.models import AuditEvent
from fleet.inventory.models import Cluster
from fleet.reports.document import Table, iso, seconds_between
from fleet.reports.scope import ReportScope
from fleet.rollouts.models import ClusterDeployment, Rollout

COLUMNS = ["started_at", "cluster", "rollout", "kind", "wave", "release_from", "release_to", "upstream_sha",
           "local_sha", "deploy_tag", "outcome", "created_by", "approved_by", "approved_by_other", "policy",
           "waivers_used", "verification", "duration_s", "rollback_tag", "emergency"]
NOT_STARTED = ("pending", "skipped", "cancelled")
# What the report reads: loading every column of five joined models cost most of its time.
_FIELDS = ("state", "upstream_sha", "local_sha", "previous_tag", "tag", "target_tag", "policy", "steps",
           "started_at", "finished_at", "cluster_id", "rollout_id", "wave_id", "cluster__name", "wave__name",
           "wave__index", "wave__require_approval", "wave__approved_by_id", "wave__approved_by__username",
           "rollout__kind", "rollout__rollback_of_id", "rollout__strategy", "rollout__started_at",
           "rollout__finished_at", "rollout__author_id", "rollout__author__username", "rollout__release_id",
           "rollout__release__version", "rollout__release__channel__name")


def deployments(scope: ReportScope):
    """The deployments that started in the period on the clusters the scope selects."""
    return (ClusterDeployment.objects
            .filter(started_at__gte=scope.since, started_at__lt=scope.until,
                    cluster__in=Cluster.objects.filter(scope.selector.to_q("labels")))
            .select_related("cluster", "wave__approved_by", "rollout__author", "rollout__release__channel")
            .only(*_FIELDS).order_by("started_at", "id"))


def _release(deployment: ClusterDeployment) -> str:
    release = deployment.rollout.release
    return f"{release.channel.name} {release.version}"


def _tag_releases(rows: list[ClusterDeployment]) -> dict[tuple[int, str], str]:
    """The release that the deployments' previous (and rollbacks' target) tags deployed,
    by (cluster, tag): one query."""
    wanted = {(d.cluster_id, tag) for d in rows for tag in (d.previous_tag, d.target_tag) if tag}
    found = (ClusterDeployment.objects.filter(cluster_id__in={c for c, _ in wanted}, tag__in={t for _, t in wanted})
             .values_list("cluster_id", "tag", "rollout__release__channel__name", "rollout__release__version"))
    return {(cluster, tag): f"{channel} {version}" for cluster, tag, channel, version in found}


def waivers_during(rollouts: list[Rollout], scope: ReportScope) -> dict[int, list[str]]:
    """Waivers created while each rollout ran, from the audit log."""
    spans = [(r.pk, r.started_at, r.finished_at or scope.until) for r in rollouts if r.started_at]
    if not spans:
        return {}
    created = (AuditEvent.objects.filter(action="waiver.create", timestamp__gte=min(s for _, s, _ in spans),
                                         timestamp__lte=max(e for _, _, e in spans))
               .values_list("timestamp", "target_repr", "actor"))
    found: dict[int, list[str]] = defaultdict(list)
    for when, name, actor in created:
        for pk, start, end in spans:
            if start <= when <= end:
                found[pk].append(f"waiver {name} created by {actor} at {iso(when)}")
    return found


def approval_skipped(deployment: ClusterDeployment) -> bool:
    """The strategy frozen at creation asked this wave for an approval, and it ran without one."""
    waves = deployment.rollout.strategy if isinstance(deployment.rollout.strategy, list) else []
    index = deployment.wave.index
    asked = index < len(waves) and isinstance(waves[index], dict) and bool(waves[index].get("require_approval"))
    return asked and deployment.wave.approved_by_id is None and deployment.state not in NOT_STARTED


def _policy(summary: dict[str, Any] | None) -> tuple[str, list[str]]:
    if not summary:
        return "not gated", []
    waivers = sorted({v.get("waiver", "") for v in summary.get("violations", []) if v.get("waiver")})
    counts = summary.get("counts", {})
    verdict = "allowed" if summary.get("allowed") else "denied"
    detail = ", ".join(f"{counts[k]} {k}" for k in ("deny", "warn", "waived") if counts.get(k))
    return f"{verdict} ({detail})" if detail else verdict, waivers


def _verification(deployment: ClusterDeployment) -> str:
    step = deployment.steps.get("verify") if isinstance(deployment.steps, dict) else None
    if not step:
        return "not reached"
    if step.get("ok"):
        return f"healthy after {step.get('detail', {}).get('elapsed', step.get('seconds'))}s"
    return f"failed: {str(step.get('error', ''))[:200]}"


def _approval(deployment: ClusterDeployment) -> tuple[str, str]:
    wave, author = deployment.wave, deployment.rollout.author_id
    if wave.approved_by_id is None:
        return ("", "NOT APPROVED") if wave.require_approval or approval_skipped(deployment) else ("", "not required")
    return wave.approved_by.get_username(), "yes" if wave.approved_by_id != author else "NO: the author"


def build(scope: ReportScope) -> tuple[dict[str, Any], list[Table]]:
    rows = list(deployments(scope))
    previous = _tag_releases(rows)
    rollouts = {d.rollout_id: d.rollout for d in rows}
    waived_during = waivers_during(list(rollouts.values()), scope)
    table = Table("deployments", "Deployments", COLUMNS, note=(
        "One row per cluster deployment started in the period. approved_by_other says whether the approver "
        "is someone other than the rollout's author; emergency names what made a change an emergency."))
    emergencies = 0
    outcomes: dict[str, int] = defaultdict(int)
    for d in rows:
        policy, waivers = _policy(d.policy)
        approver, other = _approval(d)
        flags = (["approval skipped"] if approval_skipped(d) else []) + waived_during.get(d.rollout_id, [])
        emergencies += bool(flags)
        outcomes[d.state] += 1
        rollout = d.rollout
        kind = rollout.kind + (f" of #{rollout.rollback_of_id}" if rollout.rollback_of_id else "")
        table.rows.append([
            iso(d.started_at), d.cluster.name, rollout.pk, kind, d.wave.name,
            previous.get((d.cluster_id, d.previous_tag), d.previous_tag or "(first deployment)"),
            previous.get((d.cluster_id, d.target_tag), d.target_tag) if d.target_tag else _release(d),
            d.upstream_sha, d.local_sha, d.tag, d.state, rollout.author.get_username(), approver, other, policy,
            waivers, _verification(d), seconds_between(d.started_at, d.finished_at), d.previous_tag,
            "; ".join(flags)])
    emergency_rollouts = len({d.rollout_id for d in rows if approval_skipped(d) or d.rollout_id in waived_during})
    summary = {"deployments": len(rows), "rollouts": len(rollouts), "outcomes": dict(sorted(outcomes.items())),
               "emergency_deployments": emergencies, "emergency_rollouts": emergency_rollouts,
               "approved_by_someone_else": sum(1 for r in table.rows if r[13] == "yes"),
               "deployments_with_waivers": sum(1 for r in table.rows if r[15])}
    return summary, [table]
