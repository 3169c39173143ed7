"""The Low findings of the outside probe, one test each (the JSON depth, YAML, gitops path
and inventory sync ones live with their classes: test_json, test_yaml, test_control_files,
test_inventory_sync)."""

from __future__ import annotations

import os
import stat

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from fleet.audit.models import AuditEvent
from fleet.core.labels import LabelError, parse_selector
from tests.factories import ChannelFactory, ClusterFactory, ReleaseFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]
TOKEN = "tok-7d1c2b9a-never-shown"


def cluster_body(**overrides):
    ChannelFactory(name="stable")
    return {"name": "c-1", "api_server_url": "https://10.0.0.1:6443", "channel": "stable",
            "internal_repo_url": "https://git.example.com/c/c-1.git", **overrides}


KUBECONFIG_BASE = ("apiVersion: v1\nkind: Config\nusers: [{name: u, user: {token: t}}]\n"
                   "clusters: [{name: c, cluster: {server: 'https://10.0.0.1:6443'}}]\n")


@pytest.mark.parametrize("kubeconfig", [
    KUBECONFIG_BASE + "current-context: c\ncontexts: [{name: c, context: {cluster: {a: 1}, user: u}}]\n",
    KUBECONFIG_BASE + "current-context: [c]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n",
    KUBECONFIG_BASE.replace("users: [{name: u, user: {token: t}}]", "users: [[u]]"),
    KUBECONFIG_BASE.replace("users: [{name: u, user: {token: t}}]", "users: {u: t}"),
])
def test_a_kubeconfig_of_the_wrong_shape_is_a_400(operator, kubeconfig):
    response = operator.post("/api/v1/clusters/", cluster_body(credentials={"kubeconfig": kubeconfig}), format="json")
    assert response.status_code == 400, response.content
    assert "kubeconfig" in response.json()["credentials"]


@pytest.mark.parametrize("body", [[1, 2], "reason", 5])
def test_rollout_actions_with_a_body_that_is_not_an_object_are_a_400(operator, body):
    release = ReleaseFactory()
    ClusterFactory(name="r-1", channel=release.channel, labels={"env": "dev"})
    rollout = operator.post("/api/v1/rollouts/", {"release": release.pk, "selector": "env=dev",
                                                  "waves": [{"name": "all"}]}, format="json").json()["id"]
    for action in ("abort", "rollback"):
        response = operator.post(f"/api/v1/rollouts/{rollout}/{action}/", body, format="json")
        assert response.status_code == 400, (action, response.content)
        assert "must be a JSON object" in str(response.json())


@pytest.mark.parametrize("url", ["https://10.0.0.\n1:6443", "https://10.0.0.1:6443/\nX: y", "https://10.0.0.1 :6443"])
def test_an_api_server_url_with_a_newline_or_space_is_refused(operator, url):
    response = operator.post("/api/v1/clusters/", cluster_body(api_server_url=url), format="json")
    assert response.status_code == 400 and "control character" in str(response.json()["api_server_url"])


def test_an_empty_set_in_a_selector_is_refused(viewer):
    with pytest.raises(LabelError, match="in needs at least one value"):
        parse_selector("a in ()")
    with pytest.raises(LabelError, match="notin needs at least one value"):
        parse_selector("env=prod,a notin ( )")
    assert parse_selector("a in (,x)").matches({"a": ""})  # an empty value is still a value
    response = viewer.get("/api/v1/clusters/", {"selector": "a in ()"})
    assert response.status_code == 400 and "at least one value" in response.json()["selector"][0]


def test_the_sqlite_database_is_private(tmp_path):
    from django.db.utils import ConnectionHandler

    from fleet.conf import sqlite_database

    os.umask(0o022)
    handler = ConnectionHandler({"default": sqlite_database(tmp_path / "fleet.sqlite3")})
    connection = handler["default"]
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE t (x int)")
        connection.close()
        connection.ensure_connection()  # the WAL files exist by now; the next connection tightens them
    finally:
        connection.close()
    for name in ("fleet.sqlite3", "fleet.sqlite3-wal", "fleet.sqlite3-shm"):
        path = tmp_path / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name


def test_a_csrf_refusal_is_audited_as_the_sessions_user():
    get_user_model().objects.create_superuser("sam", "sam@example.com", "pw")
    browser = Client(enforce_csrf_checks=True)
    browser.login(username="sam", password="pw")
    response = browser.post("/api/v1/channels/", {"name": "x"}, content_type="application/json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    event = AuditEvent.objects.get(action="auth.denied")
    assert event.actor == "sam" and "CSRF" in event.metadata["reason"]


def test_a_failed_sign_in_records_the_user_name_tried_never_the_password(client):
    client.post("/admin/login/?next=/admin/", {"username": "mallory", "password": TOKEN})
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.target_repr == "mallory" and event.metadata == {"username": "mallory"}
    assert TOKEN not in str(AuditEvent.objects.values_list("metadata", "target_repr", "before", "after"))


def test_the_admin_form_never_shows_submitted_credentials_again(client):
    get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.login(username="root", password="pw")
    channel = ChannelFactory(name="stable")
    page = client.post("/admin/inventory/cluster/add/", {
        "name": "c-1", "api_server_url": "https://10.0.0.1:6443", "channel": channel.pk,
        "internal_repo_url": "https://git.example.com/c/c-1.git", "internal_branch": "main",
        "labels": "{}", "new_credentials": '{"token": "' + TOKEN + '", "bogus": "x"}'})
    assert page.status_code == 200 and b"unknown credential field" in page.content
    assert TOKEN.encode() not in page.content
    secret = client.post("/admin/gitops/repositorycredential/add/", {
        "name": "v", "url_prefix": "http://bad", "kind": "https-token", "new_secret": TOKEN})
    assert secret.status_code == 200 and TOKEN.encode() not in secret.content
