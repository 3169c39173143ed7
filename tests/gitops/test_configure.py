"""Cluster configuration as commits: parameters -> overlay -> commit -> push, audited."""

from __future__ import annotations

import pytest
import yaml

from fleet.audit.models import AuditEvent
from fleet.gitops import services
from fleet.gitops.constants import OVERLAY_FILE, PARAMS_FILE
from fleet.gitops.git import Git
from tests.gitops.conftest import AUTHOR, clone_of, internal_ref

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

PARAMS = {"images": {"registry.example.com/platform/web": "1.0.0-hotfix1"},
          "replicas": {"web": 3}, "hostnames": {"platform": "platform.edge-1.example.net"},
          "components": ["ingress"]}


def _object(result, kind, name):
    return next(o for o in result.objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_configure_commits_the_overlay_and_pushes_it(primary, make_cluster):
    cluster = make_cluster(primary)
    result = services.configure(cluster, PARAMS, AUTHOR)
    assert result.changed and result.files == [OVERLAY_FILE, PARAMS_FILE]
    assert internal_ref(cluster, "main") == result.sha
    git = Git(clone_of(cluster).path)
    assert git.run("log", "-1", "--format=%an <%ae>|%s").strip() == \
        "Ada Admin <ada@example.com>|Configure edge-1"
    assert git.run("rev-parse", "HEAD~1").strip() == primary.head("release-1.0")

    rendered = services.render(cluster)
    deployment = _object(rendered, "Deployment", "web")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.0.0-hotfix1")
    assert _object(rendered, "Ingress", "platform")["spec"]["rules"][0]["host"] == \
        "platform.edge-1.example.net"
    assert services.read_params(cluster).replicas == {"web": 3}

    actions = list(AuditEvent.objects.filter(cluster="edge-1").order_by("sequence").values_list("action", flat=True))
    assert actions == ["gitops.configure", "gitops.push"]
    event = AuditEvent.objects.get(action="gitops.configure")
    assert event.metadata["sha"] == result.sha and event.metadata["params"]["replicas"] == {"web": 3}


def test_configure_is_idempotent(primary, make_cluster):
    cluster = make_cluster(primary)
    first = services.configure(cluster, PARAMS, AUTHOR)
    again = services.configure(cluster, PARAMS, AUTHOR)
    assert (again.changed, again.sha) == (False, first.sha)
    assert AuditEvent.objects.filter(action="gitops.configure").count() == 1
    assert AuditEvent.objects.filter(action="gitops.push").count() == 1


def test_commit_files_adds_a_manifest_and_the_overlay_lists_it(primary, make_cluster):
    cluster = make_cluster(primary)
    services.configure(cluster, PARAMS, AUTHOR)
    extra = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "site-extras", "namespace": "platform"},
                            "data": {"SITE": "edge-1"}})
    result = services.commit_files(cluster, {"cluster/resources/site.yaml": extra}, AUTHOR, "Add site extras")
    assert result.files == ["cluster/kustomization.yaml", "cluster/resources/site.yaml"]
    assert internal_ref(cluster, "main") == result.sha
    assert _object(services.render(cluster), "ConfigMap", "site-extras")["data"] == {"SITE": "edge-1"}
    assert AuditEvent.objects.get(action="gitops.commit").metadata["message"] == "Add site extras"


def test_commits_start_from_internal(primary, make_cluster, tmp_path):
    from tests.gitops.conftest import push_to_internal

    cluster = make_cluster(primary, at=primary.head("release-1.0"))
    clone_of(cluster)
    person = push_to_internal(cluster, {"cluster/README.md": "edge site\n"}, "Document the site",
                              tmp_path=tmp_path)
    result = services.configure(cluster, PARAMS, AUTHOR)
    git = Git(clone_of(cluster).path)
    assert git.run("rev-parse", "HEAD~1").strip() == person
    assert internal_ref(cluster, "main") == result.sha
