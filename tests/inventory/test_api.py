"""The inventory API on the real database: roles, filters, bad input, write-only secrets."""

import json

import pytest

from fleet.audit.models import AuditEvent
from fleet.inventory.models import Cluster
from tests.factories import ChannelFactory, ClusterFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]
URL = "/api/v1/clusters/"


def payload(**overrides):
    ChannelFactory(name="stable")
    data = {"name": "prod-eu-1", "labels": {"env": "prod", "region": "eu"},
            "api_server_url": "https://10.1.0.1:6443", "channel": "stable",
            "internal_repo_url": "https://git.example.com/clusters/prod-eu-1.git",
            "credentials": {"token": "s3cr3t-t0ken-value"}}
    data.update(overrides)
    return data


def test_operator_creates_cluster_and_secret_is_write_only(operator):
    response = operator.post(URL, payload(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["has_credentials"] is True and "credentials" not in body
    cluster = Cluster.objects.get(name="prod-eu-1")
    assert cluster.get_credentials().token == "s3cr3t-t0ken-value"
    assert "s3cr3t" not in cluster.credentials_encrypted
    detail = operator.get(f"{URL}{cluster.pk}/")
    assert "s3cr3t" not in detail.content.decode()
    event = AuditEvent.objects.get(action="cluster.create")
    assert (event.actor, event.source, event.cluster) == ("otto-operator", "api", "prod-eu-1")
    assert event.after["credentials_encrypted"] == "(set)"
    assert "s3cr3t" not in json.dumps(event.after)
    assert event.request_id == response["X-Request-ID"]


def test_update_replaces_credentials_and_audits_only_real_changes(operator):
    cluster_id = operator.post(URL, payload(), format="json").json()["id"]
    same = operator.patch(f"{URL}{cluster_id}/", {"credentials": {"token": "s3cr3t-t0ken-value"}},
                          format="json")
    assert same.status_code == 200
    assert not AuditEvent.objects.filter(action="cluster.update").exists()
    operator.patch(f"{URL}{cluster_id}/", {"credentials": {"token": "rotated"}, "paused": True},
                   format="json")
    event = AuditEvent.objects.get(action="cluster.update")
    assert event.metadata["changed"] == ["credentials_encrypted", "paused"]
    assert Cluster.objects.get(pk=cluster_id).get_credentials().token == "rotated"
    operator.patch(f"{URL}{cluster_id}/", {"credentials": None}, format="json")
    assert Cluster.objects.get(pk=cluster_id).get_credentials() is None


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"labels": {"Bad Key": "x"}}, "labels", "label key 'Bad Key'"),
        ({"labels": {f"k{i}": "v" for i in range(65)}}, "labels", "at most 64 labels"),
        ({"api_server_url": "ftp://10.0.0.1"}, "api_server_url", "must use http or https"),
        ({"api_server_url": "https://admin:pw@10.0.0.1"}, "api_server_url", "must not carry credentials"),
        ({"internal_repo_url": "https://bob:token@git.example.com/c.git"}, "internal_repo_url",
         "must not carry credentials inline"),
        ({"name": "Not_A_Name"}, "name", "not a valid name"),
        ({"channel": "nope"}, "channel", "does not exist"),
        ({"credentials": {"token": "t", "kubeconfig": "x"}}, "credentials", "not both"),
        ({"credentials": {"token": "x" * 70000}}, "credentials", "larger than"),
    ],
)
def test_bad_input_is_400_with_field_message_and_writes_nothing(operator, overrides, field, fragment):
    response = operator.post(URL, payload(**overrides), format="json")
    assert response.status_code == 400
    assert fragment in json.dumps(response.json()[field])
    assert not Cluster.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="cluster.").exists()


def test_duplicate_name_is_400(operator):
    assert operator.post(URL, payload(), format="json").status_code == 201
    response = operator.post(URL, payload(), format="json")
    assert response.status_code == 400
    assert "already exists" in response.json()["name"][0]
    assert Cluster.objects.count() == 1


def test_oversize_body_is_400_and_writes_nothing(operator, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    response = operator.post(URL, payload(labels={"a": "b" * 60}, notes="x" * 10_000), format="json")
    assert response.status_code == 400
    assert "exceeds" in response.json()["detail"]
    assert not Cluster.objects.exists()


def test_no_credentials_is_401_and_wrong_role_is_403_both_audited(anonymous, viewer, roleless):
    assert anonymous.get(URL).status_code == 401
    assert anonymous.get(URL)["WWW-Authenticate"].startswith("Bearer")
    assert viewer.get(URL).status_code == 200
    assert viewer.post(URL, payload(), format="json").status_code == 403
    assert roleless.get(URL).status_code == 403
    denied = AuditEvent.objects.filter(action="auth.denied").order_by("sequence")
    assert [(e.actor, e.target_repr) for e in denied] == [
        ("vera-viewer", f"POST {URL}"), ("rolf-noroles", f"GET {URL}")]
    assert AuditEvent.objects.filter(action="auth.unauthenticated", actor="anonymous").count() == 2


def test_bad_token_is_401(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer flt_nokey_nosecret")
    response = anonymous.get(URL)
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid API token."


def test_label_selector_channel_status_filters_and_ordering(viewer):
    stable, edge = ChannelFactory(name="stable"), ChannelFactory(name="edge")
    ClusterFactory(name="a-prod-eu", labels={"env": "prod", "region": "eu"}, channel=stable)
    ClusterFactory(name="b-prod-us", labels={"env": "prod", "region": "us", "canary": ""}, channel=stable)
    ClusterFactory(name="c-prod-ap", labels={"env": "prod", "region": "ap"}, channel=edge, status="ready")
    ClusterFactory(name="d-dev", labels={"env": "dev"}, channel=edge)

    def names(query):
        response = viewer.get(URL, query)
        assert response.status_code == 200, response.content
        return [c["name"] for c in response.json()["results"]]

    assert names({"selector": "env=prod,region in (eu,us),!canary"}) == ["a-prod-eu"]
    assert names({"selector": "region notin (eu,us)"}) == ["c-prod-ap", "d-dev"]
    assert names({"selector": "env!=prod"}) == ["d-dev"]
    assert names({"selector": "canary"}) == ["b-prod-us"]
    assert names({"channel": "edge"}) == ["c-prod-ap", "d-dev"]
    assert names({"status": "ready"}) == ["c-prod-ap"]
    assert names({"ordering": "-name", "page_size": 2}) == ["d-dev", "c-prod-ap"]
    bad = viewer.get(URL, {"selector": "region in (eu"})
    assert bad.status_code == 400 and "expected ')'" in bad.json()["selector"][0]


def test_list_is_paginated_with_constant_queries(viewer, django_assert_max_num_queries):
    for i in range(60):
        ClusterFactory(name=f"c-{i:03d}")
    with django_assert_max_num_queries(6):
        body = viewer.get(URL).json()
    assert body["count"] == 60 and len(body["results"]) == 50 and body["next"]


def test_delete_is_audited_with_before_snapshot(operator):
    cluster_id = operator.post(URL, payload(), format="json").json()["id"]
    assert operator.delete(f"{URL}{cluster_id}/").status_code == 204
    event = AuditEvent.objects.get(action="cluster.delete")
    assert event.before["name"] == "prod-eu-1" and event.after is None
    assert event.cluster == "prod-eu-1"
