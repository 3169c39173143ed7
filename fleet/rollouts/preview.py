"""Rollout preview: the plan a rollout would follow, checked cluster by cluster,
without changing anything (no commit, no push, no apply)."""

from __future__ import annotations

from typing import Any

from fleet.core.errors import FleetError
from fleet.gitops import services as gitops
from fleet.inventory.models import Cluster, Release
from fleet.kube import services as kube
from fleet.policy import services as policy
from fleet.rollouts import services
from fleet.rollouts.steps import deployed_objects


def preview(request: services.RolloutRequest) -> dict[str, Any]:
    name, planned = services.plan(request)
    busy = services.busy_clusters(c for w in planned for c in w.clusters)
    waves, summary = [], {"clusters": 0, "conflicts": 0, "denied": 0, "errors": 0, "busy": len(busy)}
    for wave in planned:
        clusters = []
        for cluster in wave.clusters:
            outcome = preview_cluster(cluster, request.release)
            outcome["busy_in_rollout"] = busy.get(cluster.name)
            clusters.append(outcome)
            summary["clusters"] += 1
            summary["conflicts"] += outcome.get("rebase", {}).get("outcome") == "conflict"
            summary["denied"] += outcome.get("policy", {}).get("allowed") is False
            summary["errors"] += bool(outcome.get("error"))
        waves.append({**wave.spec.as_dict(), "clusters": clusters})
    return {"strategy_name": name, "waves": waves, "summary": summary}


def preview_cluster(cluster: Cluster, release: Release) -> dict[str, Any]:
    """What a deployment would do, computed in the workspace and reset afterwards:
    nothing is committed, pushed or applied."""
    outcome: dict[str, Any] = {"cluster": cluster.name}
    try:
        with gitops.session(cluster) as workspace:
            try:
                result = workspace.prepare(release)
                outcome["rebase"] = {"outcome": "clean" if result.ok else result.reason,
                                     "conflicts": list(result.conflicts), "error": result.error}
                if not result.ok:
                    return outcome
                objects = workspace.render().objects
                report = kube.diff(cluster, objects)
                verdict, _ = policy.evaluate(objects, cluster=cluster, release=release,
                                             deployed=deployed_objects(report, objects), record=False,
                                             live=True, dry_run=True)
                outcome["policy"] = {"allowed": verdict.allowed, "counts": verdict.counts(),
                                     "violations": verdict.as_dict()["violations"][:50]}
                outcome["diff"] = {state: sum(d.state == state for d in report.objects)
                                   for state in ("added", "changed", "removed", "unchanged")}
                outcome["diff"]["objects"] = [d.as_dict() for d in report.drifted[:100]]
            finally:
                workspace.reset()
    except FleetError as exc:
        outcome["error"] = str(exc)
    return outcome
