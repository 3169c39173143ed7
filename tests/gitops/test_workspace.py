"""Workspaces: cloned once and reused, remotes and branch as DESIGN.md names them,
status against both remotes, reset, one job at a time, a clone a crash left half-made,
and refs read once but never stale."""

from __future__ import annotations

import subprocess
import threading

import pytest

from fleet.gitops import services
from fleet.gitops.errors import BadInput, GitError, WorkspaceBusy
from fleet.gitops.workspace import REMOTES_FILE, RepoSpec, Workspace
from tests.gitops.conftest import clone_of, internal_ref

pytestmark = [pytest.mark.django_db]


def test_clone_names_remotes_and_tracks_the_channel_branch(primary, make_cluster):
    cluster = make_cluster(primary)
    ws = clone_of(cluster)
    assert ws.git.run("remote").split() == ["internal", "origin"]
    assert ws.branch() == "release-1.0"
    assert ws.git.run("rev-parse", "--abbrev-ref", "@{upstream}").strip() == "origin/release-1.0"
    assert ws.head() == primary.head("release-1.0")


def test_clone_is_reused_not_recloned(primary, make_cluster):
    cluster = make_cluster(primary)
    ws = clone_of(cluster)
    marker = ws.path / ".git" / "fleet-marker"
    marker.write_text("still here")
    services.fetch(cluster)
    assert clone_of(cluster).path == ws.path and marker.exists()


def test_clone_starts_from_internal_when_it_has_the_branch(primary, make_cluster):
    older = primary.commits["release-1.1"][0]
    cluster = make_cluster(primary, branch="release-1.1", at=older)
    status = services.status(cluster)
    assert status.head == older
    assert (status.origin.ahead, status.origin.behind, status.origin.state) == (0, 1, "behind")
    assert status.internal.state == "up-to-date" and status.clean


def test_status_reports_dirty_ahead_and_missing_internal(primary, make_cluster):
    cluster = make_cluster(primary)
    ws = clone_of(cluster)
    assert services.status(cluster).internal is None  # nothing pushed yet
    (ws.path / "notes.txt").write_text("scratch")
    ws.git.run("add", "notes.txt")
    ws.git.run("commit", "--quiet", "-m", "local only")
    (ws.path / "dirty.txt").write_text("x")
    status = services.status(cluster)
    assert not status.clean and status.changed == ["dirty.txt"]
    assert status.origin.state == "ahead" and status.origin.ahead == 1


def test_reset_returns_to_the_known_state(primary, make_cluster):
    cluster = make_cluster(primary, at=primary.head("release-1.0"))
    ws = clone_of(cluster)
    (ws.path / "base" / "configmap.yaml").write_text("garbage")
    ws.git.run("commit", "--quiet", "-am", "oops")
    (ws.path / "untracked.yaml").write_text("x")
    assert services.reset(cluster) == internal_ref(cluster, "main")
    status = services.status(cluster)
    assert status.clean and status.head == primary.head("release-1.0")


def test_missing_channel_branch_is_refused(primary, make_cluster):
    cluster = make_cluster(primary, branch="release-9.9")
    with pytest.raises(BadInput, match="branch 'release-9.9' does not exist in the primary repo"):
        clone_of(cluster)
    assert internal_ref(cluster, "main") is None


def test_one_job_at_a_time(primary, make_cluster):
    cluster = make_cluster(primary)
    clone_of(cluster)
    inside, release = threading.Event(), threading.Event()

    def hold():
        with services.locked(cluster):
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert inside.wait(10)
        with pytest.raises(WorkspaceBusy, match="in use by another job"):
            services.fetch(cluster)
    finally:
        release.set()
        holder.join()
    with services.locked(cluster):
        services.fetch(cluster)  # re-entrant in the holding thread


def test_a_call_inside_a_held_workspace_does_not_check_the_clone_again(primary, make_cluster, monkeypatch):
    """A rollout holds the workspace for its whole pipeline: each service it calls
    would otherwise re-check the clone and its remotes."""
    from fleet.gitops.workspace import Workspace

    cluster = make_cluster(primary)
    ensured = []
    original = Workspace.ensure
    monkeypatch.setattr(Workspace, "ensure", lambda self, **kw: ensured.append(1) or original(self, **kw))
    with services.locked(cluster):
        assert services.head(cluster) == services.status(cluster, refresh=False).head
        services.history(cluster, refresh=False)
    assert len(ensured) == 1
    services.head(cluster)
    assert len(ensured) == 2


def test_remotes_follow_the_inventory(primary, make_cluster, tmp_path):
    from fleet.dev.testrepo import create_internal_repo

    cluster = make_cluster(primary)
    clone_of(cluster)
    cluster.internal_repo_url = str(create_internal_repo(tmp_path / "moved" / "edge-1.git"))
    ws = clone_of(cluster)
    assert ws.git.run("remote", "get-url", "internal").strip() == cluster.internal_repo_url


def test_a_clone_a_crash_left_half_made_is_made_again(primary, make_cluster):
    cluster = make_cluster(primary)
    half = Workspace(RepoSpec.of(cluster))
    half.path.mkdir(parents=True)
    half.git.run("init", "--quiet")  # what a job that died during its clone left
    half.git.run("remote", "add", "origin", cluster.channel.repo_url)
    ws = clone_of(cluster)
    assert (ws.branch(), ws.head()) == ("release-1.0", primary.head("release-1.0"))
    assert (ws.path / ".git" / REMOTES_FILE).read_text() == (
        f"origin {cluster.channel.repo_url}\ninternal {cluster.internal_repo_url}\n")


def test_a_clone_without_the_remotes_file_is_kept_and_given_one(primary, make_cluster):
    """A clone made before the remotes file existed: complete, since its HEAD resolves."""
    cluster = make_cluster(primary)
    ws = clone_of(cluster)
    (ws.path / ".git" / REMOTES_FILE).unlink()
    marker = ws.path / ".git" / "fleet-marker"
    marker.write_text("still here")
    ws = clone_of(cluster)
    assert marker.exists() and (ws.path / ".git" / REMOTES_FILE).is_file()


def test_refs_are_read_once_and_again_after_anything_that_moves_them(primary, make_cluster):
    cluster = make_cluster(primary)
    with services.locked(cluster) as ws:
        first = ws.refs()
        assert ws.refs() is first and ws.head() == primary.head("release-1.0")
        ws.git.run("commit", "--quiet", "--allow-empty", "-m", "local")
        ahead = ws.head()
        assert ahead != primary.head("release-1.0") and ws.remote_ref("origin", "release-1.0") == \
            primary.head("release-1.0")
        # A process outside the adapter (a migration script running git) moves HEAD:
        subprocess.run(["git", "checkout", "--quiet", "--detach"], cwd=ws.path, check=True)
        ws.git.refs_moved()
        with pytest.raises(GitError, match="symbolic-ref"):
            ws.branch()
        assert ws.head() == ahead
