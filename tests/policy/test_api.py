"""The gate and its records over HTTP, with the real engine configured for the process."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.utils import timezone

from fleet.audit.models import AuditEvent
from fleet.dev.testrepo import create_primary_repo
from fleet.policy.engines import reset_engines
from fleet.policy.models import PolicyDecision, PolicySet, Waiver
from tests.factories import ChannelFactory, ClusterFactory, ReleaseFactory
from tests.policy.objects import container, deployment, namespace, service

EVALUATE = "/api/v1/policy/evaluate"
pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture(params=["embedded", "opa"])
def configured_engine(request, settings):
    """Run the test with the process-wide engine set to each real engine."""
    settings.FLEET_POLICY_ENGINE = request.param
    if request.param == "opa":
        settings.FLEET_OPA_URL = request.getfixturevalue("opa_url")
    reset_engines()
    yield request.param
    reset_engines()


@pytest.fixture
def baseline_set(baseline_files) -> PolicySet:
    return PolicySet.objects.create(name="baseline", files=baseline_files, selector="env in (prod,dev)")


def bad_deployment():
    return deployment(containers=[container(image="registry.example.com/a:latest")])


@pytest.mark.parametrize("client_name", ["viewer", "operator", "admin_client_api"])
def test_any_role_may_evaluate(request, client_name, baseline_set, configured_engine):
    client = request.getfixturevalue(client_name)
    response = client.post(EVALUATE, {"manifests": [bad_deployment()], "labels": {"env": "prod"}})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["allowed"] is False and body["engine"] == configured_engine, body
    assert [v["rule"] for v in body["violations"]] == ["baseline.images.deny"], body["errors"]
    assert body["bundle_hash"] == baseline_set.bundle_hash
    decision = PolicyDecision.objects.get(pk=body["decision"])
    assert decision.allowed is False and decision.violations[0]["object"] == "Deployment/shop/web"
    assert AuditEvent.objects.filter(action="policydecision.create", target_id=str(decision.pk)).exists()


def test_roleless_and_anonymous_may_not(roleless, anonymous):
    assert roleless.post(EVALUATE, {"manifests": []}).status_code == 403
    assert anonymous.post(EVALUATE, {"manifests": []}).status_code == 401


def test_cluster_context_release_and_yaml_text(viewer, baseline_set, configured_engine):
    cluster = ClusterFactory(name="eu-prod-1", labels={"env": "prod"})
    old, new = ReleaseFactory(channel=cluster.channel), ReleaseFactory(channel=cluster.channel)
    text = yaml.safe_dump_all([namespace("shop"), deployment(), service()])
    response = viewer.post(EVALUATE, {"manifests": text, "cluster": "eu-prod-1", "release": new.pk,
                                      "release_from": old.pk, "deployed": [namespace("shop"), namespace("legacy")]})
    body = response.json()
    assert response.status_code == 200, body
    assert [v["rule"] for v in body["violations"]] == ["baseline.namespaces.deny"]
    decision = PolicyDecision.objects.get(pk=body["decision"])
    assert (decision.cluster, decision.release, decision.release_from) == (cluster, new, old)
    assert decision.cluster_name == "eu-prod-1" and decision.object_count == 3


def test_selector_decides_which_sets_apply(viewer, baseline_set):
    response = viewer.post(EVALUATE, {"manifests": [bad_deployment()], "labels": {"env": "test"}})
    assert response.json()["allowed"] is True and response.json()["sets"] == []


@pytest.mark.parametrize("payload,message", [
    ({"labels": {"env": "prod"}}, "either manifests, or repo"),
    ({"manifests": [{"kind": "Pod"}]}, "not a Kubernetes object"),
    ({"manifests": "a: [1,"}, "line"),
    ({"repo": "file:///nowhere.git"}, "required with repo"),
])
def test_bad_requests(viewer, payload, message):
    response = viewer.post(EVALUATE, payload)
    assert response.status_code == 400 and message in str(response.json())


def test_repo_ref_path_is_rendered_or_refused_clearly(viewer, baseline_set):
    response = viewer.post(EVALUATE, {"repo": "file:///nowhere.git", "ref": "main", "path": "apps"})
    assert response.status_code == 400
    assert "render" in response.json()["detail"] or "not available" in response.json()["detail"]


def test_a_git_ref_needing_a_missing_kustomize_is_a_503(viewer, baseline_set, settings, monkeypatch, tmp_path):
    """The deployment lacks a tool: not the caller's input (400), and nothing is built."""
    settings.FLEET_WORKSPACE_DIR = tmp_path / "ws"
    vendor = create_primary_repo(tmp_path / "platform.git")
    ChannelFactory(repo_url=vendor.url)  # the gate renders known repositories only
    monkeypatch.setenv("FLEET_BIN_CACHE", str(tmp_path / "bin"))
    monkeypatch.delenv("FLEET_KUSTOMIZE_BIN", raising=False)
    response = viewer.post(EVALUATE, {"repo": vendor.url, "ref": "release-1.0", "path": "base"})
    assert response.status_code == 503 and response.json()["code"] == "toolchain.missing"
    assert "python -m fleet.toolchain kustomize" in response.json()["detail"]
    assert not (tmp_path / "bin").exists()


def test_policy_sets_need_admin_and_are_audited(operator, admin_client_api, baseline_files):
    payload = {"name": "baseline", "files": baseline_files, "selector": "env=prod", "mode": "warn"}
    assert operator.post("/api/v1/policy/sets/", payload).status_code == 403
    response = admin_client_api.post("/api/v1/policy/sets/", payload)
    assert response.status_code == 201, response.content
    created = PolicySet.objects.get(name="baseline")
    assert response.json()["bundle_hash"] == created.bundle_hash != ""
    assert AuditEvent.objects.filter(action="policyset.create", target_id=str(created.pk)).exists()
    files = {**baseline_files, "extra.rego": "package extra\n"}
    old_hash = created.bundle_hash
    response = admin_client_api.patch(f"/api/v1/policy/sets/{created.pk}/", {"files": files})
    assert response.status_code == 200
    created.refresh_from_db()
    assert created.bundle_hash == response.json()["bundle_hash"] != old_hash
    assert AuditEvent.objects.filter(action="policyset.update", target_id=str(created.pk)).exists()


def test_a_policy_set_with_bad_rego_is_refused_with_file_and_line(admin_client_api, configured_engine):
    payload = {"name": "broken", "files": {"a.rego": "package a\n\n\n!!!\n"}}
    response = admin_client_api.post("/api/v1/policy/sets/", payload)
    assert response.status_code == 400
    assert re.search(r"a\.rego:[34]: ", str(response.json()["files"]))  # engines differ by a line


def test_waivers(admin_client_api, operator, viewer, baseline_set, configured_engine):
    payload = {"name": "legacy-latest", "rule": "baseline.images.*", "object_pattern": "Deployment/shop/*",
               "cluster_selector": "env=prod", "reason": "vendor image, ticket OPS-12",
               "expires_at": (timezone.now() + timedelta(days=7)).isoformat(), "policy_set": "baseline"}
    assert operator.post("/api/v1/policy/waivers/", payload).status_code == 403
    response = admin_client_api.post("/api/v1/policy/waivers/", payload)
    assert response.status_code == 201, response.content
    assert response.json()["author"] == "ada-admin" and response.json()["active"] is True
    assert AuditEvent.objects.filter(action="waiver.create").exists()
    body = viewer.post(EVALUATE, {"manifests": [bad_deployment()], "labels": {"env": "prod"}}).json()
    assert body["allowed"] is True
    assert [(v["enforcement"], v["waiver"]) for v in body["violations"]] == [("waived", "legacy-latest")]
    Waiver.objects.filter(name="legacy-latest").update(expires_at=timezone.now() - timedelta(seconds=1))
    verdict = viewer.post(EVALUATE, {"manifests": [bad_deployment()], "labels": {"env": "prod"}}).json()
    assert verdict["allowed"] is False


def test_waiver_must_expire_in_the_future(admin_client_api):
    payload = {"name": "w", "rule": "*", "reason": "r", "expires_at": timezone.now().isoformat()}
    response = admin_client_api.post("/api/v1/policy/waivers/", payload)
    assert response.status_code == 400 and "expires_at" in response.json()


def test_decisions_are_listed_and_filtered(viewer, baseline_set):
    viewer.post(EVALUATE, {"manifests": [bad_deployment()], "labels": {"env": "prod"}})
    viewer.post(EVALUATE, {"manifests": [deployment()], "labels": {"env": "prod"}})
    response = viewer.get("/api/v1/policy/decisions/?allowed=false")
    assert response.status_code == 200 and response.json()["count"] == 1
    assert viewer.post("/api/v1/policy/decisions/", {}).status_code in (403, 405)


def test_an_unreachable_opa_denies_with_the_reason(viewer, baseline_set, settings):
    from fleet.dev.opa_process import free_port

    settings.FLEET_POLICY_ENGINE, settings.FLEET_OPA_URL = "opa", f"http://127.0.0.1:{free_port()}"
    reset_engines()
    try:
        body = viewer.post(EVALUATE, {"manifests": [deployment()], "labels": {"env": "prod"}}).json()
    finally:
        reset_engines()
    assert body["allowed"] is False and "cannot be reached" in body["errors"][0]["message"]


def test_an_inventory_for_gatekeeper_templates(viewer):
    base = Path(__file__).parent / "gatekeeper" / "uniqueserviceselector"
    PolicySet.objects.create(name="unique", files={
        "t.yaml": (base / "template.yaml").read_text() + "---\n"
        + (base / "constraint-unique-selector.yaml").read_text()})
    web = {**service("web"), "spec": {"selector": {"app": "web"}}}
    old = {**service("web-old"), "spec": {"selector": {"app": "web"}}}
    assert viewer.post(EVALUATE, {"manifests": [web]}).json()["allowed"] is True
    body = viewer.post(EVALUATE, {"manifests": [web], "inventory": [old]}).json()
    assert body["allowed"] is False and "same selector as service <web-old>" in body["violations"][0]["message"]
