"""Reports built from a real rollout's records (see conftest), with numbers checked
against the scenario counted by hand; the PDF opened and rendered; and tampering with
those records caught: an edited row, a deleted one, and a consistent rewrite of the
whole chain (the last only by the anchors in the deploy tags)."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from fleet.accounts import services as accounts
from fleet.accounts.roles import Role
from fleet.audit import checkpoints
from fleet.audit.models import AuditEvent
from fleet.audit.services import verify_chain
from fleet.core import context
from fleet.reports import services
from fleet.reports.anchors import deploy_tag_anchors
from fleet.reports.render import to_csv, to_pdf
from tests.audit.support import rewrite_from, tamper

pytestmark = [pytest.mark.django_db, pytest.mark.cluster, pytest.mark.slow, pytest.mark.embedded]


def period(scenario) -> dict[str, str]:
    return {"since": scenario.started.isoformat(), "until": scenario.finished.isoformat()}


def by_cluster_and_rollout(report) -> dict[tuple[str, int], dict]:
    return {(r["cluster"], r["rollout"]): r for r in report.table("deployments").records()}


def check_changes(scenario) -> None:
    one, two, three, four = (r.pk for r in scenario.rollouts)
    report = services.build("changes", period(scenario), user=get_user_model().objects.get(username="vera"))
    assert report.summary == {
        "deployments": 8, "rollouts": 4, "outcomes": {"blocked": 1, "succeeded": 7},
        "emergency_deployments": 2, "emergency_rollouts": 2, "approved_by_someone_else": 2,
        "deployments_with_waivers": 1}
    rows = by_cluster_and_rollout(report)
    assert len(rows) == 8
    canary = rows[("local-1", one)]
    assert (canary["release_from"], canary["release_to"], canary["approved_by_other"]) == (
        "(first deployment)", "platform-1-0 1.0.0", "not required")
    assert canary["created_by"] == "ada-admin" and canary["deploy_tag"].startswith("deploy/")
    assert canary["verification"].startswith("healthy after") and canary["duration_s"] > 0
    blocked = rows[("local-3", one)]
    assert blocked["outcome"] == "blocked" and blocked["policy"].startswith("denied (") and not blocked["deploy_tag"]
    assert (blocked["approved_by"], blocked["approved_by_other"]) == ("grace-admin", "yes")
    assert blocked["verification"] == "not reached"
    waived = rows[("local-3", two)]
    assert waived["policy"].startswith("allowed (") and "waived" in waived["policy"]
    assert waived["waivers_used"] == ["configmaps-local-3"]
    assert waived["emergency"].startswith("waiver configmaps-local-3 created by grace-admin at ")
    skipped = rows[("local-2", three)]
    assert (skipped["emergency"], skipped["approved_by_other"]) == ("approval skipped", "NOT APPROVED")
    assert rows[("local-1", three)]["emergency"] == ""
    upgrade = rows[("local-1", three)]
    assert (upgrade["release_from"], upgrade["release_to"]) == ("platform-1-0 1.0.0", "platform-1-1 1.1.1")
    assert upgrade["upstream_sha"] == scenario.releases["1.1"].upstream_sha and upgrade["local_sha"]
    back = rows[("local-1", four)]
    assert back["kind"] == f"rollback of #{three}" and back["created_by"] == "grace-admin"
    assert (back["release_from"], back["release_to"]) == ("platform-1-1 1.1.1", "platform-1-0 1.0.0")
    assert back["rollback_tag"] == upgrade["deploy_tag"]
    assert upgrade["rollback_tag"] == canary["deploy_tag"]
    only_prod = services.build("changes", {**period(scenario), "selector": "env=staging"})
    assert only_prod.summary["deployments"] == 2 and {r[1] for r in only_prod.tables[0].rows} == {"local-3"}
    csv_text = to_csv(report).decode()
    assert csv_text.splitlines()[0].startswith("started_at,cluster,rollout,kind,wave,release_from")
    assert len(csv_text.splitlines()) == 9


def check_delivery(scenario) -> None:
    report = services.build("delivery", {**period(scenario), "group_by": "env"})
    summary = report.summary
    # 7 deployments changed a cluster (the blocked one did not); #3's two were rolled back.
    assert (summary["deployments"], summary["failures"], summary["change_failure_rate"]) == (7, 2, 0.286)
    assert summary["unrestored_failures"] == 0 and summary["median_time_to_restore_h"] >= 0
    assert summary["lead_times_known"] == 7 and summary["median_lead_time_h"] > 0
    assert summary["frequency_category"] == "weekly"  # one day of deployments in one week
    groups = {(r[0], r[1]): r for r in report.table("groups").rows}
    assert groups[("channel", "platform-1-0")][3:5] == [5, 0] and groups[("channel", "platform-1-1")][3:5] == [2, 2]
    assert groups[("label", "env=prod")][3:5] == [6, 2] and groups[("label", "env=staging")][3:5] == [1, 0]


def check_compliance(scenario) -> None:
    report = services.build("compliance", period(scenario))
    assert report.summary == {"clusters": 4, "gated": 3, "never_gated": 1, "denied": 0, "waivers_in_effect": 1,
                              "waivers_expiring_soon": 1}
    assert [r[0] for r in report.table("never_gated").rows] == ["spare-1"]
    verdicts = {r[0]: r for r in report.table("clusters").rows}
    assert verdicts["local-3"][2:3] == ["allowed"] and verdicts["local-3"][7] == 1  # waived
    assert [r[2] for r in report.table("violations").rows] == ["waived"]


def check_access(scenario) -> None:
    browser = Client()
    assert browser.login(username="ada-admin", password="wrong") is False
    user, password = accounts.create_user("carol", Role.OPERATOR)
    assert browser.login(username="carol", password=password)
    with context.activate(source="cli", actor="cli:root"):
        token, _ = accounts.issue_token(user, "ci")
        accounts.revoke_token(token)
    viewer = scenario.ada.__class__()
    assert viewer.get("/api/v1/reports/changes/").status_code == 401
    report = services.build("access", {"since": scenario.started.isoformat()})
    assert report.summary == {"sign_ins": 1, "failed_sign_ins": 1, "role_changes": 1, "tokens_created": 1,
                              "tokens_revoked": 1, "refused_requests": 1}
    with pytest.raises(services.ReportForbidden):
        services.build("access", {}, user=get_user_model().objects.get(username="vera"))


def check_pdf(scenario, tmp_path) -> None:
    if not shutil.which("pdftoppm"):
        pytest.fail("pdftoppm is missing: scripts/services.sh installs poppler-utils")
    report = services.build("changes", period(scenario), generated_by="ada-admin")
    path = tmp_path / "changes.pdf"
    path.write_bytes(to_pdf(report))
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    assert pages >= 1 and "Title:           Change report" in info
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(path), str(tmp_path / "page")], check=True)
    rendered = sorted(tmp_path.glob("page-*.png"))
    assert len(rendered) == pages and all(p.stat().st_size > 2000 for p in rendered)
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True).stdout
    head = report.chain_head
    for expected in ("Change report", "Generated by", "ada-admin", f"event #{head.sequence}, hash {head.hash}",
                     f"Page 1 of {pages}", f"Page {pages} of {pages}", "approval skipped", "local-3", "grace-admin"):
        assert expected in text, expected


def check_tampering(scenario) -> None:
    anchors, unreadable = deploy_tag_anchors()
    assert [line.split(":")[0] for line in unreadable] == ["spare-1"]  # its repo does not exist
    assert len(anchors) == 7 and verify_chain(anchors=anchors).ok  # one anchor per deploy tag
    call_command("audit", "verify", "--anchors", stdout=io.StringIO(), stderr=io.StringIO())
    approve = AuditEvent.objects.get(action="rollout.approve")
    # A consistent rewrite, by someone who also holds the signing key: the approver becomes
    # the author, every later hash is recomputed, and the checkpoints re-signed.
    rewrite_from(approve.sequence, actor="ada-admin")
    tamper(("DELETE FROM audit_auditcheckpoint", []))
    checkpoints.checkpoint_head()
    assert verify_chain().ok
    report = verify_chain(anchors=deploy_tag_anchors()[0])
    assert not report.ok and "deploy tag deploy/" in report.reason and "the chain was rewritten" in report.reason
    with pytest.raises(CommandError, match=r"audit chain BROKEN .*: event #\d+: deploy tag deploy/"):
        call_command("audit", "verify", "--anchors", stderr=io.StringIO())
    tamper(("UPDATE audit_auditevent SET target_repr = %s WHERE sequence = %s", ["x", approve.sequence - 3]))
    assert verify_chain().first_broken == approve.sequence - 3
    tamper(("DELETE FROM audit_auditevent WHERE sequence = %s", [approve.sequence - 5]))
    assert verify_chain().first_broken == approve.sequence - 4 and "events are missing" in verify_chain().reason


def test_reports_from_a_real_rollout(scenario, tmp_path):
    from tests.conftest import make_client

    make_client(Role.VIEWER, "vera")
    check_changes(scenario)
    check_delivery(scenario)
    check_compliance(scenario)
    check_pdf(scenario, tmp_path)
    check_access(scenario)
    check_tampering(scenario)
