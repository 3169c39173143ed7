"""Each refused input of the issue (every one from a real GitOps CVE): a clear error,
nothing committed, nothing pushed, the workspace left clean."""

from __future__ import annotations

import re

import pytest
import yaml
from django.core.exceptions import ValidationError

from fleet.gitops import services
from fleet.gitops.errors import BadInput
from fleet.gitops.mirror import render_ref
from fleet.gitops.models import CredentialKind, RepositoryCredential
from fleet.render.errors import RenderError
from tests.factories import ClusterFactory
from tests.gitops.conftest import AUTHOR, internal_ref, push_to_internal

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def cluster(primary, make_cluster):
    cluster = make_cluster(primary)
    services.configure(cluster, {"replicas": {"web": 2}}, AUTHOR)
    return cluster


def assert_untouched(cluster, pushed: str) -> None:
    status = services.status(cluster)
    assert status.clean and status.head == pushed == internal_ref(cluster, "main")


def _kustomization(**fields) -> str:
    return yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                           "resources": ["../base"], **fields})


@pytest.mark.parametrize("params, message", [
    ({"base": "../../etc"}, "parameter base: '../../etc': relative"),
    ({"base": "/etc"}, "parameter base: '/etc': relative (../) and absolute"),
    ({"components": ["../../secrets"]}, "parameter components.0"),
    ({"images": {"../web": "1.0"}}, "parameter images: '../web'"),
    ({"hostnames": {"platform": "/etc/hosts"}}, "parameter hostnames.platform"),
])
def test_paths_in_overlay_parameters(cluster, params, message):
    pushed = internal_ref(cluster, "main")
    with pytest.raises(BadInput, match=re.escape(message)):
        services.configure(cluster, params, AUTHOR)
    assert_untouched(cluster, pushed)


@pytest.mark.parametrize("entry", ["../../../etc", "/etc/passwd"])
def test_paths_leaving_the_repo_in_a_kustomization(cluster, entry):
    pushed = internal_ref(cluster, "main")
    with pytest.raises(BadInput, match="outside the repository|absolute path"):
        services.commit_files(cluster, {"cluster/kustomization.yaml": _kustomization(
            resources=["../base", entry])}, AUTHOR, "Sneak a file in")
    assert_untouched(cluster, pushed)


@pytest.mark.parametrize("path, message", [
    ("../outside.yaml", "contains '..'"), ("/etc/cron.d/x", "is absolute"),
    (".git/hooks/post-checkout", "inside .git"), ("cluster/../../x", "contains '..'"),
])
def test_paths_leaving_the_repo_in_file_edits(cluster, path, message):
    pushed = internal_ref(cluster, "main")
    with pytest.raises(BadInput, match=message):
        services.commit_files(cluster, {path: "x"}, AUTHOR, "Escape")
    assert_untouched(cluster, pushed)


def test_symlinks_pointing_outside_the_repo(cluster, tmp_path):
    # Someone pushes a symlink to the host's /etc into the internal repo.
    pushed = push_to_internal(cluster, {}, "Link", tmp_path=tmp_path, symlinks={"cluster/host-etc": "/etc"})
    with pytest.raises(BadInput, match="is a symlink; Fleet does not write through symlinks"):
        services.commit_files(cluster, {"cluster/host-etc/passwd": "x"}, AUTHOR, "Through the link")
    with pytest.raises(BadInput, match="symlink points outside the repository"):
        services.commit_files(cluster, {"cluster/notes.md": "x"}, AUTHOR, "Anything else")
    assert_untouched(cluster, pushed)
    with pytest.raises(RenderError, match="cluster/host-etc: symlink points outside"):
        services.render(cluster)
    removed = services.commit_files(cluster, {"cluster/host-etc": None}, AUTHOR, "Remove the link")
    assert removed.changed and services.render(cluster).objects


PLUGIN_FN = yaml.safe_dump({"apiVersion": "example.com/v1", "kind": "Pwn", "metadata": {
    "name": "x", "annotations": {"config.kubernetes.io/function": "exec:\n  path: /bin/sh\n"}}})


@pytest.mark.parametrize("files, message", [
    ({"cluster/fn.yaml": PLUGIN_FN, "cluster/kustomization.yaml": _kustomization(transformers=["fn.yaml"])},
     "KRM functions"),
    ({"cluster/gen.yaml": yaml.safe_dump({"apiVersion": "someteam.example.com/v1", "kind": "GoGetter",
                                          "metadata": {"name": "x"}}),
      "cluster/kustomization.yaml": _kustomization(generators=["gen.yaml"])}, "not a kustomize builtin"),
    ({"cluster/kustomization.yaml": _kustomization(helmCharts=[{"name": "x", "repo": "https://c.example"}])},
     "helmCharts is not allowed"),
])
def test_kustomize_plugins_and_exec_functions(cluster, files, message):
    pushed = internal_ref(cluster, "main")
    with pytest.raises(BadInput, match=message):
        services.commit_files(cluster, files, AUTHOR, "Run something")
    assert_untouched(cluster, pushed)


@pytest.mark.parametrize("base", ["https://github.com/evil/repo//base?ref=v1",
                                  "github.com/evil/repo/base", "git@github.com:evil/repo.git"])
def test_remote_bases(cluster, base):
    pushed = internal_ref(cluster, "main")
    with pytest.raises(BadInput, match="remote base .* is not allowed"):
        services.commit_files(cluster, {"cluster/kustomization.yaml": _kustomization(resources=[base])},
                              AUTHOR, "Remote base")
    assert_untouched(cluster, pushed)


def test_huge_files(cluster, settings):
    settings.FLEET_RENDER_MAX_FILE_BYTES = 64 * 1024
    pushed = internal_ref(cluster, "main")
    with pytest.raises(BadInput, match="larger than 65536 bytes"):
        services.commit_files(cluster, {"cluster/resources/big.yaml": "#" * 70_000}, AUTHOR, "Big")
    assert_untouched(cluster, pushed)


def test_repo_url_with_inline_credentials(primary, tmp_path):
    token = "ghp_s3cr3tT0ken"
    url = f"https://ci:{token}@git.example.com/vendor/platform.git"
    cluster = ClusterFactory.build(name="leaky", internal_repo_url=url)
    with pytest.raises(ValidationError) as raised:
        cluster.full_clean(exclude=["channel"])
    assert "must not carry credentials" in str(raised.value) and token not in str(raised.value)
    credential = RepositoryCredential(name="leaky", url_prefix=url, kind=CredentialKind.HTTPS_TOKEN)
    credential.set_secret("x")
    with pytest.raises(ValidationError, match="must not carry credentials"):
        credential.full_clean()
    with pytest.raises(BadInput) as refused:
        render_ref(url, "release-1.0", "base")
    assert "credentials" in str(refused.value) and token not in str(refused.value)


def test_branch_that_does_not_exist(primary, make_cluster):
    with pytest.raises(BadInput, match="'release-7.7' is not a branch, tag or commit"):
        render_ref(primary.url, "release-7.7", "base")
    cluster = make_cluster(primary, branch="release-7.7")
    with pytest.raises(BadInput, match="branch 'release-7.7' does not exist"):
        services.configure(cluster, {}, AUTHOR)
    assert internal_ref(cluster, "main") is None


def test_params_yaml_with_an_alias_bomb_is_refused_not_expanded(cluster, operator, tmp_path):
    """Someone pushes a hostile ``cluster/params.yaml``: reading the parameters refuses it
    through the one YAML loader (a 400 naming the file), it never expands it."""
    from tests.security.payloads import alias_bomb
    from tests.security.test_yaml import refused_as_bomb

    push_to_internal(cluster, {"cluster/params.yaml": alias_bomb()}, "Bomb", tmp_path=tmp_path)
    with pytest.raises(BadInput, match="cluster/params.yaml cannot be read"):
        services.read_params(cluster)
    response = operator.get(f"/api/v1/gitops/{cluster.name}/params/")
    assert response.status_code == 400 and refused_as_bomb(response.json()["detail"])
