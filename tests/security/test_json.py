"""One JSON depth limit (``fleet.core.jsonload``), in the API's parser and wherever else
untrusted JSON is read: a body nested 1,000+ deep once was a ``RecursionError`` and a 500
on any endpoint."""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from fleet.core import jsonload
from fleet.core.yaml import MAX_DEPTH
from tests.factories import ClusterFactory, ReleaseFactory
from tests.security import payloads

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def test_the_loader_refuses_depth_past_the_limit_and_keeps_what_is_within():
    assert jsonload.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    for text in (payloads.deep_json(MAX_DEPTH + 1), payloads.deep_json(), payloads.deep_json_object()):
        with pytest.raises(jsonload.JsonError) as info:
            jsonload.loads(text)
        assert info.value.code == "too-deep" and "deeper than" in str(info.value)


def test_the_loader_is_strict_json():
    for text in ("NaN", '{"a": Infinity}', "{'a': 1}"):
        with pytest.raises(jsonload.JsonError) as info:
            jsonload.loads(text)
        assert info.value.code == "invalid"


def test_the_api_parses_every_body_through_it():
    assert settings.REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"] == ["fleet.api.parsers.JSONParser"]


@pytest.fixture
def endpoints(db):
    cluster = ClusterFactory(name="deep")
    release = ReleaseFactory(channel=cluster.channel)
    return [("post", "/api/v1/clusters/"), ("patch", f"/api/v1/clusters/{cluster.pk}/"),
            ("post", "/api/v1/policy/evaluate"), ("post", "/api/v1/rollouts/"),
            ("post", "/api/v1/rollouts/preview/"), ("post", f"/api/v1/gitops/{cluster.name}/commits/"),
            ("put", f"/api/v1/gitops/{cluster.name}/params/"), ("patch", f"/api/v1/releases/{release.pk}/")]


@pytest.mark.parametrize("body", [payloads.deep_json(), payloads.deep_json_object(), payloads.deep_json(MAX_DEPTH + 1)])
def test_a_deep_body_is_a_400_on_every_endpoint(admin_client_api, endpoints, body):
    for method, url in endpoints:
        response = getattr(admin_client_api, method)(url, body, content_type="application/json")
        assert response.status_code == 400, (method, url, response.content[:300])
        assert "deeper than" in response.json()["detail"], url


def test_a_deep_context_in_a_pushed_tag_message_reads_as_no_context():
    from fleet.gitops.tags import DeploymentRecord

    record = DeploymentRecord.parse("deploy/2026-01-01/release-1.0", "context: " + payloads.deep_json() + "\n")
    assert record.context == {}


def test_the_admin_credentials_form_refuses_deep_json():
    from fleet.inventory.admin import ClusterAdminForm

    form = ClusterAdminForm(data={"new_credentials": payloads.deep_json()})
    form.is_valid()
    assert "deeper than" in str(form.errors["new_credentials"])


def test_the_rollout_command_refuses_a_deep_waves_file(tmp_path):
    release = ReleaseFactory()
    waves = tmp_path / "waves.json"
    waves.write_text(payloads.deep_json())
    with pytest.raises(CommandError, match="deeper than"):
        call_command("rollout", "create", "--release", str(release.pk), "--waves", str(waves),
                     "--as-user", "nobody", stdout=io.StringIO())
