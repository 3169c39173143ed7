"""git's own control files in a cluster's repository: Fleet never writes them, and git
ignores them when Fleet reads, so one pushed by hand cannot brick the cluster's repo.

Found from outside: a committed ``.gitmodules`` made every gitops call a 502, even the
commit that would delete it, even after a reclone.
"""

from __future__ import annotations

import shutil

import pytest

from fleet.gitops import services
from fleet.gitops.errors import BadInput
from tests.gitops.conftest import AUTHOR, internal_ref, push_to_internal

pytestmark = [pytest.mark.django_db]
GITMODULES = '[submodule "evil"]\n\tpath = cluster/evil\n\turl = ../../../../../../etc\n[broken\n'
GITATTRIBUTES = "* filter=exfiltrate\n*.yaml text eol=crlf ident\n"


@pytest.fixture
def cluster(primary, make_cluster):
    cluster = make_cluster(primary)
    services.configure(cluster, {"replicas": {"web": 2}}, AUTHOR)
    return cluster


@pytest.mark.parametrize("path", [".gitmodules", ".gitattributes", "cluster/.gitattributes", ".gitignore",
                                  ".GITMODULES", ".git/config", "cluster/.git/hooks/post-checkout"])
def test_fleet_never_writes_gits_control_files(cluster, path, operator):
    pushed = internal_ref(cluster, "main")
    with pytest.raises(BadInput, match=r"git's own|inside \.git"):
        services.commit_files(cluster, {path: "x\n"}, AUTHOR, "Control")
    response = operator.post(f"/api/v1/gitops/{cluster.name}/commits/", {"files": {path: "x"}, "message": "m"},
                             format="json")
    assert response.status_code == 400 and ("git's own" in response.json()["detail"] or
                                            "inside .git" in response.json()["detail"])
    assert internal_ref(cluster, "main") == pushed


def test_pushed_control_files_do_not_brick_the_repo_and_can_be_deleted(cluster, tmp_path, operator, viewer, settings):
    push_to_internal(cluster, {".gitmodules": GITMODULES, ".gitattributes": GITATTRIBUTES,
                               "cluster/.gitattributes": GITATTRIBUTES}, "Hostile", tmp_path=tmp_path)
    for attempt in ("reused clone", "fresh clone"):
        status = viewer.get(f"/api/v1/gitops/{cluster.name}/status/")
        assert status.status_code == 200, (attempt, status.content)
        rendered = viewer.get(f"/api/v1/gitops/{cluster.name}/rendered/")
        assert rendered.status_code == 200, (attempt, rendered.content)
        assert "\r\n" not in str(rendered.json())  # the eol attribute was not applied
        assert viewer.get(f"/api/v1/gitops/{cluster.name}/params/").status_code == 200, attempt
        shutil.rmtree(settings.FLEET_WORKSPACE_DIR / cluster.name)
    response = operator.post(f"/api/v1/gitops/{cluster.name}/commits/", {
        "files": {".gitmodules": None, ".gitattributes": None, "cluster/.gitattributes": None},
        "message": "Remove them"}, format="json")
    assert response.status_code == 201, response.content
    assert sorted(response.json()["files"]) == [".gitattributes", ".gitmodules", "cluster/.gitattributes"]
    assert services.status(cluster).clean


@pytest.mark.parametrize(("path", "message"), [
    (".", "names no file"), ("cluster/", "names no file"), ("cluster", "is a directory"),
    ("cluster/" + "n" * 256 + ".yaml", "longer than 255 bytes"), ("a/" * 600 + "x", "longer than 1024"),
])
def test_paths_that_name_no_file_are_a_400_not_a_500(cluster, operator, path, message):
    response = operator.post(f"/api/v1/gitops/{cluster.name}/commits/", {"files": {path: "x"}, "message": "m"},
                             format="json")
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]
