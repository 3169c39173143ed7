"""One mirror of each primary repo, shared by the workspaces: a release is fetched from
the vendor once for every cluster it goes to, and the workspaces borrow its objects."""

from __future__ import annotations

import pytest

from fleet.gitops import primary as primaries
from fleet.gitops import services
from fleet.gitops.constants import MIRROR_GENERATION
from fleet.gitops.errors import GitError
from fleet.gitops.git import Git
from fleet.gitops.workspace import mirror_generation
from tests.factories import ChannelFactory, ReleaseFactory
from tests.gitops.conftest import clone_of

pytestmark = pytest.mark.embedded


@pytest.fixture
def vendor_fetches(monkeypatch, primary) -> list[str]:
    """The directories git fetched the vendor's repo into."""
    fetched: list[str] = []
    original = Git.attempt

    def attempt(self, *args, **kwargs):
        if args and args[0] == "fetch" and kwargs.get("remote_url") == primary.url:
            fetched.append(str(self.path))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Git, "attempt", attempt)
    return fetched


def test_a_release_is_fetched_from_the_vendor_once_for_all_its_clusters(primary, make_cluster, vendor_fetches,
                                                                      workspace_dir):
    clusters = [make_cluster(primary, f"edge-{n}", at=primary.head("release-1.0")) for n in range(3)]
    release = ReleaseFactory(channel=clusters[0].channel, upstream_sha=primary.head("release-1.0"))
    for cluster in clusters:
        assert services.prepare(cluster, release).ok
    mirror = primaries.mirror_path(primary.url)
    # The first cluster's clone (no mirror yet) and the mirror's one fetch; nothing after.
    assert vendor_fetches == [str(workspace_dir / "edge-0" / "repo"), str(mirror)]
    later = clone_of(clusters[2])
    alternates = (later.path / ".git" / "objects" / "info" / "alternates").read_text().split()
    assert alternates == [str((mirror / "objects").resolve())]
    packed = dict(line.split(": ") for line in later.git.run("count-objects", "-v").splitlines())
    assert packed["size-pack"] == "0" and packed["count"] == "0"  # the vendor's history is not copied
    assert later.head() == primary.head("release-1.0")

    # The next release (on the next branch) is already in the mirror, whose fetch took
    # every branch: the upgrade fetches nothing from the vendor.
    channel = ChannelFactory(name="release-1-1", repo_url=primary.url, branch="release-1.1")
    newer = ReleaseFactory(channel=channel, upstream_sha=primary.head("release-1.1"))
    assert services.prepare(clusters[1], newer).ok
    assert clone_of(clusters[1]).head() != primary.head("release-1.0")
    assert len(vendor_fetches) == 2


def test_a_branch_newer_than_the_mirror_is_fetched_from_the_vendor(primary, make_cluster, vendor_fetches,
                                                                  workspace_dir):
    first = make_cluster(primary, "edge-a", at=primary.head("release-1.0"))
    release = ReleaseFactory(channel=first.channel, upstream_sha=primary.head("release-1.0"))
    assert services.prepare(first, release).ok
    mirror = primaries.mirror_path(primary.url)
    Git(mirror).run("update-ref", "-d", "refs/heads/release-1.2")  # as if the mirror predates it
    second = make_cluster(primary, "edge-b", branch="release-1.2")
    assert clone_of(second).remote_ref("origin", "release-1.2") == primary.head("release-1.2")
    assert vendor_fetches[-1] == str(workspace_dir / "edge-b" / "repo")


def test_a_commit_no_branch_leads_to_yet_is_fetched(primary, workspace_dir):
    """A fetch writes objects before it moves branches: a workspace must not be handed
    the mirror's branches while the release's commit is on none of them (a clone of
    a mirror mid-way through its first fetch found no branch at all)."""
    head = primary.head("release-1.0")
    path, fetched = primaries.ensure_commit(primary.url, head, "release-1.0")
    assert fetched and primaries.existing(primary.url) == path
    Git(path).run("update-ref", "-d", "refs/heads/release-1.0")  # the object is there, its branch not yet
    assert primaries.ensure_commit(primary.url, head, "release-1.0") == (path, True)
    assert Git(path).run("rev-parse", "refs/heads/release-1.0").strip() == head
    assert primaries.ensure_commit(primary.url, head, "release-1.0") == (path, False)

    (path / MIRROR_GENERATION).unlink()  # as during a first fetch: nothing to borrow from yet
    assert primaries.existing(primary.url) is None


def test_a_workspace_takes_the_mirrors_branches_again_only_after_a_fetch_into_it(primary, make_cluster, monkeypatch):
    """Only a fetch moves the mirror's branches, and each leaves a new generation: a
    workspace that took them at this generation does not fetch them again, and asking
    whether the mirror has a commit it was found to have asks git nothing."""
    mirror, _ = primaries.ensure_commit(primary.url, primary.head("release-1.0"), "release-1.0")
    Git(mirror).run("update-ref", "-d", "refs/heads/release-1.2")  # as if the vendor had not released it yet
    cluster = make_cluster(primary, "edge-m", at=primary.head("release-1.0"))
    release = ReleaseFactory(channel=cluster.channel, upstream_sha=primary.head("release-1.0"))
    assert services.prepare(cluster, release).ok
    workspace = clone_of(cluster)
    assert workspace.remote_ref("origin", "release-1.2") is None

    from_mirror: list[tuple[str, ...]] = []
    original = Git.attempt

    def attempt(self, *args, **kwargs):
        if str(mirror) in args or self.path == mirror:
            from_mirror.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Git, "attempt", attempt)
    assert services.prepare(cluster, release).ok
    assert from_mirror == []  # no fetch from it, and no merge-base in it

    before = mirror_generation(mirror)
    assert primaries.ensure_commit(primary.url, primary.head("release-1.2"), "release-1.2") == (mirror, True)
    assert mirror_generation(mirror) != before
    assert services.prepare(cluster, release).ok
    assert clone_of(cluster).remote_ref("origin", "release-1.2") == primary.head("release-1.2")


def test_a_fetch_into_the_mirror_that_dies_half_way_still_moves_its_generation(primary):
    """A fetch may have moved some branches before it failed: the generation the
    workspaces recorded before it must not hold any more, or they would not fetch again."""
    head = primary.head("release-1.0")
    path, _ = primaries.ensure_commit(primary.url, head, "release-1.0")
    before = mirror_generation(path)
    Git(path).run("update-ref", "-d", "refs/heads/release-1.0")  # so the next ask fetches
    primary.path.rename(primary.path.with_name("gone.git"))  # and the vendor is not there
    with pytest.raises(GitError):
        primaries.ensure_commit(primary.url, head, "release-1.0")
    assert mirror_generation(path) not in ("", before)
    assert primaries.existing(primary.url) == path  # still the mirror a new clone borrows from
