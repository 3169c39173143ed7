"""Parsing, classifying and storing events; partitions and retention."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection

from fleet.audit.models import AuditEvent
from fleet.clusteraudit import partitions, services
from fleet.clusteraudit.classify import FleetIdentity
from fleet.clusteraudit.events import BadEvent, parse_event, parse_event_list
from fleet.clusteraudit.models import AuditSource, ClusterAuditEvent
from tests.clusteraudit.support import T0, event, event_list
from tests.factories import ClusterFactory

pytestmark = [pytest.mark.django_db]


def test_an_event_keeps_what_an_investigation_needs():
    parsed = parse_event(event(impersonatedUser={"username": "bob", "groups": ["devs"]}), "items[0]").fields
    assert parsed["username"] == "alice@corp" and parsed["groups"] == ["system:authenticated"]
    assert parsed["impersonated_user"] == "bob" and parsed["impersonated_groups"] == ["devs"]
    assert (parsed["verb"], parsed["api_group"], parsed["resource"], parsed["namespace"], parsed["name"]) == (
        "patch", "apps", "deployments", "prod", "web")
    assert parsed["field_manager"] == "kubectl-edit" and parsed["source_ips"] == ["10.1.2.3"]
    assert parsed["request_received_at"] == T0 and parsed["response_code"] == 200


@pytest.mark.parametrize(("change", "field", "says"), [
    ({"stage": "Done"}, "items[0].stage", "expected one of"),
    ({"requestReceivedTimestamp": "yesterday"}, "items[0].requestReceivedTimestamp", "RFC 3339"),
    ({"auditID": None}, "items[0].auditID", "is missing"),
    ({"user": "alice"}, "items[0].user", "must be an object"),
    ({"sourceIPs": [1]}, "items[0].sourceIPs", "list of strings"),
    ({"responseStatus": {"code": "200"}}, "items[0].responseStatus.code", "HTTP status"),
    ({"auditID": "x" * 129}, "items[0].audit_id", "longer than 128"),
])
def test_a_bad_event_is_named_by_position_and_field(change, field, says):
    bad = {**event(), **change}
    if change.get("auditID", "") is None:
        del bad["auditID"]
    with pytest.raises(BadEvent) as caught:
        parse_event_list(event_list(bad))
    assert caught.value.field == field and says in str(caught.value)


def test_secret_contents_are_never_kept():
    secret = {"apiVersion": "v1", "kind": "Secret", "data": {"password": "aHVudGVyMg=="},
              "stringData": {"token": "hunter2"},
              "metadata": {"name": "db", "annotations": {
                  "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"password":"aHVudGVyMg=="}}',
                  "team": "x"}}}
    for ev in (event(resource="secrets", group="", request_object=secret),
               event(resource="secrets", group="", request_object={"data": {"password": "aHVudGVyMg=="}})):
        stored = parse_event(ev, "items[0]").fields["request_object"]
        assert "aHVudGVyMg" not in str(stored) and "hunter2" not in str(stored)
    assert parse_event(event(resource="secrets", group="", request_object=secret), "x").fields[
        "request_object"]["metadata"]["annotations"] == {"team": "x"}


def test_a_replayed_batch_is_stored_once_and_classified():
    cluster = ClusterFactory()
    AuditSource.objects.create(cluster=cluster, key="k1", secret_hash="x", rotated_at=T0, fleet_username="fleet-sa")
    batch = parse_event_list(event_list(
        event(), event(user="fleet-sa", field_manager="fleet"),
        event(user="system:kube-controller-manager", field_manager=""),
        event(verb="get", field_manager=""), event(code=403)))
    first = services.ingest(cluster, batch)
    again = services.ingest(cluster, batch)
    assert first.as_dict() == {"received": 5, "stored": 5, "duplicates": 0}
    assert again.as_dict() == {"received": 5, "stored": 0, "duplicates": 5}
    rows = {(e.username, e.verb, e.response_code): (e.actor, e.outside_gitops) for e in ClusterAuditEvent.objects.all()}
    assert rows == {("alice@corp", "patch", 200): ("other", True), ("fleet-sa", "patch", 200): ("fleet", False),
                    ("system:kube-controller-manager", "patch", 200): ("system", False),
                    ("alice@corp", "get", 200): ("other", False), ("alice@corp", "patch", 403): ("other", False)}


def test_without_a_known_user_fleet_is_its_field_manager():
    identity = FleetIdentity("")
    assert identity.is_fleet("anyone", "fleet") and not identity.is_fleet("anyone", "kubectl-edit")
    assert FleetIdentity("fleet-sa").is_fleet("fleet-sa", "") and not FleetIdentity("fleet-sa").is_fleet("x", "fleet")


def test_clock_skew_keeps_events_in_their_own_time():
    cluster = ClusterFactory()
    far = T0 + datetime.timedelta(days=400)  # a clock a year ahead: no partition, the default one takes it
    services.ingest(cluster, parse_event_list(event_list(event(at=far), event(at=T0))))
    assert [e.request_received_at for e in ClusterAuditEvent.objects.filter(cluster=cluster)] == [far, T0]


@pytest.mark.postgres
def test_partitions_by_day_made_ahead_rows_moved_from_default_and_dropped_by_retention(settings):
    cluster = ClusterFactory()
    day = datetime.date(2031, 5, 1)
    at = datetime.datetime.combine(day, datetime.time(9), datetime.UTC)
    services.ingest(cluster, parse_event_list(event_list(event(at=at))))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {partitions.DEFAULT}")
        assert cursor.fetchone()[0] == 1
    made = partitions.ensure(day, ahead=2, behind=0)
    assert made == [partitions.partition_name(day + datetime.timedelta(days=d)) for d in range(3)]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {partitions.partition_name(day)}")
        assert cursor.fetchone()[0] == 1
        cursor.execute(f"SELECT count(*) FROM {partitions.DEFAULT}")
        assert cursor.fetchone()[0] == 0
    settings.FLEET_CLUSTER_AUDIT_KEEP_DAYS = 1
    result = services.maintain(datetime.datetime.combine(day + datetime.timedelta(days=2), datetime.time(),
                                                         datetime.UTC))
    assert partitions.partition_name(day) in result.partitions_dropped
    assert not ClusterAuditEvent.objects.filter(cluster=cluster).exists()
    assert AuditEvent.objects.filter(action="clusteraudit.retention").exists()


@pytest.mark.embedded
def test_retention_deletes_rows_off_postgresql(settings):
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL drops partitions: the test above")
    cluster = ClusterFactory()
    services.ingest(cluster, parse_event_list(event_list(event(at=T0), event(at=T0 + datetime.timedelta(days=5)))))
    settings.FLEET_CLUSTER_AUDIT_KEEP_DAYS = 3
    services.maintain(T0 + datetime.timedelta(days=6))
    assert ClusterAuditEvent.objects.count() == 1


def test_a_nul_in_a_request_object_does_not_fail_the_batch_and_nul_in_a_name_is_named():
    cluster = ClusterFactory()
    ev = event(resource="configmaps", group="", request_object={"data": {"k": "a\x00b"}})
    services.ingest(cluster, parse_event_list(event_list(ev)))
    assert ClusterAuditEvent.objects.get(cluster=cluster).request_object == {"data": {"k": "a\ufffdb"}}
    with pytest.raises(BadEvent) as caught:
        parse_event_list(event_list(event(user="eve\x00")))
    assert caught.value.field == "items[0].user.username"


def test_text_that_copy_must_escape_comes_back_as_sent():
    cluster = ClusterFactory()
    obj = {"data": {"script": "line 1\n\tline 2 \\ end\r", "quote": "\"x\""}}
    services.ingest(cluster, parse_event_list(event_list(event(user_agent="tool\\1\t(x)\n", name="a\\b",
                                                             request_object=obj))))
    stored = ClusterAuditEvent.objects.get(cluster=cluster)
    assert (stored.user_agent, stored.name, stored.request_object) == ("tool\\1\t(x)\n", "a\\b", obj)
    assert stored.request_received_at == T0 and stored.outside_gitops is True and stored.response_code == 200
