"""The console through Django's test client: every page for every role, sign-in and
sign-out with CSRF, the role check on every action (403, audited), bad input shown
next to its field with no query run, and stale pages refused before anything is done."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from fleet.audit.models import AuditEvent
from fleet.inventory.models import Cluster
from fleet.policy.models import PolicyDecision
from fleet.policy.services import import_policy_set
from fleet.rollouts import services
from fleet.rollouts.models import Rollout, Wave
from fleet.rollouts.states import RolloutState as R
from fleet.rollouts.states import transition
from tests.console.conftest import PASSWORD, client_for
from tests.e2e.conftest import DENY_CONFIGMAPS

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

PAGES = ["/", "/clusters/", "/clusters/edge-001/", "/rollouts/", "/rollouts/{rollout}/", "/rollouts/{rollout}/live/",
         "/policies/", "/policies/decisions/", "/audit/", "/audit/verify/", "/releases/"]


def page_urls(fleet) -> list[str]:
    return [url.format(rollout=fleet.rollout.pk) for url in PAGES]


def post_forms(html: str) -> list[str]:
    """The actions of POST forms on a page, but signing out."""
    return [action for action in re.findall(r'<form method="post" action="([^"]*)"', html) if action != "/logout/"]


def test_anonymous_is_sent_to_sign_in(fleet):
    for url in page_urls(fleet):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), url


def test_sign_in_and_out_with_csrf_are_audited(people):
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/login/")
    token = page.cookies["csrftoken"].value
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()
    refused = browser.post("/login/", {"username": "viewer", "password": PASSWORD})
    assert refused.status_code == 403  # no CSRF token: Django's check, before any password is read
    wrong = browser.post("/login/", {"username": "viewer", "password": "nope", "csrfmiddlewaretoken": token})
    assert "do not match" in wrong.content.decode()
    assert AuditEvent.objects.filter(action="auth.login_failed", target_repr="viewer").exists()
    signed_in = browser.post("/login/", {"username": "viewer", "password": PASSWORD, "csrfmiddlewaretoken": token})
    assert signed_in.status_code == 302 and signed_in["Location"] == "/"
    assert AuditEvent.objects.filter(action="auth.login", actor="viewer", source="web").exists()
    overview = browser.get("/")
    assert "Fleet overview" in overview.content.decode() and "viewer" in overview.content.decode()
    token = browser.cookies["csrftoken"].value
    assert browser.post("/logout/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert AuditEvent.objects.filter(action="auth.logout", target_repr="viewer").exists()
    assert browser.get("/").status_code == 302


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_every_page_renders_for_every_role(as_role, fleet, role):
    client = as_role(role)
    for url in page_urls(fleet):
        response = client.get(url)
        assert response.status_code == 200, (url, response.content[:300])
        assert len(response.content) < 200_000


def test_a_viewer_sees_no_action_buttons(as_role, fleet):
    viewer = as_role("viewer")
    for url in page_urls(fleet):
        assert post_forms(viewer.get(url).content.decode()) == [], url
    assert "New rollout" not in viewer.get("/rollouts/").content.decode()
    operator = as_role("operator")
    assert post_forms(operator.get("/clusters/edge-001/").content.decode()) == [
        "/clusters/edge-001/pause/", "/clusters/edge-001/pin/"]
    pk = fleet.rollout.pk
    author_page = operator.get(f"/rollouts/{pk}/").content.decode()  # the operator wrote it: no approval
    assert post_forms(author_page) == [f"/rollouts/{pk}/{a}/" for a in ("start", "abort")]
    assert "You are its author: someone else approves wave 2" in author_page
    assert post_forms(as_role("admin").get(f"/rollouts/{pk}/").content.decode()) == [
        f"/rollouts/{pk}/{a}/" for a in ("start", "approve", "abort")]


FORGED = [("/clusters/edge-001/pause/", {"value": "true"}), ("/clusters/edge-001/pin/", {"value": "true"}),
          ("/rollouts/{rollout}/start/", {}), ("/rollouts/{rollout}/abort/", {}),
          ("/rollouts/{rollout}/approve/", {}), ("/rollouts/{rollout}/rollback/", {"scope": "all"}),
          ("/rollouts/new/", {"intent": "start"})]


@pytest.mark.parametrize(("url", "data"), FORGED)
def test_a_forged_post_by_a_viewer_is_refused_and_audited(as_role, fleet, url, data):
    url, viewer = url.format(rollout=fleet.rollout.pk), as_role("viewer")
    before = AuditEvent.objects.count()
    response = viewer.post(url, data)
    assert response.status_code == 403
    assert "needs the operator role; you have viewer" in response.content.decode()
    events = list(AuditEvent.objects.filter(sequence__gt=before).order_by("sequence"))
    assert [(e.action, e.actor, e.source, e.target_repr) for e in events] == [
        ("auth.denied", "viewer", "web", f"POST {url}")]
    assert not Cluster.objects.filter(paused=True).exists() and not Cluster.objects.filter(pinned=True).exists()
    assert Rollout.objects.get(pk=fleet.rollout.pk).state == R.PENDING


def test_a_person_without_a_role_is_refused_everywhere(as_role, fleet):
    nobody = as_role("nobody")
    for url in page_urls(fleet):
        response = nobody.get(url)
        assert response.status_code == 403 and "no role" in response.content.decode(), url
    assert AuditEvent.objects.filter(action="auth.denied", actor="nobody").count() == len(PAGES)


def test_pause_and_pin_go_through_the_audited_update(as_role, fleet):
    operator = as_role("operator")
    response = operator.post("/clusters/edge-002/pause/", {"value": "true"}, follow=True)
    assert "edge-002 is paused" in response.content.decode()
    operator.post("/clusters/edge-002/pin/", {"value": "true"})
    cluster = Cluster.objects.get(name="edge-002")
    assert cluster.paused and cluster.pinned
    changes = [e.metadata["changed"] for e in AuditEvent.objects.filter(action="cluster.update", actor="operator")
               .order_by("sequence")]
    assert changes == [["paused"], ["pinned"]]
    assert operator.get("/clusters/edge-002/pause/").status_code == 405


def test_a_malformed_selector_is_shown_next_to_the_field_and_queries_no_cluster(as_role, fleet):
    viewer = as_role("viewer")
    with CaptureQueriesContext(connection) as queries:
        response = viewer.get("/clusters/", {"selector": "env in (prod", "q": "edge", "status": ""})
    assert response.status_code == 200
    html = response.content.decode()
    field = re.search(r'<div class="field[^"]*invalid">\s*<label for="f-selector">.*?</div>', html, re.S).group(0)
    assert 'value="env in (prod"' in field and 'aria-invalid="true"' in field
    assert "expected &#x27;)&#x27;" in field
    assert 'value="edge"' in html  # the rest of what was typed stays too
    assert not any('FROM "inventory_cluster"' in q["sql"] for q in queries.captured_queries)
    assert "Nothing was looked up" in html


def test_the_filter_lives_in_the_url(as_role, fleet):
    viewer = as_role("viewer")
    html = viewer.get("/clusters/", {"selector": "env=prod", "sort": "-name", "per_page": "25"}).content.decode()
    names = re.findall(r'<th scope="row"><a href="/clusters/([^/]+)/">', html)
    assert names == ["edge-005", "edge-003", "edge-001"]
    assert re.findall(r'href="\?([^"]*sort=name[^"]*)"', html)  # the header sorts the other way, same filter
    assert "selector=env%3Dprod" in re.findall(r'href="\?([^"]*sort=name[^"]*)"', html)[0]
    assert "cannot sort by &#x27;labels&#x27;" in viewer.get("/clusters/", {"sort": "labels"}).content.decode()
    found = re.findall(r'<th scope="row"><a href="/clusters/([^/]+)/">',
                       viewer.get("/clusters/", {"q": "canary"}).content.decode())
    assert found == ["edge-000"]


def test_a_stale_page_does_nothing_and_says_what_changed(as_role, fleet):
    operator, rollout = as_role("operator"), fleet.rollout
    services.start(rollout)
    assert transition(Rollout.objects.get(pk=rollout.pk), R.PAUSED)  # someone paused it meanwhile
    before = AuditEvent.objects.count()
    response = operator.post(f"/rollouts/{rollout.pk}/pause/", {"state": "running"}, follow=True)
    html = response.content.decode()
    assert "Nothing was done to rollout" in html and "it was running on your page and is paused now" in html
    assert not AuditEvent.objects.filter(sequence__gt=before, action__startswith="rollout.").exists()
    response = operator.post(f"/rollouts/{rollout.pk}/start/", {"state": "paused"}, follow=True)
    assert "cannot start rollout" in response.content.decode()  # the service's own refusal, surfaced


def test_approval_by_the_author_is_refused_and_by_another_admin_done(as_role, fleet):
    rollout = fleet.rollout
    refused = as_role("operator").post(f"/rollouts/{rollout.pk}/approve/", {"state": "pending", "wave": "1"})
    assert refused.status_code == 403 and "someone other than its author" in refused.content.decode()
    assert AuditEvent.objects.filter(action="auth.denied", actor="operator").exists()
    done = as_role("admin").post(f"/rollouts/{rollout.pk}/approve/", {"state": "pending", "wave": "1"}, follow=True)
    assert f"Rollout #{rollout.pk} approved" in done.content.decode()
    assert Wave.objects.get(rollout=rollout, index=1).approved_by.username == "admin"


def test_a_stale_approval_is_undone_whole(as_role, fleet):
    """The page offered wave 1; the service would approve another: nothing stays approved."""
    rollout = fleet.rollout
    response = as_role("admin").post(f"/rollouts/{rollout.pk}/approve/", {"state": "pending", "wave": "0"},
                                     follow=True)
    assert "now wave 2 (main), not wave 1" in response.content.decode()
    assert not Wave.objects.filter(rollout=rollout, approved_by__isnull=False).exists()
    assert not AuditEvent.objects.filter(action="rollout.approve").exists()


def test_start_pause_resume_abort_from_the_page(as_role, fleet, django_capture_on_commit_callbacks):
    operator, pk = as_role("operator"), fleet.rollout.pk
    for action, state, after in [("start", "pending", R.RUNNING), ("pause", "running", R.PAUSED),
                                 ("resume", "paused", R.RUNNING), ("abort", "running", R.ABORTING)]:
        with django_capture_on_commit_callbacks():  # the advance a real worker would run
            response = operator.post(f"/rollouts/{pk}/{action}/", {"state": state, "reason": "enough"})
        assert response.status_code == 302, response.content[:300]
        assert Rollout.objects.get(pk=pk).state == after, action
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="rollout.", actor="operator")
            .order_by("sequence")] == ["rollout.start", "rollout.pause", "rollout.resume", "rollout.abort"]
    assert "not-an-action" and operator.post(f"/rollouts/{pk}/explode/").status_code == 404


def test_the_live_fragment_answers_304_while_nothing_changes_and_says_when_final(as_role, fleet):
    viewer, pk = as_role("viewer"), fleet.rollout.pk
    first = viewer.get(f"/rollouts/{pk}/live/")
    assert first.status_code == 200 and "X-Live-Final" not in first
    assert viewer.get(f"/rollouts/{pk}/live/", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    services.abort(Rollout.objects.get(pk=pk))
    ended = viewer.get(f"/rollouts/{pk}/live/", HTTP_IF_NONE_MATCH=first["ETag"])
    assert ended.status_code == 200 and ended["X-Live-Final"] == "1" and "aborted" in ended.content.decode()


def test_the_deployment_history_shows_the_repository_error(as_role, fleet):
    response = as_role("viewer").get("/clusters/edge-001/history/", HTTP_X_FRAGMENT="1")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and 'role="alert"' in html and "must be inside FLEET_GIT_LOCAL_ROOTS" in html
    assert "<html" in as_role("viewer").get("/clusters/edge-001/history/").content.decode()


def test_the_console_answers_with_its_own_sign_in_and_leaves_the_admin_alone(people):
    assert Client().get("/admin/").status_code == 302
    assert Client().get("/admin/")["Location"].startswith("/admin/login/")
    assert client_for(people["admin"]).get("/admin/").status_code == 200


def test_check_pasted_manifests_against_a_clusters_policies(as_role, fleet, tmp_path):
    (tmp_path / "frozen.rego").write_text(DENY_CONFIGMAPS)
    import_policy_set("frozen-configmaps", tmp_path, selector="env=prod")
    viewer = as_role("viewer")  # asking the gate changes nothing: any role may (as in the API)
    assert 'value="edge-001"' in viewer.get("/policies/check/?cluster=edge-001").content.decode()
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: app\n"
    html = viewer.post("/policies/check/", {"cluster": "edge-001", "manifests": manifest}).content.decode()
    assert "Verdict:" in html and "denied" in html and "ConfigMaps are frozen on this cluster: settings" in html
    decision = PolicyDecision.objects.get()
    assert (decision.cluster_name, decision.allowed) == ("edge-001", False)
    assert f'href="/policies/decisions/{decision.pk}/"' in html
    allowed = viewer.post("/policies/check/", {"cluster": "edge-000", "manifests": manifest}).content.decode()
    assert "Verdict:" in allowed and "allowed" in allowed  # edge-000 is env=dev: no set applies

    bad = viewer.post("/policies/check/", {"cluster": "edge-001", "manifests": "kind: [unclosed"}).content.decode()
    assert 'id="f-manifests-error"' in bad and "kind: [unclosed" in bad and "Verdict:" not in bad
    unknown = viewer.post("/policies/check/", {"cluster": "nowhere", "manifests": manifest}).content.decode()
    assert "no cluster of that name" in unknown and PolicyDecision.objects.count() == 2


def test_the_audit_trail_filters_exports_and_verifies(as_role, fleet):
    viewer = as_role("viewer")
    html = viewer.get("/audit/", {"action": "rollout.", "since": "not a time"}).content.decode()
    assert 'id="f-since-error"' in html and "Nothing was looked up" in html
    html = viewer.get("/audit/", {"action": "rollout.", "source": ""}).content.decode()
    assert "rollout.create" in html and "auth.login" not in html
    assert "The chain has not been verified yet" in html
    assert 'href="/api/v1/audit/export/?format=csv&amp;action=rollout."' in html
    exported = viewer.get("/api/v1/audit/export/", {"format": "csv", "action": "rollout."})
    assert exported.status_code == 200 and b"rollout.create" in b"".join(exported.streaming_content)
    verified = viewer.get("/audit/verify/").content.decode()
    assert "intact" in verified and "check out" in verified
    status = viewer.get("/audit/").content.decode()
    assert "Chain" in status and "intact" in status and "by the web" in status
