"""The webhook endpoint as kube-apiserver calls it, credentials and their rotation, refusals
and their audit, and the file import."""

from __future__ import annotations

import datetime
import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from fleet.audit.models import AuditEvent
from fleet.clusteraudit import credentials
from fleet.clusteraudit.models import ClusterAuditEvent, IngestRefusal
from tests.clusteraudit.support import event, event_list
from tests.factories import ClusterFactory

pytestmark = [pytest.mark.django_db]


def post(client: Client, cluster: str, body, token: str | None, **headers):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.post(f"/api/v1/cluster-audit/ingest/{cluster}/", data, content_type="application/json", **headers)


@pytest.fixture
def sender():
    cluster = ClusterFactory(name="prod-1")
    _, token = credentials.issue(cluster)
    return cluster, token


def test_a_batch_is_stored_and_a_replay_is_stored_once(sender, client):
    cluster, token = sender
    batch = event_list(event(), event(stage="RequestReceived", code=None))
    first = post(client, "prod-1", batch, token)
    assert first.status_code == 200 and first.json() == {"received": 2, "stored": 2, "duplicates": 0}
    replay = post(client, "prod-1", batch, token)
    assert replay.json() == {"received": 2, "stored": 0, "duplicates": 2}
    assert ClusterAuditEvent.objects.filter(cluster=cluster).count() == 2


def test_a_malformed_batch_names_the_first_bad_event_and_stores_nothing(sender, client):
    _, token = sender
    bad = {**event(), "stageTimestamp": "not a time"}
    response = post(client, "prod-1", event_list(event(), bad, {**event(), "verb": 7}), token)
    assert response.status_code == 400
    assert response.json()["field"] == "items[1].stageTimestamp"
    assert "items[1]" in response.json()["detail"]
    assert not ClusterAuditEvent.objects.exists()
    assert post(client, "prod-1", b"{not json", token).status_code == 400
    assert post(client, "prod-1", b"[" * 10_000, token).status_code == 400
    assert post(client, "prod-1", {"kind": "PodList", "apiVersion": "v1"}, token).json()["field"] == "kind"


def test_an_oversize_batch_is_413_by_content_length_before_reading(sender, client, settings):
    _, token = sender
    settings.FLEET_CLUSTER_AUDIT_MAX_BATCH_BYTES = 2048
    response = post(client, "prod-1", event_list(*[event() for _ in range(20)]), token)
    assert response.status_code == 413 and "FLEET_CLUSTER_AUDIT_MAX_BATCH_BYTES" in response.json()["detail"]
    lying = post(client, "prod-1", event_list(*[event() for _ in range(20)]), token, CONTENT_LENGTH="10")
    assert lying.status_code == 400  # the read stops at the length it claimed: a cut body is not JSON
    assert not ClusterAuditEvent.objects.exists()


def test_missing_wrong_and_other_clusters_credentials_are_refused_and_audited_once_per_window(sender, client):
    cluster, token = sender
    other = ClusterFactory(name="prod-2")
    _, other_token = credentials.issue(other)
    batch = event_list(event())
    for _ in range(5):
        assert post(client, "prod-1", batch, None).status_code == 401
    wrong = post(client, "prod-1", batch, token[:-2] + "xx")
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    assert post(client, "prod-1", batch, "flt_abc_def").status_code == 401  # a user's API token: not this
    crossed = post(client, "prod-1", batch, other_token)
    assert crossed.status_code == 403 and "prod-2" in crossed.json()["detail"]
    assert post(client, "nope", batch, "fca_0_x").status_code == 401  # unknown names are not told apart
    assert post(client, "nope", batch, token).status_code == 403  # prod-1's credential, for another name
    assert not ClusterAuditEvent.objects.exists()
    refused = AuditEvent.objects.filter(action="clusteraudit.ingest.refused")
    # one audit event per (claimed cluster, address) and window; the rest counted
    assert refused.count() == 2
    assert sorted(IngestRefusal.objects.values_list("count", flat=True)) == [2, 8]
    assert token not in str(list(AuditEvent.objects.values_list("metadata", flat=True)))


def test_refusals_of_the_next_window_carry_the_previous_count(db):
    ClusterFactory(name="prod-1")
    start = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
    for second in range(3):
        credentials.note_refusal("prod-1", "10.9.9.9", "x", now=start + datetime.timedelta(seconds=second))
    assert credentials.note_refusal("prod-1", "10.9.9.9", "x", now=start + credentials.REFUSAL_WINDOW)
    last = AuditEvent.objects.filter(action="clusteraudit.ingest.refused").order_by("-sequence").first()
    assert last.metadata["refused_in_previous_window"] == 3


def test_rotation_revokes_at_once_or_after_a_grace_and_is_audited(sender, client):
    cluster, old = sender
    _, new = credentials.issue(cluster, grace=datetime.timedelta(minutes=5))
    assert post(client, "prod-1", event_list(event()), old).status_code == 200
    assert post(client, "prod-1", event_list(event()), new).status_code == 200
    _, newest = credentials.issue(cluster)
    assert post(client, "prod-1", event_list(event()), new).status_code == 401
    assert post(client, "prod-1", event_list(event()), newest).status_code == 200
    actions = list(AuditEvent.objects.filter(action__startswith="clusteraudit.credential").order_by("sequence")
                   .values_list("action", flat=True))
    assert actions == ["clusteraudit.credential.issue", "clusteraudit.credential.rotate",
                       "clusteraudit.credential.rotate"]
    assert all(secret.split("_", 2)[2] not in str(list(AuditEvent.objects.values_list("metadata", "after")))
               for secret in (old, new, newest))


def test_only_an_admin_rotates_over_the_api(sender, viewer, admin_client_api):
    assert viewer.post("/api/v1/cluster-audit/sources/prod-1/rotate/", {}, format="json").status_code == 403
    response = admin_client_api.post("/api/v1/cluster-audit/sources/prod-1/rotate/", {"grace_seconds": 60},
                                     format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["credential"].startswith("fca_") and body["previous_valid_until"]
    assert body["ingest_url"].endswith("/api/v1/cluster-audit/ingest/prod-1/")
    assert body["credential"] in body["webhook_kubeconfig"]
    listed = viewer.get("/api/v1/cluster-audit/sources/prod-1/").json()
    assert "credential" not in listed and "secret_hash" not in json.dumps(listed)


def test_a_file_is_imported_whole_or_not_at_all(tmp_path, capsys):
    cluster = ClusterFactory(name="managed-1")
    good = tmp_path / "audit.log"
    good.write_text("\n".join(json.dumps(event()) for _ in range(3)) + "\n\n")
    call_command("cluster-audit", "import", str(good), "--cluster", "managed-1")
    assert "3 events read, 3 stored" in capsys.readouterr().out
    call_command("cluster-audit", "import", str(good), "--cluster", "managed-1")
    assert "0 stored, 3 already there" in capsys.readouterr().out
    bad = tmp_path / "bad.log"
    bad.write_text(json.dumps(event()) + "\n" + json.dumps({**event(), "stage": "Nope"}) + "\n")
    with pytest.raises(CommandError, match="line 2: stage"):
        call_command("cluster-audit", "import", str(bad), "--cluster", "managed-1")
    with pytest.raises(CommandError, match="line 1"):
        (tmp_path / "junk.log").write_text("{\n")
        call_command("cluster-audit", "import", str(tmp_path / "junk.log"), "--cluster", "managed-1")
    assert ClusterAuditEvent.objects.filter(cluster=cluster).count() == 3
