"""Real git against real bare repos: one generated vendor repo per session, and for each
test its own internal repos and workspace directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleet.dev.testrepo import PrimaryRepo, create_internal_repo, create_primary_repo
from fleet.gitops import services
from fleet.gitops.commits import Author
from fleet.gitops.git import Git
from fleet.gitops.workspace import Workspace
from tests.factories import ChannelFactory, ClusterFactory

AUTHOR = Author("Ada Admin", "ada@example.com")


@pytest.fixture(scope="session")
def primary(tmp_path_factory) -> PrimaryRepo:
    return create_primary_repo(tmp_path_factory.mktemp("vendor") / "platform.git")


@pytest.fixture(autouse=True)
def workspace_dir(settings, tmp_path) -> Path:
    settings.FLEET_WORKSPACE_DIR = tmp_path / "workspaces"
    settings.FLEET_WORKSPACE_LOCK_TIMEOUT = 1
    return settings.FLEET_WORKSPACE_DIR


@pytest.fixture
def make_cluster(db, tmp_path):
    """A cluster on ``branch`` of ``vendor`` whose internal repo is empty or seeded at ``at``."""

    def make(vendor: PrimaryRepo, name: str = "edge-1", branch: str = "release-1.0", at: str = ""):
        channel = ChannelFactory(name=branch.replace(".", "-"), repo_url=vendor.url, branch=branch)
        internal = create_internal_repo(tmp_path / "internal" / f"{name}.git",
                                        primary=vendor if at else None, at=at)
        return ClusterFactory(name=name, channel=channel, internal_repo_url=str(internal))

    return make


def clone_of(cluster) -> Workspace:
    """The cluster's workspace (cloned if needed), to inspect in assertions: the lock is
    released on return, which only a test that runs nothing else at once may accept."""
    with services.locked(cluster) as workspace:
        return workspace


def internal_ref(cluster, ref: str) -> str | None:
    """What the cluster's internal repo has at ``ref`` (``None`` if missing)."""
    result = Git(Path(cluster.internal_repo_url)).attempt("rev-parse", "--verify", "--quiet", ref)
    return result.stdout.strip() if result.status == 0 else None


def push_to_internal(cluster, files: dict[str, str], message: str, *, tmp_path: Path,
                     merge_from: str = "", symlinks: dict[str, str] | None = None) -> str:
    """Commit as a person would (outside Fleet) on the internal branch and push it."""
    work = Git(tmp_path / f"person-{cluster.name}")
    Git(tmp_path).run("clone", "--quiet", "--branch", cluster.internal_branch, cluster.internal_repo_url,
                      str(work.path))
    if merge_from:
        work.run("fetch", "--quiet", cluster.channel.repo_url, merge_from)
        work.run("merge", "--quiet", "--no-ff", "--no-edit", "FETCH_HEAD")
    for name, content in files.items():
        target = work.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    for name, points_to in (symlinks or {}).items():
        (work.path / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(points_to, work.path / name)
    if files or symlinks:
        work.run("add", "--all")
        work.run("commit", "--quiet", "--message", message)
    work.run("push", "--quiet", "origin", f"HEAD:{cluster.internal_branch}")
    return work.run("rev-parse", "HEAD").strip()
