"""``policy/evaluate`` renders only repositories Fleet knows, and its mirrors are bounded.

Found from outside: a viewer could make the server fetch any URL or local path (its own
checkout, internal HTTP services), and each new URL left a mirror on disk.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from fleet.dev.testrepo import create_primary_repo
from fleet.gitops import mirror
from fleet.gitops.errors import BadInput, GitError
from tests.factories import ChannelFactory, ClusterFactory

pytestmark = [pytest.mark.django_db]
EVALUATE = "/api/v1/policy/evaluate"


@pytest.fixture
def workspaces(settings, tmp_path) -> Path:
    settings.FLEET_WORKSPACE_DIR = tmp_path / "ws"
    return settings.FLEET_WORKSPACE_DIR


@pytest.fixture(scope="module")
def vendor(tmp_path_factory):
    return create_primary_repo(tmp_path_factory.mktemp("vendor") / "platform.git")


class _Hits(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        type(self).hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_unknown_repositories_are_refused_before_anything_is_fetched(viewer, workspaces, settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hits)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.FLEET_GIT_LOCAL_ROOTS = [str(Path(django_settings.BASE_DIR).parent)]  # even where local is allowed
    try:
        for repo in (str(django_settings.BASE_DIR), f"https://127.0.0.1:{server.server_port}/internal.git",
                     "https://git.example.com/someone/else.git"):
            response = viewer.post(EVALUATE, {"repo": repo, "ref": "main", "labels": {}})
            assert response.status_code == 400, response.content
            assert "the gate renders only those" in response.json()["detail"]
    finally:
        server.shutdown()
    assert _Hits.hits == [] and not (workspaces / "_mirrors").exists()


def test_known_channels_clusters_and_the_allowlist_may_be_rendered(viewer, workspaces, vendor, settings):
    for register in (lambda: ChannelFactory(repo_url=vendor.url), lambda: ClusterFactory(internal_repo_url=vendor.url),
                     lambda: setattr(settings, "FLEET_POLICY_EVALUATE_REPOS", [str(Path(vendor.url).parent)])):
        from fleet.inventory.models import Channel, Cluster

        Cluster.objects.all().delete()
        Channel.objects.all().delete()
        settings.FLEET_POLICY_EVALUATE_REPOS = []
        register()
        response = viewer.post(EVALUATE, {"repo": vendor.url, "ref": "release-1.0", "path": "base", "labels": {}})
        assert response.status_code == 200, response.content
        assert response.json()["object_count"] > 0


def test_a_failed_first_fetch_leaves_no_mirror(workspaces, tmp_path):
    missing = str(tmp_path / "missing.git")
    with pytest.raises(GitError):
        with mirror.exported_tree(missing, "main"):
            pass
    assert list((workspaces / "_mirrors").glob("*/repo.git")) == []


def test_mirrors_past_the_limit_are_evicted_least_recently_used_first(workspaces, tmp_path, settings, vendor):
    settings.FLEET_MIRROR_MAX = 2
    urls = []
    for name in ("a", "b", "c"):
        target = tmp_path / f"{name}.git"
        if not target.exists():
            target.symlink_to(vendor.url)  # three URLs, one repository
        urls.append(str(tmp_path / f"{name}.git"))
    for url in urls:
        with mirror.exported_tree(url, "release-1.0") as tree:
            assert (tree / "base").is_dir()
    assert len(list((workspaces / "_mirrors").glob("*/repo.git"))) == 2
    with mirror.exported_tree(urls[2], "release-1.0"):  # the newest is still there: no fetch from scratch
        pass


def test_an_oversize_repository_is_refused_and_removed(workspaces, settings, vendor):
    settings.FLEET_MIRROR_MAX_BYTES = 1024
    with pytest.raises(BadInput, match="larger than FLEET_MIRROR_MAX_BYTES"):
        with mirror.exported_tree(vendor.url, "release-1.0"):
            pass
    assert list((workspaces / "_mirrors").glob("*/repo.git")) == []
