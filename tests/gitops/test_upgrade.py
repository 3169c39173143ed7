"""Upgrades by rebase: across releases and within one, with a conflict, with a merge
commit, with a migration (working, failing, missing)."""

from __future__ import annotations

import pytest
import yaml

from fleet.audit.models import AuditEvent
from fleet.dev.testrepo import create_primary_repo
from fleet.gitops import services
from fleet.gitops.errors import BadInput
from fleet.gitops.git import Git
from fleet.render.errors import RenderError
from tests.factories import ChannelFactory, ReleaseFactory
from tests.gitops.conftest import AUTHOR, clone_of, internal_ref, push_to_internal

pytestmark = [pytest.mark.django_db]


def release(vendor, branch: str, sha: str = ""):
    channel = ChannelFactory(name=branch.replace(".", "-"), repo_url=vendor.url, branch=branch)
    sha = sha or vendor.head(branch)
    return channel.releases.filter(upstream_sha=sha).first() or ReleaseFactory(channel=channel, upstream_sha=sha)


def _snapshot(cluster):
    ws = clone_of(cluster)
    return ws.branch(), ws.head(), ws.changed_files(), internal_ref(cluster, "main")


def test_upgrade_across_releases_replays_the_cluster_commits(primary, make_cluster):
    cluster = make_cluster(primary)
    configured = services.configure(cluster, {"replicas": {"web": 2}}, AUTHOR)
    pushed = internal_ref(cluster, "main")
    result = services.upgrade(cluster, release(primary, "release-1.1"))
    assert result.ok and result.changed and result.replayed == 1
    assert (result.from_branch, result.to_branch) == ("release-1.0", "release-1.1")
    assert result.to_upstream == primary.head("release-1.1")
    ws = clone_of(cluster)
    assert ws.branch() == "release-1.1"
    assert ws.git.run("rev-parse", "--abbrev-ref", "@{upstream}").strip() == "origin/release-1.1"
    assert ws.git.run("rev-parse", "HEAD~1").strip() == primary.head("release-1.1")
    assert ws.git.run("log", "-1", "--format=%an|%s").strip() == "Ada Admin|Configure edge-1"
    assert ws.git.run("rev-list", "--merges", "HEAD").strip() == ""
    assert ws.git.run("branch", "--format=%(refname:short)").split() == ["release-1.1"]
    assert internal_ref(cluster, "main") == pushed != result.head  # nothing pushed by an upgrade
    deployment = next(o for o in services.render(cluster).objects if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2 and deployment["spec"]["template"]["spec"][
        "containers"][0]["image"].endswith(":1.1.1")
    assert configured.sha != result.head
    event = AuditEvent.objects.get(action="gitops.upgrade")
    assert event.metadata["ok"] is True and event.metadata["to_branch"] == "release-1.1"


def test_upgrade_to_a_newer_sha_of_the_same_branch(primary, make_cluster):
    older, newer = primary.commits["release-1.1"]
    cluster = make_cluster(primary, branch="release-1.1", at=older)
    services.configure(cluster, {"replicas": {"web": 4}}, AUTHOR)
    result = services.upgrade(cluster, release(primary, "release-1.1", newer))
    assert result.ok and result.from_upstream == older and result.to_upstream == newer
    again = services.upgrade(cluster, release(primary, "release-1.1", newer))
    assert again.ok and not again.changed and again.head == result.head


def test_conflict_aborts_and_leaves_everything_as_it_was(primary, make_cluster, tmp_path):
    cluster = make_cluster(primary, at=primary.head("release-1.0"))
    configmap = Git(tmp_path).run("--git-dir", str(primary.path), "show",
                                  f"{primary.head('release-1.0')}:base/configmap.yaml")
    push_to_internal(cluster, {"base/configmap.yaml": configmap.replace("LOG_LEVEL: info", "LOG_LEVEL: debug")},
                     "Debug logging on this site", tmp_path=tmp_path)
    services.configure(cluster, {"replicas": {"web": 2}}, AUTHOR)
    before = _snapshot(cluster)
    result = services.upgrade(cluster, release(primary, "release-1.1"))
    assert not result.ok and result.reason == "conflict"
    assert result.conflicts == ["base/configmap.yaml"]
    assert "base/configmap.yaml" in result.error
    assert _snapshot(cluster) == before
    ws = clone_of(cluster)
    assert not (ws.path / ".git" / "rebase-merge").exists()
    assert ws.git.run("branch", "--format=%(refname:short)").split() == ["release-1.0"]
    event = AuditEvent.objects.get(action="gitops.upgrade")
    assert event.metadata["ok"] is False and event.metadata["conflicts"] == ["base/configmap.yaml"]


def test_merge_commit_is_refused(primary, make_cluster, tmp_path):
    cluster = make_cluster(primary, at=primary.head("release-1.0"))
    push_to_internal(cluster, {}, "", tmp_path=tmp_path, merge_from="release-1.1")
    before = _snapshot(cluster)
    result = services.upgrade(cluster, release(primary, "release-1.1"))
    assert not result.ok and result.reason == "merge-commit"
    assert "merge commit" in result.error and "linear history" in result.error
    assert _snapshot(cluster) == before


def test_migration_runs_before_the_rebase(primary, make_cluster):
    cluster = make_cluster(primary, branch="release-1.1")
    services.configure(cluster, {"replicas": {"web": 3}, "components": ["ingress"]}, AUTHOR)
    result = services.upgrade(cluster, release(primary, "release-1.2"))
    assert result.ok and result.migration == "migrations/1.1-1.2" and result.replayed == 2
    ws = clone_of(cluster)
    assert ws.git.run("log", "-1", "--format=%an|%s").strip() == \
        "Fleet|Migrate cluster files from release-1.1 to release-1.2"
    params = yaml.safe_load((ws.path / "cluster" / "params.yaml").read_text())
    assert params["base"] == "manifests" and params["replicas"] == {"frontend": 3}
    frontend = next(o for o in services.render(cluster).objects if o["kind"] == "Deployment")
    assert frontend["metadata"]["name"] == "frontend" and frontend["spec"]["replicas"] == 3


def test_without_the_migration_the_old_overlay_no_longer_builds(make_cluster, tmp_path):
    vendor = create_primary_repo(tmp_path / "no-migration.git", migration=None)
    cluster = make_cluster(vendor, branch="release-1.1")
    services.configure(cluster, {"replicas": {"web": 3}}, AUTHOR)
    assert services.upgrade(cluster, release(vendor, "release-1.2")).ok
    with pytest.raises(RenderError, match="base"):
        services.render(cluster)


def test_failing_migration_is_reported_and_nothing_changes(make_cluster, tmp_path):
    vendor = create_primary_repo(tmp_path / "bad-migration.git",
                                 migration="#!/bin/sh\necho 'cannot convert widgets' >&2\ntouch half-done\nexit 3\n")
    cluster = make_cluster(vendor, branch="release-1.1")
    services.configure(cluster, {"replicas": {"web": 3}}, AUTHOR)
    before = _snapshot(cluster)
    result = services.upgrade(cluster, release(vendor, "release-1.2"))
    assert not result.ok and result.reason == "migration-failed"
    assert "migrations/1.1-1.2" in result.error and "exit status 3" in result.error
    assert "cannot convert widgets" in result.error
    assert _snapshot(cluster) == before


def test_release_not_on_its_branch_is_refused(primary, make_cluster):
    cluster = make_cluster(primary)
    with pytest.raises(BadInput, match="is not on branch 'release-1.1'"):
        services.upgrade(cluster, release(primary, "release-1.1", primary.head("release-1.2")))
    with pytest.raises(BadInput, match="is not on branch 'release-1.1'"):  # a commit's full name only
        services.upgrade(cluster, release(primary, "release-1.1", primary.head("release-1.1")[:12]))
    with pytest.raises(BadInput, match="'release-3.0' does not exist"):
        services.upgrade(cluster, release(primary, "release-3.0", "a" * 40))


def test_prepare_aborts_a_rebase_a_crashed_job_left_half_done(primary, make_cluster, tmp_path):
    cluster = make_cluster(primary, at=primary.head("release-1.0"))
    configmap = Git(tmp_path).run("--git-dir", str(primary.path), "show",
                                  f"{primary.head('release-1.0')}:base/configmap.yaml")
    mine = push_to_internal(cluster, {"base/configmap.yaml": configmap.replace("LOG_LEVEL: info", "LOG_LEVEL: debug")},
                            "Debug logging on this site", tmp_path=tmp_path)
    ws = clone_of(cluster)
    ws.git.run("checkout", "--quiet", "--detach")
    stopped = ws.git.attempt("rebase", "--quiet", "--onto", primary.head("release-1.1"), primary.head("release-1.0"))
    assert stopped.status != 0 and (ws.path / ".git" / "rebase-merge").is_dir()  # the job died here
    result = services.prepare(cluster, release(primary, "release-1.0"))
    assert result.ok and not result.changed and result.head == mine
    assert _snapshot(cluster) == ("release-1.0", mine, [], mine)
    assert not (ws.path / ".git" / "rebase-merge").exists()


def test_upgrade_of_a_cluster_without_commits_of_its_own(primary, make_cluster):
    cluster = make_cluster(primary)
    result = services.upgrade(cluster, release(primary, "release-1.1"))
    assert result.ok and result.replayed == 0 and result.head == primary.head("release-1.1")
    assert services.status(cluster).origin.state == "up-to-date"


def test_prepare_discards_what_a_crashed_attempt_left_and_upgrades(primary, make_cluster):
    cluster = make_cluster(primary)
    configured = services.configure(cluster, {"replicas": {"web": 2}}, AUTHOR)
    ws = clone_of(cluster)
    (ws.path / "cluster" / "stray.yaml").write_text("left by a crashed job")
    ws.git.run("add", "--all")
    ws.git.run("commit", "--quiet", "-m", "stray")
    (ws.path / "dirty.txt").write_text("x")
    result = services.prepare(cluster, release(primary, "release-1.1"))
    assert result.ok and result.replayed == 1 and result.from_upstream == primary.head("release-1.0")
    ws = clone_of(cluster)
    assert not (ws.path / "cluster" / "stray.yaml").exists() and ws.changed_files() == []
    assert ws.git.run("log", "-1", "--format=%s").strip() == "Configure edge-1"
    assert ws.head() == result.head != configured.sha  # the configuration, rebased onto 1.1
