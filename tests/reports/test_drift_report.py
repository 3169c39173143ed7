"""The drift report: each drifted object's window counted when it meets the period,
resolved or open at its end, with who changed it; heals; each cluster's state now."""

from __future__ import annotations

import csv
import datetime
import io

import pytest

from fleet.drift.choices import DriftState, ResourceState
from fleet.drift.models import ClusterDrift, DriftedResource, HealAttempt
from tests.factories import ClusterFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]
URL = "/api/v1/reports/drift/"
UTC = datetime.UTC


def at(day: int, hour: int = 0) -> datetime.datetime:
    return datetime.datetime(2026, 3, day, hour, tzinfo=UTC)


def episode(drift, name: str, first: datetime.datetime, resolved: datetime.datetime | None, manager: str):
    return DriftedResource.objects.create(
        drift=drift, group="apps", version="v1", kind="Deployment", namespace="shop", name=name,
        state=ResourceState.MODIFIED, manager=manager, changed_at=first, first_observed_at=first,
        last_observed_at=resolved or at(31), resolved_at=resolved,
        changes=[{"path": "spec.replicas", "desired": 2, "live": 5, "manager": manager}])


def test_windows_that_meet_the_period_with_resolution_times_heals_and_state(viewer):
    edge, core, quiet = (ClusterFactory(name=n, labels={"env": "prod"}) for n in ("edge", "core", "quiet"))
    edge_drift = ClusterDrift.objects.create(cluster=edge, state=DriftState.DRIFTED, modified=1,
                                             first_drift_observed_at=at(9), contested_by="hpa-controller",
                                             contested_at=at(9, 6))
    core_drift = ClusterDrift.objects.create(cluster=core, state=DriftState.IN_SYNC)
    episode(edge_drift, "before", at(1), at(2), "kubectl-edit")  # ended before the period: not counted
    episode(edge_drift, "healed", at(5), at(5, 2), "kubectl-edit")  # resolved in 2 h
    episode(edge_drift, "open", at(9), None, "hpa-controller")  # still open at the end
    episode(core_drift, "straddles", at(3), at(6), "kubectl-scale")  # began before, resolved inside: 3 days
    HealAttempt.objects.create(drift=edge_drift, requested_at=at(5, 1), automatic=True, refs=[{"kind": "x"}])

    body = viewer.get(URL, {"since": "2026-03-05", "until": "2026-03-10", "selector": "env=prod"}).json()
    assert body["summary"] == {"clusters": 3, "clusters_drifted_in_period": 2, "drifted_objects": 3,
                               "resolved_in_period": 2, "open_at_end": 1,
                               "median_seconds_to_resolve": (7200 + 3 * 86400) / 2, "heals": 1, "contested_now": 1}
    rows = {row["object"].split("/")[-1]: row for row in body["tables"]["episodes"]["rows"]}
    assert set(rows) == {"healed", "open", "straddles"}
    assert rows["open"]["open_at_end"] is True and rows["open"]["seconds_open"] == 86400
    assert rows["healed"]["changed_by"] == "kubectl-edit" and rows["healed"]["fields"] == ["spec.replicas"]
    assert body["tables"]["heals"]["rows"][0]["requested_by"] == "(self-heal)"
    states = {row["cluster"]: row["state"] for row in body["tables"]["clusters"]["rows"]}
    assert states == {"core": "in_sync", "edge": "drifted", "quiet": "unknown"}
    assert sorted((r["field_manager"], r["objects"]) for r in body["tables"]["changed_by"]["rows"]) == [
        ("hpa-controller", 1), ("kubectl-edit", 1), ("kubectl-scale", 1)]  # "before" is outside the period
    table = list(csv.reader(io.StringIO(viewer.get(URL, {"since": "2026-03-05", "until": "2026-03-10",
                                                         "format": "csv"}).content.decode())))
    assert table[0][:3] == ["cluster", "object", "drift"] and len(table) == 4
    pdf = viewer.get(URL, {"since": "2026-03-05", "until": "2026-03-10", "format": "pdf"})
    assert pdf.content.startswith(b"%PDF")
