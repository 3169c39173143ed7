"""The GitOps operations on a cluster, for the API, the rollout engine and commands.

Each operation takes the cluster's workspace lock, makes sure the clone exists
(reusing it: fetch, never re-clone), does its work, and records an audit event
when it changed a repository. Every one is idempotent: configuring with the same
parameters commits nothing, upgrading to the release a cluster is on does nothing,
tagging a commit whose latest deployment tag is already on it returns that tag,
and pushing what internal already has moves nothing.

A job that runs several operations in a row (the rollout pipeline) holds a
:class:`Session` from :func:`session` and calls them on it: one lock, one workspace,
and no other job moving it in between.

Workspaces are caches; a cluster's internal repo is its truth. Writes therefore
start from internal's branch (fast-forwarding to it) and end by pushing to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fleet.accounts import rules
from fleet.audit import services as audit
from fleet.gitops import commits, mirror, overlay, primary, tags
from fleet.gitops import upgrade as upgrading
from fleet.gitops.commits import Author, CommitResult
from fleet.gitops.constants import CLUSTER_DIR, DEFAULT_BASE, INTERNAL, OVERLAY_FILE, RESOURCES_DIR
from fleet.gitops.errors import BadInput, WorkspaceDirty
from fleet.gitops.overlay import ClusterParams
from fleet.gitops.tags import DeploymentRecord
from fleet.gitops.upgrade import UpgradeResult
from fleet.gitops.workspace import RepoSpec, Workspace, WorkspaceStatus, holds_lock
from fleet.render.limits import RenderLimits
from fleet.render.safety import find_kustomization
from fleet.render.services import RenderResult, render_dir

__all__ = ["Author", "ClusterParams", "CommitResult", "DeploymentRecord", "Session", "UpgradeResult",
           "WorkspaceStatus", "commit_files", "configure", "fetch", "head", "history", "locked", "prepare",
           "push", "read_params", "render", "render_deployed", "render_tree", "reset", "rollback_tree", "session",
           "status", "tag_deployment", "upgrade"]


@contextmanager
def locked(cluster, *, wait: float | None = None) -> Iterator[Workspace]:
    """The cluster's workspace, cloned if needed, held for the duration (re-entrant).

    ``wait`` (seconds; default ``FLEET_WORKSPACE_LOCK_TIMEOUT``) lets a caller that
    only reads, such as a web page, give up sooner while a deployment holds it."""
    workspace = Workspace(RepoSpec.of(cluster))
    outer = holds_lock(workspace.home)  # then the outer call has made sure of the clone
    with workspace.lock(wait):
        if not outer:
            workspace.ensure(mirror=primary.existing(workspace.spec.origin_url))
        yield workspace


class Session:
    """A cluster's workspace held by one job, with the operations a deployment runs on it.

    Made by :func:`session`, with the lock taken and the clone made; its methods work
    on that one workspace and take neither again. The rollout pipeline holds one for a
    whole run, so no other job moves the workspace between the upgrade and the tag.
    The module's functions of the same names are each one call on a session of their
    own, for the API and commands.
    """

    def __init__(self, cluster, workspace: Workspace):
        self.cluster, self._workspace = cluster, workspace

    @property
    def workspace(self) -> Workspace:
        if not holds_lock(self._workspace.home):
            raise RuntimeError(f"the session on cluster {self.cluster.name}'s workspace has ended")
        return self._workspace

    def head(self) -> str:
        """The workspace's HEAD commit, as it stands (no fetch)."""
        return self.workspace.head()

    def reset(self, ref: str | None = None) -> str:
        """Put the workspace at ``ref`` (default: internal's branch, else the channel's upstream)."""
        ws = self.workspace
        ws.fetch()
        return ws.reset(ref)

    def prepare(self, release) -> UpgradeResult:
        """A deployment's first step: reset to internal's branch, then upgrade to ``release``.

        Safe to repeat: whatever a crashed attempt left in the workspace is discarded.
        """
        ws = self.workspace
        # The release's commit from the primary's shared mirror: fetched from the vendor
        # once per release (by the first cluster of a rollout), not once per cluster.
        mirror, _ = primary.ensure_commit(release.channel.repo_url, release.upstream_sha, release.channel.branch)
        ws.fetch(mirror=mirror)
        ws.reset()
        return _upgrade(ws, self.cluster, release, just_reset=True)

    def render(self) -> RenderResult:
        """Render the workspace as deployed: the cluster overlay, else the vendor's base."""
        return render_tree(self.workspace.path)

    def tag_deployment(self, context: dict[str, Any] | None = None, *, push: bool = True) -> str:
        """Tag HEAD as deployed (reusing the tag if HEAD already has the latest one) and push.

        Only internal is fetched first (its tags number the new one; origin plays no part).
        A fetch leaves exactly internal's deploy tags, so a reused tag is on internal
        already: when internal's branch is HEAD too (a release deployed again) there is
        nothing to push, and no push is made."""
        ws = self.workspace
        ws.fetch(origin=False)
        head = ws.head()
        # The chain head goes into the tag: the internal repos anchor the audit log.
        tag, created = tags.create_tag(ws, context or {}, audit_head=audit.chain_head().anchor)
        if created:
            audit.record("gitops.tag", target=self.cluster, metadata={"tag": tag, "sha": head,
                                                                       "context": context or {}})
        if push and (created or ws.remote_ref(INTERNAL, ws.spec.internal_branch) != head):
            _push(ws, self.cluster, [tag])
        return tag

    def history(self, *, refresh: bool = True) -> list[DeploymentRecord]:
        """The cluster's deployments, newest first, read from the tags on its internal repo
        (``refresh=False``: as last fetched, for a caller that has just fetched)."""
        ws = self.workspace
        if refresh:
            ws.fetch()
        return tags.history(ws)

    def rollback_tree(self, tag: str) -> DeploymentRecord:
        """Put the workspace at the tree a previous deployment tag recorded (not pushed yet)."""
        ws = self.workspace
        ws.fetch()
        before = (ws.branch(), ws.head())
        record = tags.rollback(ws, tag)
        if (ws.branch(), ws.head()) != before:
            audit.record("gitops.rollback", target=self.cluster, metadata={
                "tag": tag, "sha": record.local_sha, "branch": record.local_branch})
        return record


@contextmanager
def session(cluster, *, wait: float | None = None) -> Iterator[Session]:
    """Hold the cluster's workspace (see :func:`locked`) and work on it through a :class:`Session`."""
    with locked(cluster, wait=wait) as workspace:
        yield Session(cluster, workspace)


def fetch(cluster) -> None:
    with locked(cluster) as ws:
        ws.fetch()


def head(cluster) -> str:
    """:meth:`Session.head`, in a session of its own."""
    with session(cluster) as held:
        return held.head()


def status(cluster, *, refresh: bool = True) -> WorkspaceStatus:
    """Clean or dirty; ahead/behind/diverged against origin and internal (after a fetch)."""
    with locked(cluster) as ws:
        if refresh:
            ws.fetch()
        return ws.status()


def reset(cluster, ref: str | None = None) -> str:
    """:meth:`Session.reset`, in a session of its own."""
    with session(cluster) as held:
        return held.reset(ref)


def read_params(cluster) -> ClusterParams | None:
    with locked(cluster) as ws:
        _start_from_internal(ws)
        return overlay.read_params(ws.path, cluster=cluster.name)


def configure(cluster, params: ClusterParams | dict[str, Any], author: Author, *, message: str = "",
              push: bool = True) -> CommitResult:
    """Write the cluster's parameters and overlay, commit them as ``author``, push."""
    rules.require_cluster_edit(cluster, {"repository commits"})
    if not isinstance(params, ClusterParams):
        params = ClusterParams.parse(params, cluster=cluster.name)
    with locked(cluster) as ws:
        _start_from_internal(ws)
        limits = RenderLimits.from_settings()
        files = overlay.overlay_files(ws.path, params, cluster=cluster.name)
        paths = commits.write_files(ws, files, limits)
        return _commit(ws, cluster, paths, author, message or f"Configure {cluster.name}", limits,
                       action="gitops.configure", push=push, metadata={"params": params.as_dict()})


def commit_files(cluster, files: dict[str, str | None], author: Author, message: str, *,
                 push: bool = True) -> CommitResult:
    """Commit arbitrary file edits (``None`` deletes a file) as ``author``, then push.

    Adding or removing a manifest in ``cluster/resources/`` also regenerates the
    overlay, when the cluster has parameters, so the new file is deployed. On a
    protected cluster, commits are an admin's (``accounts.rules``).
    """
    rules.require_cluster_edit(cluster, {"repository commits"})
    with locked(cluster) as ws:
        _start_from_internal(ws)
        limits = RenderLimits.from_settings()
        paths = commits.write_files(ws, files, limits)
        try:
            params = overlay.read_params(ws.path, cluster=cluster.name)
            if params is not None and OVERLAY_FILE not in paths and any(
                    p.startswith(RESOURCES_DIR + "/") for p in paths):
                generated = {OVERLAY_FILE: overlay.generate_overlay(ws.path, params)}
                paths = sorted({*paths, *commits.write_files(ws, generated, limits)})
        except BadInput:
            commits.discard(ws)
            raise
        return _commit(ws, cluster, paths, author, message, limits, action="gitops.commit", push=push)


def _commit(ws: Workspace, cluster, paths: list[str], author: Author, message: str,
            limits: RenderLimits, *, action: str, push: bool,
            metadata: dict[str, Any] | None = None) -> CommitResult:
    result = commits.check_and_commit(ws, paths, author, message, limits)
    if result.changed:
        audit.record(action, target=cluster, metadata={
            "sha": result.sha, "files": result.files, "message": message[:500],
            "author": f"{author.name} <{author.email}>", **(metadata or {})})
    if push:
        _push(ws, cluster, [])
    return result


def _start_from_internal(ws: Workspace) -> None:
    """Fetch, then fast-forward to internal's branch; refuse a workspace that diverged."""
    ws.fetch()
    ws.require_clean("commit")
    internal = ws.remote_ref(INTERNAL, ws.spec.internal_branch)
    if internal is None or ws.is_ancestor(internal, "HEAD"):
        ws.adopt_internal()
        return
    if ws.is_ancestor("HEAD", internal):
        ws.reset(internal)
        return
    raise WorkspaceDirty(f"the workspace diverged from {INTERNAL}/{ws.spec.internal_branch} (an "
                         "upgrade not yet deployed?); reset it or finish that deployment first",
                         cluster=ws.spec.cluster)


def upgrade(cluster, release) -> UpgradeResult:
    """Rebase the cluster's own commits onto ``release`` (running its migration first).

    Nothing is pushed: the rollout engine renders, gates and applies the result,
    then :func:`tag_deployment` pushes it. A refusal (merge commit, failed
    migration, conflict) leaves the workspace as it was and says why.
    """
    with locked(cluster) as ws:
        ws.fetch()
        return _upgrade(ws, cluster, release)


def prepare(cluster, release) -> UpgradeResult:
    """:meth:`Session.prepare`, in a session of its own."""
    with session(cluster) as held:
        return held.prepare(release)


def _upgrade(ws: Workspace, cluster, release, *, just_reset: bool = False) -> UpgradeResult:
    result = upgrading.upgrade(ws, release.channel.branch, release.upstream_sha, just_reset=just_reset)
    if result.changed or not result.ok:
        audit.record("gitops.upgrade", target=cluster,
                     metadata={"release": str(release), **result.as_dict()})
    return result


def render_tree(root: Path, *, limits: RenderLimits | None = None) -> RenderResult:
    """Render a cluster repository's tree as a deployment does: the cluster overlay, else
    the vendor's base, else the root. The one place that choice is made, for the
    pipeline's workspace and for a tree exported at a ref (:func:`render_deployed`)."""
    for candidate in (root / CLUSTER_DIR, root / DEFAULT_BASE):
        if find_kustomization(candidate) is not None:
            return render_dir(candidate, root=root, limits=limits)
    return render_dir(root, limits=limits)


def render_deployed(cluster, ref: str, *, limits: RenderLimits | None = None) -> RenderResult:
    """Render ``ref`` (a deploy tag or its commit) of the cluster's internal repo as it was
    deployed, without its workspace: from a read-only mirror, so a drift scan never waits
    for a rollout holding the workspace. A ref gone from the repo is ``gitops.bad-input``."""
    with mirror.exported_tree(cluster.internal_repo_url, ref) as tree:
        return render_tree(tree, limits=limits)


def render(cluster) -> RenderResult:
    """:meth:`Session.render`, in a session of its own."""
    with session(cluster) as held:
        return held.render()


def tag_deployment(cluster, context: dict[str, Any] | None = None, *, push: bool = True) -> str:
    """:meth:`Session.tag_deployment`, in a session of its own."""
    with session(cluster) as held:
        return held.tag_deployment(context, push=push)


def push(cluster, tag_names: list[str] | tuple[str, ...] = ()) -> bool:
    """Push the branch (and ``tag_names``) to internal; ``True`` if anything moved."""
    with locked(cluster) as ws:
        return _push(ws, cluster, list(tag_names))


def _push(ws: Workspace, cluster, tag_names: list[str]) -> bool:
    head = ws.head()
    moved = tags.push(ws, tag_names)
    if moved:
        audit.record("gitops.push", target=cluster, metadata={
            "sha": head, "branch": ws.spec.internal_branch, "tags": tag_names})
    return moved


def history(cluster, *, refresh: bool = True, wait: float | None = None) -> list[DeploymentRecord]:
    """:meth:`Session.history`, in a session of its own (``wait``: see :func:`locked`)."""
    with session(cluster, wait=wait) as held:
        return held.history(refresh=refresh)


def rollback_tree(cluster, tag: str) -> DeploymentRecord:
    """:meth:`Session.rollback_tree`, in a session of its own."""
    with session(cluster) as held:
        return held.rollback_tree(tag)
