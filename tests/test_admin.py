"""The admin: every model registered, secrets shown only as set/unset, writes audited."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client

from fleet.audit.models import AuditEvent
from fleet.inventory.models import Cluster
from tests.factories import ChannelFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def admin_browser(db) -> Client:
    get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.login(username="root", password="pw")
    return client


def test_every_fleet_model_is_registered():
    from django.apps import apps

    fleet_models = [m for m in apps.get_models() if m.__module__.startswith("fleet.")]
    assert fleet_models
    assert [m.__name__ for m in fleet_models if m not in admin.site._registry] == []


def form(channel_id: int, **extra) -> dict:
    data = {"name": "edge-1", "labels": '{"env": "dev"}', "api_server_url": "https://10.9.0.1:6443",
            "internal_repo_url": "https://git.example.com/edge-1.git", "internal_branch": "main",
            "channel": channel_id, "status": "unknown"}
    data.update(extra)
    return data


def test_add_and_change_cluster_with_write_only_credentials(admin_browser):
    channel = ChannelFactory(name="stable")
    response = admin_browser.post("/admin/inventory/cluster/add/",
                                  form(channel.pk, new_credentials='{"token": "adm1n-secret"}'))
    assert response.status_code == 302, response.content.decode()[:2000]
    cluster = Cluster.objects.get(name="edge-1")
    assert cluster.get_credentials().token == "adm1n-secret"
    created = AuditEvent.objects.get(action="cluster.create")
    assert (created.source, created.actor) == ("admin", "root")

    page = admin_browser.get(f"/admin/inventory/cluster/{cluster.pk}/change/").content.decode()
    assert "adm1n-secret" not in page and cluster.credentials_encrypted not in page
    listing = admin_browser.get("/admin/inventory/cluster/").content.decode()
    assert ">set<" in listing

    admin_browser.post(f"/admin/inventory/cluster/{cluster.pk}/change/",
                       form(channel.pk, paused="on", new_credentials='{"token": "rotated"}'))
    updated = AuditEvent.objects.get(action="cluster.update")
    assert updated.metadata["changed"] == ["credentials_encrypted", "paused"]
    assert "rotated" not in str(updated.after)
    admin_browser.post(f"/admin/inventory/cluster/{cluster.pk}/change/",
                       form(channel.pk, clear_credentials="on"))
    assert Cluster.objects.get(pk=cluster.pk).get_credentials() is None


def test_bad_credentials_json_is_a_form_error_and_nothing_is_saved(admin_browser):
    channel = ChannelFactory(name="stable")
    response = admin_browser.post("/admin/inventory/cluster/add/",
                                  form(channel.pk, new_credentials='{"token": "a b"}'))
    assert response.status_code == 200
    assert "token must not contain whitespace" in response.content.decode()
    assert not Cluster.objects.exists()


def test_audit_log_is_read_only_in_admin(admin_browser):
    ChannelFactory(name="stable")
    from fleet.audit import services

    event = services.record("test.event")
    assert admin_browser.get(f"/admin/audit/auditevent/{event.pk}/change/").status_code == 200
    assert admin_browser.get("/admin/audit/auditevent/add/").status_code == 403
    assert admin_browser.post(f"/admin/audit/auditevent/{event.pk}/delete/").status_code == 403
