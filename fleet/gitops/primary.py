"""One local copy of each primary (vendor) repository, shared by every cluster's workspace.

A rollout of one release to a thousand clusters used to fetch the vendor's repository a
thousand times, once per workspace, each a network round trip and a pack of the same
objects. Now each primary URL has one bare mirror under
``FLEET_WORKSPACE_DIR/_primaries/<digest>/repo.git`` (``_`` cannot start a cluster
name): a deployment asks it for the release's commit, and the mirror fetches from
the vendor only when it lacks that commit, so a rollout of a release fetches it once
(the first cluster; the others find it there). Each workspace then takes its
``origin/*`` branches from the mirror, a local fetch that copies no objects: the
workspace borrows the mirror's object store (git alternates), so a thousand
workspaces hold the vendor's history once on disk.

Branches in the mirror only move forward with the vendor's (a fetch when a new
release appears), and workspaces read theirs from it, so no workspace knows a newer
vendor commit than its mirror: the merge base an upgrade rebases from is always found.
The mirror is never pruned of objects or evicted (``gc.auto=0``): workspaces borrow them.

Each fetch into the mirror leaves a new generation token
(:func:`~fleet.gitops.workspace.mirror_generation`): what was learnt about the mirror's
branches holds while the token is the same. A process remembers which commits it found
on which branch, per generation, and a workspace which generation it last fetched: a
rollout's thousandth cluster asks git nothing about a mirror the first one already fetched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

from django.conf import settings

from fleet.core.lru import LRU
from fleet.gitops.constants import MIRROR_GENERATION
from fleet.gitops.git import Git, neutralise_attributes, scrub
from fleet.gitops.workspace import directory_lock, mirror_generation

ROOT = "_primaries"
# "<mirror> <generation> <branch> <sha>" for a commit found on that branch of the mirror
# at that generation: true for as long as the generation is the mirror's.
_ON_BRANCH: LRU[bool] = LRU(4096)


def mirror_path(url: str, root: Path | None = None) -> Path:
    key = hashlib.sha256(url.encode()).hexdigest()[:24]
    return Path(root or settings.FLEET_WORKSPACE_DIR) / ROOT / key / "repo.git"


def _new_generation(path: Path) -> None:
    scratch = path / f"{MIRROR_GENERATION}.{uuid.uuid4().hex}"
    scratch.write_text(uuid.uuid4().hex)
    os.replace(scratch, path / MIRROR_GENERATION)  # readers see the old token or the new, whole


def existing(url: str, root: Path | None = None) -> Path | None:
    """The mirror of ``url`` if its first fetch is done (no fetch): what a new clone borrows from."""
    path = mirror_path(url, root)
    return path if (path / MIRROR_GENERATION).is_file() else None


def ensure_commit(url: str, sha: str, branch: str, root: Path | None = None) -> tuple[Path, bool]:
    """The mirror of ``url`` whose ``branch`` holds commit ``sha`` (fetched from ``url``
    only if it does not); returns its path and whether it fetched.

    The question is the branch's, not the object store's: a fetch writes the objects
    before it moves the branches, so a commit can be there while no branch leads to it
    yet, and a workspace taking the branches then would not find it on its branch.
    """
    path = mirror_path(url, root)
    git = Git(path)

    def has_it() -> bool:
        if not (path / MIRROR_GENERATION).is_file():  # no complete fetch yet: no branches
            return False
        token = mirror_generation(path)  # read before git is asked: the answer holds for this generation
        key = f"{path} {token} {branch} {sha}"
        if token and _ON_BRANCH.get(key):
            return True
        found = git.attempt("merge-base", "--is-ancestor", sha, f"refs/heads/{branch}").status == 0
        if found and token:
            _ON_BRANCH.put(key, True)
        return found

    if has_it():  # the common case, read-only: no lock, so a thousand clusters do not queue
        return path, False
    with directory_lock(path.parent, f"primary repo {scrub(url)}"):
        if has_it():  # another job fetched it while this one waited
            return path, False
        fresh = not (path / "HEAD").is_file()  # else an earlier fetch's, which clones may borrow from
        try:
            if fresh:
                shutil.rmtree(path, ignore_errors=True)
                path.mkdir(parents=True)
                git.run("init", "--quiet", "--bare")
                neutralise_attributes(path)
            elif (path / MIRROR_GENERATION).is_file():
                # A new token before the fetch as well as after: a fetch that dies half-way
                # (its refs moved, no token after) must not leave the token workspaces
                # recorded before it, or they would never take what it moved.
                _new_generation(path)
            git.run("fetch", "--quiet", "--prune", "--no-tags", url, "+refs/heads/*:refs/heads/*",
                    remote_url=url)
            _new_generation(path)
        except BaseException:
            if fresh:
                shutil.rmtree(path, ignore_errors=True)  # a first fetch that failed leaves nothing
            raise
    return path, True
