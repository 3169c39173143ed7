"""The console in a real browser on the real server: signing in as each role, the
overview, filtering clusters with a selector (and a malformed one), a viewer who finds
no action buttons and whose forged POST is refused, every page at 1280 px and on a
narrow window, and keyboard use. No page may log an error (see ``browser.py``)."""

from __future__ import annotations

import re

import pytest

from fleet.audit.models import AuditEvent
from fleet.inventory.models import Cluster
from tests.console.browser import NARROW

pytestmark = [pytest.mark.embedded, pytest.mark.slow]

PAGES = {"overview": "/", "clusters": "/clusters/", "cluster": "/clusters/edge-001/", "rollouts": "/rollouts/",
         "rollout": "/rollouts/{rollout}/", "new-rollout": "/rollouts/new/", "policies": "/policies/",
         "decisions": "/policies/decisions/", "policy-check": "/policies/check/", "audit": "/audit/",
         "audit-verify": "/audit/verify/", "releases": "/releases/"}


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_sign_in_as_each_role_and_out(open_console, fleet, role):
    console = open_console()
    console.page.goto(console.url("/clusters/"))
    assert console.page.url.startswith(console.url("/login/?next=/clusters/"))
    console.shot("sign-in")
    console.sign_in(role)
    header = console.page.locator("header .who").inner_text()
    assert role in header and ("admin" if role == "admin" else role) in header
    console.page.get_by_role("button", name="Sign out").click()
    console.page.wait_for_url(console.url("/login/"))
    assert AuditEvent.objects.filter(action="auth.login", actor=role).exists()
    assert AuditEvent.objects.filter(action="auth.logout", target_repr=role).exists()


def test_the_overview(open_console, fleet):
    Cluster.objects.filter(name__in=["edge-001", "edge-002"]).update(status="ready")
    console = open_console()
    console.sign_in("admin")
    page = console.page
    assert page.get_by_role("heading", name="6 clusters").is_visible()
    spread = page.get_by_role("figure", name="Clusters per release")
    assert spread.get_by_role("listitem").all_inner_texts() == ["not deployed yet\n6 (100.0 %)"]
    assert page.get_by_role("heading", name="Rollouts in flight").is_visible()
    assert page.locator("text=Not contacted for 10 minutes: 6").is_visible()
    console.shot("overview")
    page.get_by_role("link", name=re.compile("ready")).first.click()
    page.wait_for_url(re.compile(r"/clusters/\?status=ready"))
    assert page.locator("table.clusters tbody tr").count() == 2


def test_filter_clusters_with_a_selector(open_console, fleet):
    console = open_console()
    console.sign_in("viewer")
    page = console.page
    console.goto("/clusters/")
    assert page.locator("table.clusters tbody tr").count() == 6
    page.get_by_label("Label selector").fill("env=prod,ring in (main)")
    page.get_by_label("Label selector").press("Enter")
    page.wait_for_url(re.compile(r"selector=env%3Dprod%2Cring\+in\+%28main%29"))
    names = page.locator("table.clusters tbody th").all_inner_texts()
    assert names == ["edge-001", "edge-003", "edge-005"]
    console.shot("clusters-filtered")
    shared = page.url  # the filter is in the URL: another tab opens the same view
    other = open_console()
    other.sign_in("viewer")
    other.page.goto(shared)
    assert other.page.locator("table.clusters tbody th").all_inner_texts() == names

    page.get_by_label("Label selector").fill("env in (prod")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_load_state()
    error = page.locator("#f-selector-error")
    assert "expected ')'" in error.inner_text()
    assert page.get_by_label("Label selector").input_value() == "env in (prod"
    assert page.get_by_label("Label selector").get_attribute("aria-invalid") == "true"
    assert page.locator("table.clusters").count() == 0
    console.shot("clusters-bad-selector")


def test_a_viewer_finds_no_action_buttons_and_a_forged_post_is_refused(open_console, fleet):
    console = open_console()
    console.sign_in("viewer")
    page = console.page
    for path in ("/clusters/edge-001/", f"/rollouts/{fleet.rollout.pk}/", "/rollouts/"):
        console.goto(path)
        buttons = page.locator("main button, main a.button").all_inner_texts()
        assert [b for b in buttons if b not in ("Filter", "List")] == [], (path, buttons)
    console.shot("rollout-as-viewer")
    for url, form in ((f"/rollouts/{fleet.rollout.pk}/start/", {"state": "pending"}),
                      ("/clusters/edge-001/pause/", {"value": "true"})):
        response = page.request.post(console.url(url), form={**form, "csrfmiddlewaretoken": console.csrf()},
                                     headers={"Referer": console.url("/")})
        assert response.status == 403 and "needs the operator role" in response.text()
    assert AuditEvent.objects.filter(action="auth.denied", actor="viewer").count() == 2
    assert fleet.rollout.__class__.objects.get(pk=fleet.rollout.pk).state == "pending"


@pytest.mark.parametrize(("viewport", "suffix"), [(None, "1280"), (NARROW, "narrow")])
def test_every_page_at_1280_and_on_a_narrow_window(open_console, fleet, viewport, suffix):
    console = open_console(viewport) if viewport else open_console()
    console.sign_in("operator")
    for name, path in PAGES.items():
        console.goto(path.format(rollout=fleet.rollout.pk))
        console.page.wait_for_load_state("networkidle")
        overflow = console.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} is {overflow}px wider than the window"
        unlabelled = console.page.evaluate("""[...document.querySelectorAll('input, select, textarea')]
            .filter(el => el.type !== 'hidden' && !el.labels.length && !el.getAttribute('aria-label'))
            .map(el => el.name)""")
        assert unlabelled == [], f"{name}: fields without a label: {unlabelled}"
        console.shot(f"{name}-{suffix}")


def test_keyboard_reaches_the_content_and_the_filter(open_console, fleet):
    console = open_console()
    console.sign_in("viewer")
    page = console.page
    console.goto("/clusters/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "content"
    for _ in range(2):
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "selector"
    page.keyboard.type("ring=canary")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile("selector=ring%3Dcanary"))
    assert page.locator("table.clusters tbody th").all_inner_texts() == ["edge-000"]
