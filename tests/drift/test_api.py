"""The drift API over recorded drift (no cluster needed): the fleet summary, filters, a
cluster's JSON and unified diff, 202s for scans, refusals, rules with their errors and audit."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from fleet.audit.models import AuditEvent
from fleet.drift import services
from fleet.drift.models import ClusterDrift, DriftedResource, IgnoreRule
from tests.factories import ChannelFactory, ClusterFactory

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def recorded(queued_scans):
    stable, edge = ChannelFactory(name="stable"), ChannelFactory(name="edge")
    now = timezone.now()
    rows = {}
    for name, channel, ring, state, since in [
        ("a-1", stable, "canary", "in_sync", None), ("a-2", stable, "main", "drifted", 30),
        ("a-3", edge, "main", "drifted", 90), ("a-4", edge, "main", "unknown", None),
        ("a-5", edge, "canary", "error", None)]:
        cluster = ClusterFactory(name=name, channel=channel, labels={"ring": ring})
        rows[name] = ClusterDrift.objects.create(
            cluster=cluster, state=state, reason="tag gone" if state == "error" else "",
            first_drift_observed_at=now - datetime.timedelta(minutes=since) if since else None,
            modified=1 if state == "drifted" else 0, last_scan_at=now)
    for name in ("a-2", "a-3"):
        DriftedResource.objects.create(
            drift=rows[name], group="apps", version="v1", kind="Deployment", namespace="prod", name="web",
            state="modified", manager="kubectl-edit", first_observed_at=now, last_observed_at=now,
            changes=[{"path": "spec.replicas", "pointer": "/spec/replicas", "desired": 2, "live": 5,
                      "manager": "kubectl-edit", "time": now.isoformat()}])
    return rows


@pytest.fixture
def queued_scans():
    seen: list[tuple] = []
    previous = services.install(services.Scheduler(scan_cluster=lambda *a: seen.append(a),
                                                   scan_selector=lambda *a: seen.append(a)))
    yield seen
    services.install(previous)


def test_the_fleet_summary_counts_groups_ranks_and_caps(viewer, recorded):
    body = viewer.get("/api/v1/drift/?label=ring&limit=2").json()
    assert body["counts"] == {"in_sync": 1, "drifted": 2, "unknown": 1, "error": 1} and body["worst"] == "error"
    assert body["by_channel"]["stable"] == {"counts": {"in_sync": 1, "drifted": 1}, "worst": "drifted", "total": 2}
    assert body["by_channel"]["edge"]["worst"] == "error"
    assert body["by_label"]["groups"]["canary"]["worst"] == "error"
    assert body["by_release"]["(not deployed)"]["total"] == 5
    assert body["most_drifted_kinds"] == [{"kind": "Deployment.apps", "objects": 2}]
    assert body["most_drifted_fields"] == [{"path": "spec.replicas", "objects": 2}]
    assert body["oldest_open_drift"]["cluster"] == "a-3"
    assert [row["cluster"] for row in body["clusters"]] == ["a-5", "a-3"]  # worst first, then oldest drift
    assert body["clusters_total"] == 5 and body["clusters_shown"] == 2


def test_clusters_filter_by_state_channel_and_selector(viewer, recorded):
    names = lambda q: [r["cluster"] for r in viewer.get(f"/api/v1/drift/clusters/{q}").json()["results"]]  # noqa
    assert names("?state=drifted") == ["a-2", "a-3"]
    assert names("?channel=edge&selector=ring=main") == ["a-3", "a-4"]
    bad = viewer.get("/api/v1/drift/clusters/?selector=ring in (")
    assert bad.status_code == 400 and "selector" in bad.json()


def test_a_clusters_drift_as_json_and_as_a_unified_diff(viewer, recorded):
    body = viewer.get("/api/v1/drift/clusters/a-2/").json()
    assert body["state"] == "drifted" and body["mode"] == "report" and body["mode_source"] == "default"
    resource = body["resources"][0]
    assert resource["ref"] == {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "prod",
                               "name": "web"}
    assert resource["manager"] == "kubectl-edit" and resource["first_observed_at"]  # what a join needs
    assert "-spec.replicas: 2\n+spec.replicas: 5  # kubectl-edit" in body["unified_diff"]
    text = viewer.get("/api/v1/drift/clusters/a-2/?format=diff")
    assert text["Content-Type"].startswith("text/x-diff") and b"--- desired/Deployment.apps prod/web" in text.content
    assert viewer.get("/api/v1/drift/clusters/nope/").status_code == 404


def test_scan_requests_answer_202_with_the_url_to_follow(operator, viewer, recorded, queued_scans,
                                                         django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post("/api/v1/drift/clusters/a-1/scan/")
        fleet_wide = operator.post("/api/v1/drift/scan/", {"selector": "ring=main"}, format="json")
    assert response.status_code == 202 and response["Location"].endswith("/api/v1/drift/clusters/a-1/")
    assert fleet_wide.status_code == 202 and fleet_wide.json()["clusters"] == 3
    assert queued_scans == [(recorded["a-1"].cluster_id, "manual"), ("ring=main", "selector")]
    assert viewer.post("/api/v1/drift/clusters/a-1/scan/").status_code == 403


def test_a_heal_of_a_cluster_in_sync_or_paused_is_refused_with_the_reason(operator, recorded):
    response = operator.post("/api/v1/drift/clusters/a-1/heal/")
    assert response.status_code == 409 and "nothing to heal" in response.json()["detail"]
    cluster = recorded["a-2"].cluster
    cluster.paused = True
    cluster.save()
    response = operator.post("/api/v1/drift/clusters/a-2/heal/")
    assert response.status_code == 409 and "paused" in response.json()["detail"]


def test_ignore_rules_are_validated_audited_and_an_admins(admin_client_api, operator, recorded):
    bad = admin_client_api.post("/api/v1/drift/ignore-rules/", {"name": "r", "json_pointers": ["spec/x"]},
                                format="json")
    assert bad.status_code == 400 and "json_pointers[0]" in bad.json() and "JSON pointer" in bad.json()["detail"]
    bad = admin_client_api.post("/api/v1/drift/ignore-rules/", {"name": "r", "managers": ["hpa"],
                                                                "cluster_selector": "a in ("}, format="json")
    assert bad.status_code == 400 and "cluster_selector" in bad.json()
    assert operator.post("/api/v1/drift/ignore-rules/", {"name": "r", "managers": ["hpa"]},
                         format="json").status_code == 403
    made = admin_client_api.post("/api/v1/drift/ignore-rules/", {"name": "r", "kind": "Deployment",
                                                                 "managers": ["hpa"]}, format="json")
    assert made.status_code == 201, made.json()
    assert AuditEvent.objects.filter(action="ignorerule.create").exists()
    rule = IgnoreRule.objects.get(name="r")
    assert admin_client_api.patch(f"/api/v1/drift/ignore-rules/{rule.pk}/", {"json_pointers": ["/a/~9"]},
                                  format="json").status_code == 400
    assert admin_client_api.delete(f"/api/v1/drift/ignore-rules/{rule.pk}/").status_code == 204


def test_a_clusters_mode_and_interval_are_set_through_the_api(operator, recorded):
    response = operator.patch("/api/v1/drift/clusters/a-1/", {"mode": "freeze", "interval_seconds": 60},
                              format="json")
    assert response.status_code == 200 and response.json()["mode"] == "freeze"
    assert operator.get("/api/v1/drift/clusters/a-1/").json()["interval_seconds"] == 60
    assert operator.patch("/api/v1/drift/clusters/a-1/", {"mode": "nap"}, format="json").status_code == 400


def test_rules_as_code_are_loaded_all_or_nothing(tmp_path, recorded):
    path = tmp_path / "rules.yaml"
    path.write_text("ignore:\n  - name: hpa\n    kind: Deployment\n    managers: [kube-controller-manager]\n"
                    "modes:\n  - name: prod\n    cluster_selector: ring=main\n    mode: heal\n")
    assert services.sync_rules(path) == {"created": 2, "updated": 0, "removed": 0}
    assert services.cluster_detail(recorded["a-2"].cluster)["mode"] == "heal"
    with pytest.raises(Exception) as caught:
        services.update_ignore_rule(IgnoreRule.objects.get(name="hpa"), {"managers": ["x"]})
    assert "rules file" in str(caught.value)
    path.write_text("ignore:\n  - name: other\n    json_pointers: [nope]\n")
    with pytest.raises(Exception) as caught:
        services.sync_rules(path)
    assert "ignore[0].json_pointers[0]" in str(caught.value)
    assert IgnoreRule.objects.filter(name="hpa").exists()  # nothing half-applied


def test_the_cli_shows_a_diff_the_summary_and_scans_with_a_progress_bar(recorded):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    out = StringIO()
    call_command("drift", "show", "a-2", "--no-color", stdout=out)
    text = out.getvalue()
    assert text.startswith("# a-2: drifted, mode report") and "+spec.replicas: 5  # kubectl-edit" in text
    out = StringIO()
    call_command("drift", "status", "--label", "ring", stdout=out)
    assert '"worst": "error"' in out.getvalue()
    out, err = StringIO(), StringIO()
    call_command("drift", "scan", "--selector", "ring=none", stdout=out, stderr=err)
    assert out.getvalue().strip() == "0 clusters scanned"
    with pytest.raises(CommandError, match="bad selector"):
        call_command("drift", "scan", "--selector", "ring in (", stdout=out, stderr=err)
    with pytest.raises(CommandError, match="nothing to heal"):
        call_command("drift", "heal", "a-1", stdout=out)


def test_the_progress_bar_draws_in_place_on_a_terminal_and_by_tenths_in_a_log():
    from io import StringIO

    from fleet.drift.management.commands.drift import ProgressBar

    log = StringIO()
    bar = ProgressBar(20, log, tty=False)
    for _ in range(20):
        bar.update("in_sync")
    lines = log.getvalue().splitlines()
    assert len(lines) == 11 and lines[-1].startswith("[" + "#" * 30 + "] 20/20 clusters  in_sync 20")
    tty = StringIO()
    bar = ProgressBar(2, tty, tty=True)
    bar.update("drifted")
    bar.update("in_sync")
    assert tty.getvalue().count("\r") == 2 and tty.getvalue().endswith("\n")


def test_reading_a_cluster_never_scanned_writes_nothing_and_a_bad_scan_body_is_a_400(viewer, operator, recorded):
    ClusterFactory(name="new-1")
    body = viewer.get("/api/v1/drift/clusters/new-1/").json()
    assert body["state"] == "unknown" and body["resources"] == [] and body["unified_diff"] == ""
    assert not ClusterDrift.objects.filter(cluster__name="new-1").exists()
    assert operator.post("/api/v1/drift/scan/", ["x"], format="json").status_code == 400
    assert operator.post("/api/v1/drift/scan/", {"selector": 5}, format="json").status_code == 400


def test_periodic_scans_spread_new_clusters_over_an_interval_and_claim_the_due_ones(settings, recorded):
    settings.FLEET_DRIFT_INTERVAL = 180
    now = timezone.now()
    for name in ("n-1", "n-2", "n-3"):
        ClusterFactory(name=name)
    ClusterDrift.objects.filter(cluster__name="a-1").update(next_scan_at=now - datetime.timedelta(seconds=1))
    ClusterDrift.objects.exclude(cluster__name__in=["a-1", "a-3"]).update(
        next_scan_at=now + datetime.timedelta(seconds=60))
    ClusterDrift.objects.filter(cluster__name="a-3").update(next_scan_at=None)  # its requested scan never ran
    due = services.due_for_scan(limit=100)
    assert recorded["a-1"].cluster_id in due and recorded["a-3"].cluster_id in due
    assert recorded["a-2"].cluster_id not in due
    for row in ClusterDrift.objects.filter(cluster__name__startswith="n-"):
        assert now <= row.next_scan_at <= now + datetime.timedelta(seconds=181)  # spread over one interval
    claimed = ClusterDrift.objects.get(pk=recorded["a-1"].pk).next_scan_at
    assert claimed > now + datetime.timedelta(seconds=170)  # not enqueued again by the next tick
    assert recorded["a-1"].cluster_id not in services.due_for_scan(limit=100)
