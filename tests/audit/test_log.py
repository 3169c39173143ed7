"""The audit log: append-only at every layer, hash-chained, filterable and exportable."""

import csv
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from fleet.audit import services
from fleet.audit.models import AppendOnlyError, AuditEvent, ChainVerification
from fleet.core import context
from tests.factories import ChannelFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]
URL = "/api/v1/audit/"


def make_events(n: int = 3) -> list[AuditEvent]:
    with context.activate(source="cli", actor="cli:alice"):
        return [services.record(f"test.event{i % 2}", target=ChannelFactory(name=f"ch-{i}"),
                                cluster=f"cl-{i}", metadata={"i": i}) for i in range(n)]


def test_chain_links_each_event_to_the_previous_one():
    events = make_events(3)
    assert events[0].prev_hash == "0" * 64
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert services.verify_chain().ok


def test_code_refuses_update_and_delete():
    event = make_events(1)[0]
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(actor="mallory")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        event.delete()
    event.actor = "mallory"
    with pytest.raises(AppendOnlyError):
        event.save()


@pytest.mark.parametrize("statement", ["UPDATE audit_auditevent SET actor = 'mallory'",
                                       "DELETE FROM audit_auditevent"])
def test_database_trigger_refuses_raw_update_and_delete(statement):
    make_events(1)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(statement)
    assert AuditEvent.objects.filter(actor="cli:alice").count() == 1


def tamper(sql: str) -> None:
    """Bypass the triggers as a database owner would, to prove verification catches it."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
            cursor.execute(sql)
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
        else:
            cursor.execute("DROP TRIGGER audit_event_no_update")
            cursor.execute("DROP TRIGGER audit_event_no_delete")
            cursor.execute(sql)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("UPDATE audit_auditevent SET actor = 'mallory' WHERE sequence = 2", "was altered"),
        ("DELETE FROM audit_auditevent WHERE sequence = 2", "events are missing"),
    ],
)
def test_verify_names_the_first_broken_event(sql, reason):
    make_events(4)
    tamper(sql)
    report = services.verify_chain()
    assert not report.ok and report.first_broken in (2, 3)
    assert reason in report.reason
    with pytest.raises(CommandError, match=r"audit chain BROKEN after 1 good events: event #\d"):
        call_command("audit", "verify")
    kept = services.latest_verification()  # what the console's status line shows
    assert (kept.ok, kept.first_broken_sequence, kept.source) == (False, report.first_broken, "cli")
    assert reason in kept.reason


def test_verify_command_and_endpoint_on_an_intact_chain(viewer):
    make_events(2)
    out = io.StringIO()
    call_command("audit", "verify", stdout=out)
    assert "audit chain intact" in out.getvalue()
    body = viewer.get(f"{URL}verify/").json()
    assert {k: body[k] for k in ("ok", "checked", "first_broken_sequence", "reason")} == {
        "ok": True, "checked": AuditEvent.objects.count(), "first_broken_sequence": None, "reason": ""}
    assert [(v.source, v.ok) for v in ChainVerification.objects.order_by("ran_at")] == [("cli", True), ("api", True)]


def test_filters_by_actor_action_target_cluster_and_time(viewer):
    events = make_events(4)

    def sequences(query):
        response = viewer.get(URL, query)
        assert response.status_code == 200, response.content
        return sorted(e["sequence"] for e in response.json()["results"])

    seqs = [e.sequence for e in events]
    assert sequences({"actor": "cli:alice"}) == seqs
    assert sequences({"action": "test.event1"}) == [seqs[1], seqs[3]]
    assert sequences({"action": "test."}) == seqs
    assert sequences({"target": f"channel:{events[2].target_id}"}) == [seqs[2]]
    assert sequences({"cluster": "cl-3"}) == [seqs[3]]
    assert sequences({"since": events[2].timestamp.isoformat()}) == seqs[2:]
    assert sequences({"until": events[1].timestamp.isoformat(), "actor": "cli:alice"}) == seqs[:1]


def test_export_csv_and_json_stream_every_matching_event(viewer):
    make_events(3)
    response = viewer.get(f"{URL}export/", {"format": "csv", "actor": "cli:alice"})
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["action"] for r in rows] == ["test.event0", "test.event1", "test.event0"]
    assert json.loads(rows[2]["metadata"]) == {"i": 2}
    body = json.loads(b"".join(viewer.get(f"{URL}export/", {"format": "json"}).streaming_content))
    assert [e["sequence"] for e in body] == sorted(e["sequence"] for e in body)
    assert viewer.get(f"{URL}export/", {"format": "xml"}).status_code == 400


def test_audit_is_read_only_over_the_api(admin_client_api):
    event = make_events(1)[0]
    assert admin_client_api.delete(f"{URL}{event.pk}/").status_code == 405
    assert admin_client_api.post(URL, {}, format="json").status_code == 405
