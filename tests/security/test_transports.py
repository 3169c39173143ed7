"""Only the transports Fleet supports, checked where a URL comes in and again when git runs
(``fleet.core.repourl``, ``fleet.gitops.git``); inline credentials never stored.

Found from outside: ``fd::17`` and other transports hung requests for the full git timeout
while holding a lock, and ``user:PW@host:path`` or ``?private_token=…`` were stored,
returned and audited.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from fleet.audit.models import AuditEvent
from fleet.core.repourl import RepoUrlError, parse_repo_url
from fleet.gitops import services
from fleet.gitops.errors import BadInput, GitError
from fleet.gitops.git import Git
from fleet.gitops.workspace import RepoSpec, Workspace
from fleet.inventory.models import Channel, Cluster
from tests.factories import ChannelFactory, ClusterFactory

pytestmark = [pytest.mark.django_db]


def assert_lock_is_free(cluster) -> None:
    with Workspace(RepoSpec.of(cluster)).lock(timeout=0):
        pass
SECRET = "PW-s3cr3t-9f8e"

REFUSED = {
    "fd::17": "transport",
    "ext::sh -c touch% /tmp/pwned": "transport",
    "ssh::host/repo": "transport",
    "http://git.example.com/r.git": "transport",
    "git://git.example.com/r.git": "transport",
    "ftp://git.example.com/r.git": "transport",
    f"user:{SECRET}@git.example.com:org/r.git": "credentials-inline",
    f"https://user:{SECRET}@git.example.com/r.git": "credentials-inline",
    f"https://{SECRET}@git.example.com/r.git": "credentials-inline",
    f"ssh://git:{SECRET}@git.example.com/r.git": "credentials-inline",
    f"https://git.example.com/r.git?private_token={SECRET}": "credentials-inline",
    f"https://git.example.com/r.git?access_token={SECRET}": "credentials-inline",
    "https://git.example.com/r.git\nX-Injected: 1": "invalid",
    "-oProxyCommand=touch%20/tmp/x:r.git": "invalid",
    "git@-oProxyCommand=x:r.git": "invalid",
    "/etc": "local",
    "file:///etc/passwd": "local",
    "file://otherhost/srv/r.git": "invalid",
    "https://git.example.com": "invalid",  # no path
}


@pytest.mark.parametrize(("url", "code"), REFUSED.items())
def test_the_parser_refuses_every_other_transport_and_inline_credentials(url, code):
    with pytest.raises(RepoUrlError) as info:
        parse_repo_url(url)
    assert info.value.code == code
    assert SECRET not in str(info.value) and url not in str(info.value)


@pytest.mark.parametrize("url", ["https://git.example.com/org/r.git", "https://git.example.com:8443/r",
                                 "ssh://git@git.example.com:2222/org/r.git", "git@git.example.com:org/r.git",
                                 "git.example.com:org/r.git", "ssh://git@[::1]/r.git"])
def test_supported_remotes_parse(url):
    assert parse_repo_url(url).transport in ("https", "ssh")


def test_local_repositories_only_inside_the_configured_roots(settings, tmp_path):
    settings.FLEET_GIT_LOCAL_ROOTS = [str(tmp_path / "repos")]
    assert parse_repo_url(str(tmp_path / "repos" / "a.git")).transport == "file"
    assert parse_repo_url(f"file://{tmp_path}/repos/a.git").transport == "file"
    for outside in (str(tmp_path / "other.git"), str(tmp_path / "repos" / ".." / "other.git")):
        with pytest.raises(RepoUrlError, match="inside FLEET_GIT_LOCAL_ROOTS"):
            parse_repo_url(outside)
    (tmp_path / "repos").mkdir()
    (tmp_path / "repos" / "link.git").symlink_to(Path(settings.BASE_DIR))
    with pytest.raises(RepoUrlError, match="inside FLEET_GIT_LOCAL_ROOTS"):  # the server's own checkout
        parse_repo_url(str(tmp_path / "repos" / "link.git"))
    settings.FLEET_GIT_LOCAL_ROOTS = []
    with pytest.raises(RepoUrlError, match="FLEET_GIT_LOCAL_ROOTS is empty"):
        parse_repo_url(str(tmp_path / "repos" / "a.git"))


@pytest.mark.parametrize("url", list(REFUSED))
def test_the_api_refuses_them_and_neither_stores_returns_nor_audits_a_secret(operator, url):
    ChannelFactory(name="stable")
    with_timer = time.monotonic()
    response = operator.post("/api/v1/clusters/", {
        "name": "c-1", "api_server_url": "https://10.0.0.1:6443", "channel": "stable",
        "internal_repo_url": url}, format="json")
    assert time.monotonic() - with_timer < 5
    assert response.status_code == 400 and "internal_repo_url" in response.json()
    assert SECRET not in response.content.decode()
    assert not Cluster.objects.exists()
    assert SECRET not in json.dumps(list(AuditEvent.objects.values("metadata", "before", "after", "target_repr")))
    channel = operator.post("/api/v1/channels/", {"name": "c", "repo_url": url, "branch": "release-1.0"})
    assert channel.status_code == 400 and SECRET not in channel.content.decode()


def test_git_refuses_a_stored_url_of_another_transport_before_running(tmp_path, settings):
    """A row written before the rules (or by hand) still never reaches git: no hang, no lock held."""
    settings.FLEET_WORKSPACE_DIR = tmp_path / "ws"
    settings.FLEET_WORKSPACE_LOCK_TIMEOUT = 1
    channel = ChannelFactory(name="stable", repo_url="https://git.example.com/v.git")
    cluster = ClusterFactory(name="hang-1", channel=channel)
    Channel.objects.filter(pk=channel.pk).update(repo_url="fd::17")
    cluster.refresh_from_db()
    started = time.monotonic()
    with pytest.raises(BadInput, match="git remote refused: .*remote helper"):
        services.status(cluster)
    assert time.monotonic() - started < 5
    assert_lock_is_free(cluster)


@pytest.mark.parametrize("url", ["ext::sh -c touch% /tmp/fleet-pwned", "fd::17", "http://127.0.0.1:9/r.git"])
def test_git_itself_allows_only_the_supported_protocols(tmp_path, url):
    """The second wall: even a command that bypassed the URL check meets protocol.allow=never."""
    git = Git(tmp_path)
    git.run("init", "--quiet")
    started = time.monotonic()
    result = git.attempt("ls-remote", url)
    assert result.status != 0 and "not allowed" in result.stderr
    assert time.monotonic() - started < 5 and not Path("/tmp/fleet-pwned").exists()


def test_git_runs_with_submodules_off_and_protocols_denied_by_default(tmp_path):
    git = Git(tmp_path)
    git.run("init", "--quiet")
    config = git.run("config", "--list").lower().splitlines()
    for option in ("submodule.recurse=false", "fetch.recursesubmodules=false", "protocol.allow=never",
                   "protocol.https.allow=always", "protocol.ssh.allow=always"):
        assert option in config


def test_a_stalled_server_fails_within_the_git_timeout_and_frees_the_lock(tmp_path, settings):
    """Never a lock across an unbounded wait: a remote that accepts and then says nothing is
    given up on after FLEET_GIT_TIMEOUT, and the workspace is free again."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: [accepted.append(listener.accept()[0]) for _ in range(8)], daemon=True).start()
    settings.FLEET_WORKSPACE_DIR = tmp_path / "ws"
    settings.FLEET_GIT_TIMEOUT = 3
    port = listener.getsockname()[1]
    channel = ChannelFactory(name="stable", repo_url=f"https://127.0.0.1:{port}/v.git")
    cluster = ClusterFactory(name="stall-1", channel=channel, internal_repo_url=f"https://127.0.0.1:{port}/i.git")
    started = time.monotonic()
    with pytest.raises(GitError):
        services.fetch(cluster)
    assert time.monotonic() - started < 3 * 2 + 5
    assert_lock_is_free(cluster)
    listener.close()
