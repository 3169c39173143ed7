"""The GitOps endpoints over HTTP: roles, configuration, file commits, rendering,
history, refused input as 400s, and write-only repository credentials."""

from __future__ import annotations

import json

import pytest

from fleet.audit.models import AuditEvent
from fleet.gitops import services
from fleet.gitops.models import RepositoryCredential
from tests.gitops.conftest import internal_ref

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def cluster(primary, make_cluster):
    return make_cluster(primary)


def test_operator_configures_and_viewer_reads(cluster, operator, viewer):
    url = f"/api/v1/gitops/{cluster.name}/params/"
    body = {"replicas": {"web": 2}, "components": ["monitoring"], "message": "Two replicas"}
    assert viewer.put(url, body, format="json").status_code == 403
    response = operator.put(url, body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["changed"] is True and internal_ref(cluster, "main") == response.json()["sha"]
    event = AuditEvent.objects.get(action="gitops.configure")
    assert (event.actor, event.source, event.cluster) == ("otto-operator", "api", cluster.name)
    assert viewer.get(url).json()["replicas"] == {"web": 2}
    rendered = viewer.get(f"/api/v1/gitops/{cluster.name}/rendered/").json()
    assert rendered["content_hash"].startswith("sha256:")
    assert "web-metrics" in [o["metadata"]["name"] for o in rendered["objects"]]
    status = viewer.get(f"/api/v1/gitops/{cluster.name}/status/").json()
    assert status["clean"] and status["internal"]["state"] == "up-to-date"


def test_commit_files_and_refusals(cluster, operator):
    url = f"/api/v1/gitops/{cluster.name}/commits/"
    response = operator.post(url, {"files": {"cluster/NOTES.md": "site notes\n"}, "message": "Notes"},
                             format="json")
    assert response.status_code == 201, response.content
    again = operator.post(url, {"files": {"cluster/NOTES.md": "site notes\n"}, "message": "Notes"},
                          format="json")
    assert again.status_code == 200 and again.json()["changed"] is False
    refused = operator.post(url, {"files": {"../../etc/passwd": "x"}, "message": "Escape"}, format="json")
    assert refused.status_code == 400 and "contains '..'" in refused.json()["detail"]
    bad = operator.put(f"/api/v1/gitops/{cluster.name}/params/", {"base": "/etc"}, format="json")
    assert bad.status_code == 400 and "absolute paths are not allowed" in bad.json()["detail"]
    assert operator.get("/api/v1/gitops/no-such-cluster/status/").status_code == 404


def test_history_over_the_api(cluster, viewer):
    tag = services.tag_deployment(cluster, {"rollout": 1})
    history = viewer.get(f"/api/v1/gitops/{cluster.name}/history/").json()
    assert [(h["tag"], h["context"]) for h in history] == [(tag, {"rollout": 1})]


def test_a_missing_kustomize_is_a_503_naming_it_and_nothing_is_built(cluster, viewer, monkeypatch, tmp_path):
    cache = tmp_path / "bin"
    monkeypatch.setenv("FLEET_BIN_CACHE", str(cache))
    monkeypatch.delenv("FLEET_KUSTOMIZE_BIN", raising=False)
    response = viewer.get(f"/api/v1/gitops/{cluster.name}/rendered/")
    assert response.status_code == 503, response.content
    body = response.json()
    assert body["code"] == "toolchain.missing"
    assert "kustomize" in body["detail"] and "python -m fleet.toolchain kustomize" in body["detail"]
    assert not cache.exists()


def test_repository_credentials_are_write_only_and_admin_only(operator, admin_client_api):
    url = "/api/v1/repository-credentials/"
    body = {"name": "vendor-git", "url_prefix": "https://git.example.com/", "kind": "https-token",
            "username": "fleet", "secret": "glpat-s3cr3t"}
    assert operator.post(url, body, format="json").status_code == 403
    response = admin_client_api.post(url, body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["has_secret"] is True and "secret" not in response.json()
    credential = RepositoryCredential.objects.get(name="vendor-git")
    assert credential.get_secret() == "glpat-s3cr3t" and "s3cr3t" not in credential.secret_encrypted
    event = AuditEvent.objects.get(action="repositorycredential.create")
    assert "s3cr3t" not in json.dumps(event.after)
    assert "s3cr3t" not in operator.get(url).content.decode()
    inline = admin_client_api.post(url, {**body, "name": "inline", "url_prefix": "https://u:p@h.example/"},
                                   format="json")
    assert inline.status_code == 400 and "credentials" in json.dumps(inline.json())
    patched = admin_client_api.patch(f"{url}{credential.pk}/", {"secret": "rotated"}, format="json")
    assert patched.status_code == 200
    credential.refresh_from_db()
    assert credential.get_secret() == "rotated"
    assert AuditEvent.objects.get(action="repositorycredential.update").metadata["changed"] == ["secret_encrypted"]
