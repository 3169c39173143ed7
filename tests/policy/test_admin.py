"""The policy admin pages: audited writes, the waiver's author is who made it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from fleet.audit.models import AuditEvent
from fleet.policy.models import Waiver

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def browser() -> Client:
    get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.login(username="root", password="pw")
    return client


def test_pages_load(browser):
    for model in ("policyset", "waiver", "policydecision"):
        assert browser.get(f"/admin/policy/{model}/").status_code == 200


def test_adding_a_waiver_records_its_author_and_is_audited(browser):
    expires = timezone.now() + timedelta(days=2)
    response = browser.post("/admin/policy/waiver/add/", {
        "name": "w1", "rule": "baseline.*", "object_pattern": "*", "cluster_selector": "env=dev",
        "reason": "migration", "expires_at_0": expires.strftime("%Y-%m-%d"),
        "expires_at_1": expires.strftime("%H:%M:%S")})
    assert response.status_code == 302, response.content.decode()[:1500]
    assert Waiver.objects.get(name="w1").author == "root"
    assert AuditEvent.objects.get(action="waiver.create").source == "admin"
