"""Rollouts from the console, in a real browser, on the real local fleet: real
kube-apiservers, git repos, the policy gate and Celery workers in their own processes
(the end-to-end world of ``tests/e2e``).

An operator previews and starts a two-wave rollout and watches it on one page that
never reloads, while another admin approves its second wave from their own browser;
then a canary rollout is aborted while it bakes, its countdown on the page. The deploy
tags the rollouts made show up as the cluster's deployment history.
"""

from __future__ import annotations

import re

import pytest

from fleet.rollouts.models import ClusterDeployment, Rollout

pytestmark = [pytest.mark.cluster, pytest.mark.postgres, pytest.mark.slow]

TWO_WAVES = ('[{"name": "canary", "selector": "ring=canary", "max_parallel": 1},\n'
             ' {"name": "main", "selector": "ring=main", "max_parallel": 2, "max_failures": "1",'
             ' "require_approval": true}]')
PREVIEW_TIMEOUT = 180_000  # ms: clones, rebases, renders and diffs every cluster
ROLLOUT_TIMEOUT = 240_000


def fill_rollout(page, release, selector: str, waves: str) -> None:
    page.get_by_label("Release").select_option(str(release.pk))
    page.get_by_label("Target clusters (label selector)").fill(selector)
    page.get_by_label("Waves (JSON)").fill(waves)
    page.get_by_role("button", name="Preview").click()
    page.locator("#preview").wait_for(timeout=PREVIEW_TIMEOUT)


def state_heading(page):
    return page.locator("#h-state")


def test_create_watch_approve_and_abort_rollouts_in_the_browser(world, workers, open_console, people):
    workers.start("a")
    operator = open_console()
    operator.sign_in("operator")
    page = operator.page
    operator.goto("/rollouts/new/")

    # Preview: which clusters each wave takes, and what the gate says of each.
    fill_rollout(page, world.releases["1.0"], "fleet.dev/local", TWO_WAVES)
    preview = page.locator("#preview")
    assert "3 clusters in 2 waves" in preview.inner_text()
    assert "1 denied by policy" in preview.inner_text()
    local3 = preview.locator("tr", has=page.locator("th", has_text="local-3"))
    assert "denied" in local3.inner_text()
    assert not Rollout.objects.exists()  # a preview changes nothing
    operator.shot("rollout-preview")

    page.get_by_role("button", name="Create and start").click()
    page.wait_for_url(re.compile(r"/rollouts/\d+/$"))
    rollout = Rollout.objects.get()
    page.evaluate("window.__sameDocument = true")  # gone if the page ever reloads

    # Live: the canary goes through, then wave 2 waits for someone other than the author.
    page.locator("li.wave", has_text="Wave 2: main").get_by_text("Waiting for an approval").wait_for(
        timeout=ROLLOUT_TIMEOUT)
    assert "succeeded" in page.locator("li.wave", has_text="Wave 1: canary").inner_text()
    assert "You are its author" in page.locator("#live").inner_text()
    assert page.get_by_role("button", name=re.compile("^Approve")).count() == 0
    steps = page.locator("tr", has=page.locator("th", has_text="local-1")).locator("li.step-done")
    assert steps.count() == 8
    operator.shot("rollout-awaiting-approval")

    approver = open_console()
    approver.sign_in("approver")
    approver.goto(f"/rollouts/{rollout.pk}/")
    approver.page.get_by_role("button", name="Approve wave 2 (main)").click()
    approver.page.wait_for_url(re.compile(rf"/rollouts/{rollout.pk}/$"))
    assert f"Rollout #{rollout.pk} approved" in approver.page.locator(".messages").inner_text()
    approver.shot("rollout-approved")

    heading = state_heading(page)
    heading.filter(has_text="succeeded").wait_for(timeout=ROLLOUT_TIMEOUT)
    page.locator("#live[data-live-done='1']").wait_for(timeout=10_000)  # the page stopped asking
    assert page.evaluate("window.__sameDocument") is True
    assert "100 % done: 2 succeeded, 1 failed" in heading.inner_text()
    blocked = page.locator("tr", has=page.locator("th", has_text="local-3"))
    assert "blocked" in blocked.inner_text() and "ConfigMaps are frozen" in blocked.inner_text()
    assert Rollout.objects.get(pk=rollout.pk).state == "succeeded"
    operator.shot("rollout-succeeded")

    # The deploy tag is now the cluster's history, with the context the pipeline recorded.
    operator.goto("/clusters/local-1/")
    history = page.locator("#history")
    history.locator("code.tag").first.wait_for(timeout=60_000)
    tag = ClusterDeployment.objects.get(rollout=rollout, cluster__name="local-1").tag
    assert tag in history.inner_text() and str(rollout.pk) in history.locator("dl.context dd").all_inner_texts()
    assert "1.0.0" in page.locator("dl.facts").inner_text()
    operator.shot("cluster-with-history")

    # Abort a canary while it bakes: the countdown runs on the page, then the abort ends it.
    operator.goto("/rollouts/new/")
    fill_rollout(page, world.releases["1.1"], "ring=canary",
                 '[{"name": "canary", "max_parallel": 1, "bake_seconds": 600}]')
    page.get_by_role("button", name="Create and start").click()
    page.wait_for_url(re.compile(r"/rollouts/\d+/$"))
    second = Rollout.objects.exclude(pk=rollout.pk).get()
    countdown = page.locator("[data-countdown]")
    countdown.wait_for(timeout=ROLLOUT_TIMEOUT)
    assert re.fullmatch(r"\d+ s left", countdown.inner_text())
    operator.shot("rollout-baking")
    page.get_by_label("Reason to abort").fill("seen enough")
    page.get_by_role("button", name="Abort").click()
    page.wait_for_url(re.compile(rf"/rollouts/{second.pk}/$"))
    state_heading(page).filter(has_text="aborted").wait_for(timeout=60_000)
    assert "seen enough" in page.locator("#live").inner_text()
    assert Rollout.objects.get(pk=second.pk).state == "aborted"
    operator.shot("rollout-aborted")

    # The overview and the cluster list now show what the rollouts left running.
    operator.goto("/")
    spread = page.get_by_role("figure", name="Clusters per release").inner_text()
    # local-1 took 1.1.1 before the abort, local-2 runs 1.0.0, local-3 was blocked by policy.
    for line in ("platform-1-1 1.1.1\n1", "platform-1-0 1.0.0\n1", "not deployed yet\n1"):
        assert line in spread, spread
    operator.shot("overview-after-rollouts")
    operator.goto("/clusters/?selector=fleet.dev%2Flocal")
    assert page.locator("table.clusters tbody th").all_inner_texts() == ["local-1", "local-2", "local-3"]
    operator.shot("clusters-after-rollouts")
