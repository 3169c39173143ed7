"""Upgrading a cluster: its own commits rebased onto a new upstream, after a migration.

The cluster's own commits are those between the merge base with its current
upstream branch and HEAD. They are replayed onto the target release commit on a
detached HEAD, so until everything has worked no branch moves: a merge commit, a
failing migration or a conflict restores the original branch and work tree
exactly, and nothing is pushed (pushing is a separate step). See
``fleet.gitops.constants`` for the migration convention.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings

from fleet.gitops.constants import CLUSTER_DIR, MIGRATIONS_DIR
from fleet.gitops.errors import BadInput
from fleet.gitops.git import scrub
from fleet.gitops.workspace import Workspace

_VERSION_RE = re.compile(r"^release-(\d+\.\d+)$")


@dataclass(frozen=True)
class UpgradeResult:
    ok: bool
    from_branch: str
    to_branch: str
    from_upstream: str
    to_upstream: str
    head: str
    changed: bool = False
    migration: str = ""  # the migration that ran, if any
    replayed: int = 0  # the cluster's own commits replayed onto the new upstream
    reason: str = ""  # on failure: "merge-commit", "migration-failed" or "conflict"
    error: str = ""
    conflicts: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class _Refused(Exception):
    def __init__(self, reason: str, error: str, conflicts: list[str] | None = None):
        self.reason, self.error, self.conflicts = reason, error, conflicts or []
        super().__init__(error)


def migration_path(from_branch: str, to_branch: str) -> str | None:
    """``migrations/1.1-1.2`` for release-1.1 -> release-1.2; none within one branch."""
    a, b = _VERSION_RE.match(from_branch), _VERSION_RE.match(to_branch)
    if from_branch == to_branch or not (a and b):
        return None
    return f"{MIGRATIONS_DIR}/{a.group(1)}-{b.group(1)}"


def upgrade(ws: Workspace, to_branch: str, to_sha: str, *, just_reset: bool = False) -> UpgradeResult:
    """Move the workspace onto ``to_sha`` of ``to_branch``; never raises for a conflict.

    ``just_reset``: the caller has just reset the workspace (:meth:`Workspace.reset`),
    so it is clean and is not checked again."""
    cluster = ws.spec.cluster
    if not just_reset:
        ws.require_clean("upgrade")
    refs = ws.refs()
    # The merge base of a commit and a descendant is that commit: one git command says
    # that ``to_sha`` is a commit's full name (not a tag's, not abbreviated) and on the branch.
    found = ws.git.attempt("merge-base", to_sha, ws.require_upstream(to_branch))
    if found.status != 0 or found.stdout.strip() != to_sha:
        raise BadInput(f"commit {to_sha} is not on branch {to_branch!r} of the primary repo",
                       cluster=cluster)
    from_branch, original = ws.branch(), ws.head()
    old_base = ws.merge_base("HEAD", ws.require_upstream(from_branch))
    result = dict(from_branch=from_branch, to_branch=to_branch, from_upstream=old_base,
                  to_upstream=to_sha)
    if from_branch == to_branch and old_base == to_sha:
        return UpgradeResult(ok=True, head=original, **result)
    # The cluster's own commits: parents, then the short name and subject of each.
    own = ws.git.run("log", "--format=%P%x09%h %s", f"{old_base}..HEAD").splitlines()
    ws.git.run("checkout", "--quiet", "--detach")
    try:
        _refuse_merges(own)
        migration = _migrate(ws, from_branch, to_branch, to_sha)
        _rebase(ws, to_sha, old_base)
    except _Refused as refused:
        _restore(ws, from_branch, original)
        return UpgradeResult(ok=False, head=original, reason=refused.reason, error=refused.error,
                             conflicts=refused.conflicts, **result)
    except BaseException:
        _restore(ws, from_branch, original)
        raise
    ws.checkout_branch(to_branch, "HEAD", tracked=refs.tracks_origin(to_branch))
    if from_branch != to_branch:
        ws.git.run("branch", "--quiet", "-D", from_branch)
    return UpgradeResult(ok=True, head=ws.head(), changed=True, migration=migration or "",
                         replayed=len(own) + bool(migration), **result)


def _refuse_merges(own: list[str]) -> None:
    """``own``: the cluster's commits, each its parents, a tab, its short name and subject."""
    merges = [line.split("\t", 1)[1] for line in own if " " in line.split("\t", 1)[0]]
    if merges:
        raise _Refused("merge-commit", f"the cluster's history has {len(merges)} merge commit(s) "
                       f"({'; '.join(merges[:3])}); Fleet upgrades by rebase and needs a linear "
                       "history: rewrite these commits without merges")


def _migrate(ws: Workspace, from_branch: str, to_branch: str, to_sha: str) -> str | None:
    """Run the release's migration, if it ships one, and commit what it changed."""
    name = migration_path(from_branch, to_branch)
    if name is None or not ws.git.run("ls-tree", "--name-only", to_sha, "--", name).strip():
        return None
    script = ws.git.run("show", f"{to_sha}:{name}")
    with tempfile.TemporaryDirectory(prefix="fleet-migration-") as scratch:
        path = Path(scratch) / "migrate"
        path.write_text(script)
        path.chmod(0o700)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": scratch, "LC_ALL": "C",
               "FLEET_CLUSTER": ws.spec.cluster, "FLEET_CLUSTER_DIR": CLUSTER_DIR,
               "FLEET_FROM_BRANCH": from_branch, "FLEET_TO_BRANCH": to_branch}
        try:
            process = subprocess.run([str(path)], cwd=ws.path, env=env, capture_output=True,
                                     timeout=settings.FLEET_MIGRATION_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise _Refused("migration-failed", f"migration {name} did not finish within "
                           f"{settings.FLEET_MIGRATION_TIMEOUT}s") from None
        except OSError as exc:
            raise _Refused("migration-failed", f"migration {name} could not start: {exc.strerror}") from None
        finally:
            ws.git.refs_moved()  # the script may have run git itself
    if process.returncode != 0:
        output = scrub((process.stderr or process.stdout).decode(errors="replace").strip()[-2000:])
        raise _Refused("migration-failed", f"migration {name} failed with exit status "
                       f"{process.returncode}: {output}")
    if ws.changed_files():
        ws.git.run("add", "--all")
        ws.git.run("commit", "--quiet", "--no-verify", "--message",
                   f"Migrate cluster files from {from_branch} to {to_branch}\n\nRan {name} of {to_sha}.")
    return name


def _rebase(ws: Workspace, onto: str, old_base: str) -> None:
    outcome = ws.git.attempt("rebase", "--quiet", "--onto", onto, old_base)
    if outcome.status == 0:
        return
    conflicts = ws.git.run("diff", "--name-only", "--diff-filter=U").split()
    detail = outcome.stdout.strip() or outcome.stderr.strip()
    subject = next((line for line in detail.splitlines() if line.startswith("Could not apply")), "")
    raise _Refused("conflict", f"rebasing onto {onto[:12]} conflicts in {', '.join(conflicts) or '?'}"
                   + (f" ({subject})" if subject else ""), conflicts)


def _restore(ws: Workspace, branch: str, original: str) -> None:
    ws.abort_operations()
    ws.git.run("checkout", "--quiet", "--force", branch)
    ws.git.run("reset", "--quiet", "--hard", original)
    ws.git.run("clean", "-ffdxq")
