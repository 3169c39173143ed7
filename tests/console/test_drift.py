"""Drift in the console: the fleet's summary, a cluster's drift as a coloured diff, and
the acts on it, as each role sees them; then, in a real browser on the real local fleet,
drift made with ``kubectl`` and read on the cluster's page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from fleet.accounts.rules import AccessDenied
from fleet.audit.models import AuditEvent
from fleet.drift import scan
from fleet.drift import services as drift_services
from fleet.drift.choices import DriftState, ResourceState
from fleet.drift.models import ClusterDrift, DriftedResource

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def scans():
    """Scan requests recorded instead of reaching Celery."""
    seen: list[tuple] = []
    previous = drift_services.install(drift_services.Scheduler(
        scan_cluster=lambda pk, trigger: seen.append(("cluster", pk, trigger)),
        scan_selector=lambda selector, trigger: seen.append(("selector", selector, trigger))))
    yield seen
    drift_services.install(previous)


@pytest.fixture
def drifted(fleet):
    """edge-001 drifted (an image changed with kubectl), edge-002 in sync, the rest never scanned."""
    now = timezone.now()
    first = ClusterDrift.objects.create(cluster=fleet.clusters[1], state=DriftState.DRIFTED, modified=1,
                                        first_drift_observed_at=now - timedelta(minutes=7), last_scan_at=now,
                                        deployed_tag="deploy/2026-12-01/release-1.0")
    DriftedResource.objects.create(
        drift=first, group="apps", version="v1", kind="Deployment", namespace="shop", name="web",
        state=ResourceState.MODIFIED, manager="kubectl-set", changed_at=now - timedelta(minutes=7),
        first_observed_at=now - timedelta(minutes=7), last_observed_at=now,
        changes=[{"path": "spec.template.spec.containers[name=web].image", "desired": "registry.local/web:1",
                  "live": "registry.local/web:2", "manager": "kubectl-set"}])
    ClusterDrift.objects.create(cluster=fleet.clusters[2], state=DriftState.IN_SYNC, last_scan_at=now)
    return first


def test_the_fleet_summary_ranks_the_drifted_cluster_first(as_role, drifted):
    html = as_role("viewer").get("/drift/").content.decode()
    assert "Clusters, worst first" in html
    assert html.index("edge-001") < html.index("edge-002")  # worst first
    assert "apps.Deployment" in html or "Deployment.apps" in html
    assert "spec.template.spec.containers[name=web].image" in html
    assert "Oldest open drift" in html and "7\xa0minutes</time> ago" in html
    overview = as_role("viewer").get("/").content.decode()
    assert 'id="h-drift"' in overview and "Oldest open drift" in overview and "edge-001" in overview


def test_a_bad_selector_is_named_and_queries_nothing(as_role, drifted):
    html = as_role("viewer").get("/drift/", {"selector": "env in (prod"}).content.decode()
    assert 'role="alert"' in html and "selector" in html and "Clusters, worst first" not in html


def test_the_cluster_page_shows_the_diff_desired_against_live(as_role, drifted):
    html = as_role("viewer").get("/clusters/edge-001/drift/").content.decode()
    assert '<span class="diff-del">-spec.template.spec.containers[name=web].image: &quot;registry.local/web:1&quot;' \
        in html
    assert '<span class="diff-add">+spec.template.spec.containers[name=web].image: &quot;registry.local/web:2&quot;' \
        in html
    assert "kubectl-set" in html and "deploy/2026-12-01/release-1.0" in html
    assert "<button" not in html.split("<main")[1]  # a viewer has nothing to press
    detail = as_role("viewer").get("/clusters/edge-001/").content.decode()
    assert 'href="/clusters/edge-001/drift/"' in detail and "1 modified" in detail


def test_an_operator_scans_and_heals_and_a_viewer_is_refused(as_role, drifted, scans,
                                                            django_capture_on_commit_callbacks):
    operator = as_role("operator")
    page = operator.get("/clusters/edge-001/drift/").content.decode()
    assert "Scan now" in page and "Heal: re-apply the drifted objects" in page and "Acknowledge" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post("/clusters/edge-001/drift/scan/", follow=True)
    assert "scan requested" in response.content.decode()
    assert scans == [("cluster", drifted.cluster_id, "manual")]
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post("/drift/scan/", {"selector": "env=prod"}, follow=True)
    assert "scan requested for 3 clusters matching env=prod" in response.content.decode()
    assert scans[-1] == ("selector", "env=prod", "selector")
    viewer = as_role("viewer")
    assert viewer.post("/clusters/edge-001/drift/scan/").status_code == 403
    assert viewer.post("/clusters/edge-001/drift/heal/").status_code == 403
    assert AuditEvent.objects.filter(action="auth.denied", actor="viewer").count() == 2
    assert len(scans) == 2


@pytest.mark.cluster
@pytest.mark.slow
def test_drift_made_with_kubectl_shows_as_a_diff_on_the_cluster_page(drift_world, open_console, people):
    deployment = drift_world.deploy()
    assert deployment.state == "succeeded", deployment.error
    assert scan.scan_cluster(drift_world.cluster).state == DriftState.IN_SYNC
    drift_world.kubectl("set", "image", "deployment/web", "web=registry.local/web:2")
    assert scan.scan_cluster(drift_world.cluster).state == DriftState.DRIFTED

    console = open_console()
    console.sign_in("operator")
    console.goto(f"/clusters/{drift_world.cluster.name}/drift/")
    page = console.page
    diff = page.locator("pre.diff")
    removed, added = diff.locator(".diff-del").all_inner_texts(), diff.locator(".diff-add").all_inner_texts()
    assert any("registry.local/web:1" in line for line in removed), removed
    assert any("registry.local/web:2" in line for line in added), added
    # The live line's colour is not the desired line's: the diff reads at a glance.
    colours = [diff.locator(f".diff-{kind}").first.evaluate("e => getComputedStyle(e).color")
               for kind in ("del", "add")]
    assert colours[0] != colours[1]
    assert "kubectl-set" in page.locator("#h-resources").locator("..").inner_text()
    console.shot("drift-cluster")
    page.get_by_role("button", name="Scan now").click()
    page.wait_for_load_state()
    assert "scan requested" in page.locator(".messages").inner_text()
    assert (drift_world.cluster.pk, "manual") in drift_world.queued.scans
    console.goto("/drift/")
    row = page.locator("tr", has=page.locator("th", has_text=drift_world.cluster.name))
    assert "drifted" in row.inner_text()
    console.shot("drift-overview")


def test_reading_drift_is_checked_in_the_service_too(people, drifted):
    with pytest.raises(AccessDenied, match="reading drift needs the viewer role"):
        drift_services.summary(user=people["nobody"])
    with pytest.raises(AccessDenied):
        drift_services.cluster_detail(drifted.cluster, user=people["nobody"])
    with pytest.raises(AccessDenied):
        drift_services.unified_diff(drifted.cluster, user=people["nobody"])
    assert drift_services.summary(user=people["viewer"])["total"] == 6
