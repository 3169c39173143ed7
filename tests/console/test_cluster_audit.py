"""The clusters' API-server audit events in the console, and the join that names who
wrote a drifted object on its cluster's drift page."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from fleet.clusteraudit import services as clusteraudit
from fleet.clusteraudit.events import parse_event_list
from fleet.drift.choices import DriftState, ResourceState
from fleet.drift.models import ClusterDrift, DriftedResource
from tests.clusteraudit.support import event, event_list

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def audited(fleet):
    """edge-001's API server saw alice edit the Deployment web (kubectl edit) and bob
    read it; edge-002's saw carol scale another object."""
    now = timezone.now().replace(microsecond=0)
    edge1, edge2 = fleet.clusters[1], fleet.clusters[2]
    clusteraudit.ingest(edge1, parse_event_list(event_list(
        event(user="alice@corp", namespace="shop", at=now - datetime.timedelta(minutes=3)),
        event(user="bob@corp", verb="get", namespace="shop", field_manager="",
              at=now - datetime.timedelta(minutes=2)))))
    clusteraudit.ingest(edge2, parse_event_list(event_list(
        event(user="carol@corp", namespace="shop", name="api", field_manager="kubectl-scale",
              at=now - datetime.timedelta(minutes=1)))))
    return now


def test_the_fleet_wide_page_filters_by_user_and_shows_changes_outside_gitops(as_role, audited):
    viewer = as_role("viewer")
    html = viewer.get("/cluster-audit/").content.decode()
    assert "alice@corp" in html and "bob@corp" in html and "carol@corp" in html
    only = viewer.get("/cluster-audit/", {"user": "alice@corp"}).content.decode()
    assert "alice@corp" in only and "carol@corp" not in only.split('id="h-actors"')[0]
    outside = viewer.get("/cluster-audit/", {"outside": "true"}).content.decode()
    assert "Changes outside GitOps" in outside and "bob@corp" not in outside.split('id="h-actors"')[0]
    bad = viewer.get("/cluster-audit/", {"since": "yesterday"}).content.decode()
    assert 'role="alert"' in bad and "since" in bad and "alice@corp" not in bad


def test_a_drifted_object_names_the_person_whose_write_drifted_it(as_role, fleet, audited):
    drift = ClusterDrift.objects.create(cluster=fleet.clusters[1], state=DriftState.DRIFTED, modified=1,
                                        first_drift_observed_at=audited, last_scan_at=audited)
    DriftedResource.objects.create(
        drift=drift, group="apps", version="v1", kind="Deployment", namespace="shop", name="web",
        state=ResourceState.MODIFIED, manager="kubectl-edit", changed_at=audited - datetime.timedelta(minutes=3),
        first_observed_at=audited, last_observed_at=audited,
        changes=[{"path": "spec.replicas", "desired": 2, "live": 5, "manager": "kubectl-edit"}])
    html = as_role("viewer").get("/clusters/edge-001/drift/").content.decode()
    assert "alice@corp via kubectl from 10.1.2.3 at" in html
    assert "bob@corp" not in html  # a read is not a write
    body = as_role("viewer").get("/api/v1/drift/clusters/edge-001/").json()
    written = body["resources"][0]["written_by"]
    assert [(w["user"], w["match"]) for w in written] == [("alice@corp", "exact")]
    report = as_role("viewer").get("/api/v1/reports/drift/").json()
    assert report["tables"]["episodes"]["rows"][0]["written_by"].startswith("alice@corp via kubectl from 10.1.2.3")
