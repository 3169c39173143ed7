"""A cluster's local workspace: one clone, reused across jobs, used by one job at a time.

Layout under ``FLEET_WORKSPACE_DIR``: ``<cluster>/repo`` is the clone (remotes
``origin`` and ``internal``; the local branch is named after the channel and tracks
``origin/<branch>``), ``<cluster>/lock`` the lock file, kept outside the clone so
``git clean`` never touches it. ``repo/.git/fleet-remotes`` holds the remote URLs Fleet
set, written last by a clone: a later job finds the clone complete and its remotes as
the inventory says without asking git; ``repo/.git/fleet-mirror`` the primary mirror's
generation its ``origin/*`` branches were last fetched at (``fleet.gitops.primary``).
The lock is an ``flock``: workspaces are local directories, so a lock on the same
machine is exactly the scope needed, and the kernel releases it when a worker dies. It
is re-entrant within a thread, so a service holding it can call another that takes it too.
"""

from __future__ import annotations

import fcntl
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from fleet.gitops.constants import INTERNAL, MIRROR_GENERATION, ORIGIN
from fleet.gitops.errors import BadInput, WorkspaceBusy, WorkspaceDirty
from fleet.gitops.git import Git, neutralise_attributes

_held = threading.local()
LEASE_REF = "refs/fleet/internal-base"
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
REMOTES_FILE = "fleet-remotes"
MIRRORED_FILE = "fleet-mirror"


@dataclass(frozen=True)
class RepoSpec:
    """What the inventory says about a cluster's repositories."""

    cluster: str
    origin_url: str
    branch: str  # the channel's release-X.Y branch
    internal_url: str
    internal_branch: str

    @classmethod
    def of(cls, cluster) -> RepoSpec:
        return cls(cluster.name, cluster.channel.repo_url, cluster.channel.branch,
                   cluster.internal_repo_url, cluster.internal_branch)


@dataclass(frozen=True)
class Divergence:
    """How the workspace's HEAD compares with a remote branch."""

    ahead: int
    behind: int

    @property
    def state(self) -> str:
        if self.ahead and self.behind:
            return "diverged"
        return "ahead" if self.ahead else "behind" if self.behind else "up-to-date"


@dataclass(frozen=True)
class WorkspaceStatus:
    branch: str
    head: str
    clean: bool
    changed: list[str]
    origin: Divergence
    internal: Divergence | None  # None: the internal branch does not exist yet

    def as_dict(self) -> dict:
        def div(d: Divergence | None) -> dict | None:
            return None if d is None else {"ahead": d.ahead, "behind": d.behind, "state": d.state}

        return {"branch": self.branch, "head": self.head, "clean": self.clean,
                "changed": self.changed, "origin": div(self.origin), "internal": div(self.internal)}


@dataclass(frozen=True)
class Refs:
    """The workspace's branches, remote-tracking branches and lease, read by one git command."""

    branch: str | None  # the branch HEAD is on; None when HEAD is detached or its branch not yet born
    shas: dict[str, str]  # full ref name -> the commit it names
    upstreams: dict[str, str]  # local branch -> the full name of the ref it tracks

    FORMAT = "%(HEAD) %(refname) %(objectname) %(upstream)"  # a ref name never holds a space
    PATTERNS = ("refs/heads/", "refs/remotes/", "refs/fleet/")

    @classmethod
    def parse(cls, output: str) -> Refs:
        branch, shas, upstreams = None, {}, {}
        for line in output.splitlines():
            name, sha, upstream = line[2:].split(" ")
            shas[name] = sha
            if name.startswith("refs/heads/"):
                local = name.removeprefix("refs/heads/")
                branch = local if line[0] == "*" else branch
                if upstream:
                    upstreams[local] = upstream
        return cls(branch, shas, upstreams)

    def remote(self, remote: str, branch: str) -> str | None:
        return self.shas.get(f"refs/remotes/{remote}/{branch}")

    @property
    def lease(self) -> str | None:
        return self.shas.get(LEASE_REF)

    def tracks_origin(self, branch: str) -> bool:
        return self.upstreams.get(branch) == f"refs/remotes/{ORIGIN}/{branch}"

    def checked_out(self, branch: str, sha: str) -> Refs:
        """These refs after ``checkout -B branch sha`` and tracking ``origin/<branch>``."""
        return Refs(branch, {**self.shas, f"refs/heads/{branch}": sha},
                    {**self.upstreams, branch: f"refs/remotes/{ORIGIN}/{branch}"})

    def leased(self, sha: str | None) -> Refs:
        """These refs with the lease at ``sha`` (``None``: without one)."""
        shas = {name: value for name, value in self.shas.items() if name != LEASE_REF}
        return Refs(self.branch, {**shas, LEASE_REF: sha} if sha else shas, self.upstreams)


def mirror_generation(mirror: Path) -> str:
    """The primary mirror's generation token, new before and after each fetch into it (''
    before its first fetch is done, when it has no branches yet, and for a mirror older
    than tokens)."""
    try:
        return (mirror / MIRROR_GENERATION).read_text().strip()
    except FileNotFoundError:
        return ""


def _mirror_stamp(mirror: Path) -> str:
    """Which mirror, at which generation ('' when it has none to tell)."""
    token = mirror_generation(mirror)
    return f"{mirror.resolve()} {token}\n" if token else ""


def _write_or_remove(path: Path, text: str) -> None:
    if text:
        path.write_text(text)
    else:
        path.unlink(missing_ok=True)


def holds_lock(home: Path) -> bool:
    """Whether this thread already holds ``home``'s lock (an outer job owns the workspace)."""
    return home in _held.__dict__.get("paths", set())


@contextmanager
def directory_lock(home: Path, what: str, timeout: float | None = None) -> Iterator[None]:
    """Hold ``home/lock`` exclusively (re-entrant per thread); :class:`WorkspaceBusy` on timeout."""
    held: set[Path] = _held.__dict__.setdefault("paths", set())
    if home in held:
        yield
        return
    home.mkdir(parents=True, exist_ok=True)
    wait = settings.FLEET_WORKSPACE_LOCK_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + wait
    with open(home / "lock", "w") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WorkspaceBusy(f"{what}: its workspace is in use by another job "
                                        f"(waited {wait:g}s)") from None
                time.sleep(0.1)
        held.add(home)
        try:
            yield
        finally:
            held.discard(home)
            fcntl.flock(handle, fcntl.LOCK_UN)


class Workspace:
    """One cluster's clone; every method expects the caller to hold :meth:`lock`."""

    def __init__(self, spec: RepoSpec, root: Path | None = None):
        self.spec = spec
        self.home = Path(root or settings.FLEET_WORKSPACE_DIR) / spec.cluster
        self.path = self.home / "repo"
        self.git = Git(self.path)
        self._refs: tuple[int, Refs] | None = None  # with the Git.ref_changes it was read at

    @contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[Workspace]:
        with directory_lock(self.home, f"cluster {self.spec.cluster}", timeout):
            yield self

    # -- clone and fetch -----------------------------------------------------------

    def ensure(self, mirror: Path | None = None) -> None:
        """Clone on first use; afterwards only make the remotes match the inventory.
        A clone takes origin's branches from the primary's ``mirror`` when there is one
        (borrowing its objects: nothing copied), from origin itself if it lacks the
        channel's branch."""
        remotes = self.path / ".git" / REMOTES_FILE
        # Without the remotes file (a clone made before it existed, or one a crash
        # interrupted after its checkout), a clone is complete once HEAD resolves.
        if remotes.is_file() or ((self.path / ".git").is_dir() and self.rev("HEAD")):
            neutralise_attributes(self.path / ".git")
            self._match_remotes(remotes)
            return
        shutil.rmtree(self.path, ignore_errors=True)  # a clone a crashed job left half-made
        self.path.mkdir(parents=True)
        self.git.run("init", "--quiet")
        neutralise_attributes(self.path / ".git")
        self.git.run("remote", "add", ORIGIN, self.spec.origin_url)
        self.git.run("remote", "add", INTERNAL, self.spec.internal_url)
        self.fetch(mirror=mirror)
        if mirror is not None and self.remote_ref(ORIGIN, self.spec.branch) is None:
            self.fetch()  # a branch newer than the mirror's last fetch
        self.require_upstream(self.spec.branch)
        self.start_at(self.spec.branch)
        remotes.write_text(self._remote_urls())

    def _remote_urls(self) -> str:
        return "".join(f"{name} {url}\n" for name, url in
                       ((ORIGIN, self.spec.origin_url), (INTERNAL, self.spec.internal_url)))

    def _match_remotes(self, remotes: Path) -> None:
        """Set the remotes' URLs the inventory's way, asking git only when the remotes file differs."""
        wanted = self._remote_urls()
        if remotes.is_file() and remotes.read_text() == wanted:
            return
        configured = dict(line.split(" ", 1) for line in self.git.run(
            "config", "--get-regexp", r"^remote\..*\.url$").splitlines())
        for name, url in ((ORIGIN, self.spec.origin_url), (INTERNAL, self.spec.internal_url)):
            if configured.get(f"remote.{name}.url") != url:
                self.git.run("remote", "set-url", name, url)
        remotes.write_text(wanted)

    def fetch(self, *, origin: bool = True, mirror: Path | None = None) -> None:
        """Fetch origin's branches (no tags), and internal's branches and deploy tags
        (``origin=False``: internal's only, for a job that has just fetched origin).
        With ``mirror`` (the primary's local mirror, ``fleet.gitops.primary``) origin's
        branches come from it, borrowing its objects instead of copying them, and only
        when the mirror has been fetched into since this workspace last took them (only
        these fetches move the workspace's ``origin/*``).

        ``--prune`` also drops local deploy tags that internal lacks, so the local
        tags mirror the deployment history exactly after every fetch.
        """
        mirrored = self.path / ".git" / MIRRORED_FILE
        if origin and mirror is not None:
            self.borrow_objects(mirror)
            stamp = _mirror_stamp(mirror)  # read before the fetch: a later one is fetched next time
            if not stamp or not mirrored.is_file() or mirrored.read_text() != stamp:
                mirrored.unlink(missing_ok=True)  # a fetch that fails half-way is not the one recorded
                self.git.run("fetch", "--quiet", "--prune", "--no-tags", str(mirror),
                             f"+refs/heads/*:refs/remotes/{ORIGIN}/*", local_source=True)
                _write_or_remove(mirrored, stamp)
        elif origin:
            mirrored.unlink(missing_ok=True)  # origin's branches from elsewhere: the next mirror fetch is due
            self.git.run("fetch", "--quiet", "--prune", "--no-tags", ORIGIN,
                         f"+refs/heads/*:refs/remotes/{ORIGIN}/*", remote_url=self.spec.origin_url)
        self.git.run("fetch", "--quiet", "--prune", "--no-tags", INTERNAL,
                     f"+refs/heads/*:refs/remotes/{INTERNAL}/*", "+refs/tags/deploy/*:refs/tags/deploy/*",
                     remote_url=self.spec.internal_url)

    def borrow_objects(self, mirror: Path) -> None:
        """Read the mirror's objects in place (git alternates) rather than copy them."""
        alternates = self.path / ".git" / "objects" / "info" / "alternates"
        line = str((mirror / "objects").resolve())
        existing = alternates.read_text() if alternates.is_file() else ""
        if line not in existing.splitlines():
            alternates.parent.mkdir(parents=True, exist_ok=True)
            alternates.write_text(existing + line + "\n")

    # -- reading state -------------------------------------------------------------

    def refs(self) -> Refs:
        """The branches, remote-tracking branches and lease as they are: read once, and
        again only after a git command that may have moved one (``Git.ref_changes``)."""
        if self._refs is None or self._refs[0] != self.git.ref_changes:
            output = self.git.run("for-each-ref", f"--format={Refs.FORMAT}", *Refs.PATTERNS)
            self._refs = (self.git.ref_changes, Refs.parse(output))
        return self._refs[1]

    def _known_refs(self) -> Refs | None:
        """The refs as last read, if no command since may have moved one (no git run)."""
        return self._refs[1] if self._refs is not None and self._refs[0] == self.git.ref_changes else None

    def _moved(self, refs: Refs | None) -> None:
        """Keep ``refs`` as the refs now: the caller knew them before its commands and
        applied every effect those had on them (``None``: it did not know them)."""
        if refs is not None:
            self._refs = (self.git.ref_changes, refs)

    def rev(self, ref: str) -> str | None:
        result = self.git.attempt("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        return result.stdout.strip() if result.status == 0 else None

    def head(self) -> str:
        refs = self.refs()
        if refs.branch:
            return refs.shas[f"refs/heads/{refs.branch}"]
        return self.git.run("rev-parse", "HEAD").strip()  # detached: no branch names the commit

    def branch(self) -> str:
        return self.refs().branch or self.git.run("symbolic-ref", "--short", "HEAD").strip()

    def remote_ref(self, remote: str, branch: str) -> str | None:
        return self.refs().remote(remote, branch)

    def require_upstream(self, branch: str) -> str:
        sha = self.remote_ref(ORIGIN, branch)
        if sha is None:
            raise BadInput(f"branch {branch!r} does not exist in the primary repo {self.spec.origin_url}",
                           cluster=self.spec.cluster)
        return sha

    def merge_base(self, a: str, b: str) -> str:
        return self.git.run("merge-base", a, b).strip()

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self.git.attempt("merge-base", "--is-ancestor", ancestor, descendant).status == 0

    def changed_files(self) -> list[str]:
        lines = self.git.run("status", "--porcelain", "--untracked-files=all").splitlines()
        return sorted(line[3:] for line in lines if line.strip())

    def divergence(self, ref: str) -> Divergence:
        left, right = self.git.run("rev-list", "--left-right", "--count", f"HEAD...{ref}").split()
        return Divergence(int(left), int(right))

    def status(self) -> WorkspaceStatus:
        branch = self.branch()
        changed = self.changed_files()
        internal = self.remote_ref(INTERNAL, self.spec.internal_branch)
        return WorkspaceStatus(
            branch=branch, head=self.head(), clean=not changed, changed=changed,
            origin=self.divergence(self.require_upstream(branch)),
            internal=self.divergence(internal) if internal else None)

    # -- changing state ------------------------------------------------------------

    def checkout_branch(self, branch: str, start: str, *, tracked: bool | None = None) -> None:
        """Point local ``branch`` at ``start``, check it out, and track ``origin/<branch>``.

        A checkout keeps the upstream a branch has, so it is set only when missing;
        ``tracked`` says whether it is, for a caller that read the refs before moving HEAD."""
        if tracked is None:
            tracked = self.refs().tracks_origin(branch)
        # A commit's full name is what the branch will name: the refs need no reading after.
        known = self._known_refs() if _FULL_SHA.fullmatch(start) else None
        self.git.run("checkout", "--quiet", "--force", "-B", branch, start)
        if not tracked:
            self.git.run("branch", "--quiet", f"--set-upstream-to={ORIGIN}/{branch}", branch)
        self.git.run("clean", "-ffdxq")
        self._moved(known.checked_out(branch, start) if known else None)

    def start_at(self, branch: str, target: str | None = None) -> str:
        """Check out ``branch`` at ``target``, discarding local changes, and adopt internal's
        branch as the lease (:meth:`adopt_internal`); returns ``target``. By default the
        target is the known state: internal's branch if it exists (the cluster's truth),
        else origin's ``branch``."""
        refs = self.refs()  # the checkout moves neither the remote-tracking refs nor the lease
        internal = refs.remote(INTERNAL, self.spec.internal_branch)
        target = target or internal or self.require_upstream(branch)
        self.checkout_branch(branch, target, tracked=refs.tracks_origin(branch))
        self.set_lease(internal, now=refs.lease)
        return target

    def current_or_channel_branch(self) -> str:
        branch = self.refs().branch
        if branch:
            return branch
        result = self.git.attempt("symbolic-ref", "--quiet", "--short", "HEAD")
        return result.stdout.strip() if result.status == 0 else self.spec.branch

    def abort_operations(self) -> None:
        """Abort a rebase left half-done by a crashed job."""
        if (self.path / ".git" / "rebase-merge").exists() or (self.path / ".git" / "rebase-apply").exists():
            self.git.run("rebase", "--abort")

    def reset(self, ref: str | None = None) -> str:
        """Discard local changes and commits: HEAD at ``ref`` (default: the known state, see
        :meth:`start_at`)."""
        self.abort_operations()
        target = self.rev(ref) if ref else None
        if ref and target is None:
            raise BadInput(f"{ref!r} is not a commit, branch or tag of the workspace",
                           cluster=self.spec.cluster)
        return self.start_at(self.current_or_channel_branch(), target)

    def adopt_internal(self) -> None:
        """Record internal's branch, as last fetched, as what a push may replace.

        Pushes are forced, because upgrades rewrite history, with this value as the
        lease. Fetches made for other reasons (status, history) do not move it, so a
        commit someone pushed after a job started makes that job's push fail rather
        than disappear.
        """
        refs = self.refs()
        self.set_lease(refs.remote(INTERNAL, self.spec.internal_branch), now=refs.lease)

    def set_lease(self, sha: str | None, *, now: str | None) -> None:
        """Make the lease ``sha`` (``None``: no lease yet) unless it is already (``now``, as last read)."""
        if sha == now:
            return
        known = self._known_refs()
        if sha:
            self.git.run("update-ref", LEASE_REF, sha)
        else:
            self.git.run("update-ref", "-d", LEASE_REF)
        self._moved(known.leased(sha) if known else None)

    def lease(self) -> str:
        """The internal branch value a push expects to replace ('' for none yet)."""
        return self.refs().lease or ""

    def require_clean(self, operation: str) -> None:
        changed = self.changed_files()
        if changed:
            raise WorkspaceDirty(f"cannot {operation}: the workspace has uncommitted changes "
                              f"({', '.join(changed[:5])}); reset it first", cluster=self.spec.cluster)
