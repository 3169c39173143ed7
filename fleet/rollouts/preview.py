"""Rollout preview: the plan a rollout would follow, checked cluster by cluster,
without changing anything (no commit, no push, no apply)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from fleet.rollouts import services


class PreviewSerializer(serializers.Serializer):
    """Schema only: waves, each with clusters and their rebase, policy and diff outcome."""

    strategy_name = serializers.CharField()
    waves = serializers.ListField(child=serializers.DictField())
    summary = serializers.DictField()


def preview(request: services.RolloutRequest) -> dict[str, Any]:
    from fleet.rollouts import steps

    name, planned = services.plan(request)
    busy = services.busy_clusters(c for w in planned for c in w.clusters)
    waves, summary = [], {"clusters": 0, "conflicts": 0, "denied": 0, "errors": 0, "busy": len(busy)}
    for wave in planned:
        clusters = []
        for cluster in wave.clusters:
            outcome = steps.preview_cluster(cluster, request.release)
            outcome["busy_in_rollout"] = busy.get(cluster.name)
            clusters.append(outcome)
            summary["clusters"] += 1
            summary["conflicts"] += outcome.get("rebase", {}).get("outcome") == "conflict"
            summary["denied"] += outcome.get("policy", {}).get("allowed") is False
            summary["errors"] += bool(outcome.get("error"))
        waves.append({**wave.spec.as_dict(), "clusters": clusters})
    return {"strategy_name": name, "waves": waves, "summary": summary}
