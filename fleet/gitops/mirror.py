"""Read-only mirrors of repositories, to render a ref without any cluster or workspace.

Used by the policy gate's CI endpoint: a repository URL and a ref come in, a tree
goes out, and :func:`render_ref` renders it. Each URL gets one bare mirror under ``FLEET_WORKSPACE_DIR/_mirrors``
(``_`` cannot start a cluster name), updated by fetch, and each request exports
the ref's tree to a temporary directory that is removed afterwards.

Mirrors are bounded: a first fetch that fails leaves nothing behind, a mirror larger
than ``FLEET_MIRROR_MAX_BYTES`` is removed and refused, and past ``FLEET_MIRROR_MAX``
mirrors the least recently used ones (not in use) are removed. Which repositories may
be mirrored at all is the caller's rule (the policy gate's: known ones only).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

from fleet.gitops.errors import BadInput, WorkspaceBusy
from fleet.gitops.git import Git, neutralise_attributes, scrub
from fleet.gitops.workspace import directory_lock
from fleet.inventory.validators import validate_repo_url
from fleet.render.limits import RenderLimits
from fleet.render.services import RenderResult, render_dir


@contextmanager
def exported_tree(repo_url: str, ref: str) -> Iterator[Path]:
    """The tree of ``ref`` (branch, tag or commit) of ``repo_url``, in a temporary directory."""
    try:
        validate_repo_url(repo_url)
    except ValidationError as exc:
        raise BadInput(scrub(" ".join(exc.messages))) from None
    if not ref or ref.startswith("-"):
        raise BadInput(f"{ref!r} is not a branch, tag or commit")
    key = hashlib.sha256(repo_url.encode()).hexdigest()[:24]
    home = mirrors_dir() / key
    git = Git(home / "repo.git")
    with tempfile.TemporaryDirectory(prefix="fleet-tree-") as scratch:
        tree = Path(scratch) / "tree"
        tree.mkdir()
        with directory_lock(home, f"mirror of {scrub(repo_url)}"):
            _update(git, repo_url)
            (home / "used").touch()
            found = next((c for c in (f"refs/heads/{ref}", f"refs/tags/{ref}", ref) if git.attempt(
                "rev-parse", "--verify", "--quiet", f"{c}^{{commit}}").status == 0), None)
            if found is None:
                raise BadInput(f"{ref!r} is not a branch, tag or commit of {scrub(repo_url)}")
            git.run("--work-tree", str(tree), "checkout", "--quiet", found, "--", ".",
                    env={"GIT_INDEX_FILE": str(Path(scratch) / "index")})
        yield tree
    evict(keep=home)


def mirrors_dir() -> Path:
    return Path(settings.FLEET_WORKSPACE_DIR) / "_mirrors"


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _update(git: Git, repo_url: str) -> None:
    """Create (on first use) and fetch the mirror; a failed first fetch or an oversize
    repository leaves no mirror behind."""
    new = not (git.path / "HEAD").is_file()
    try:
        if new:
            shutil.rmtree(git.path, ignore_errors=True)
            git.path.mkdir(parents=True)
            git.run("init", "--quiet", "--bare")
            neutralise_attributes(git.path)
            git.run("remote", "add", "origin", repo_url)
        git.run("fetch", "--quiet", "--prune", "--no-tags", "origin", "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*", remote_url=repo_url)
        limit = settings.FLEET_MIRROR_MAX_BYTES
        if _size(git.path) > limit:
            shutil.rmtree(git.path, ignore_errors=True)
            raise BadInput(f"{scrub(repo_url)} is larger than FLEET_MIRROR_MAX_BYTES ({limit} bytes)")
    except BaseException:
        if new:
            shutil.rmtree(git.path, ignore_errors=True)
        raise


def evict(keep: Path | None = None) -> list[Path]:
    """Remove the least recently used mirrors past ``FLEET_MIRROR_MAX``, skipping any in
    use; returns the homes whose mirror was removed. The lock file stays, so a job
    waiting on it still locks the same file."""
    homes = [p.parent for p in mirrors_dir().glob("*/repo.git") if p.parent != keep]
    excess = len(homes) + (keep is not None) - settings.FLEET_MIRROR_MAX
    removed: list[Path] = []
    for home in sorted(homes, key=lambda h: os.path.getmtime(h / "used") if (h / "used").exists() else 0):
        if len(removed) >= excess:
            break
        try:
            with directory_lock(home, "mirror", timeout=0):
                shutil.rmtree(home / "repo.git", ignore_errors=True)
                removed.append(home)
        except WorkspaceBusy:
            continue
    return removed


def render_ref(repo_url: str, ref: str, path: str = "", *,
               limits: RenderLimits | None = None) -> RenderResult:
    """Render ``path`` of ``repo_url`` at ``ref`` (branch, tag or SHA), for CI and previews.

    The repository is fetched into a reused mirror and the tree exported to a
    temporary directory, so nothing here needs a cluster or a workspace.
    """
    with exported_tree(repo_url, ref) as tree:
        target = tree / path if path else tree
        return render_dir(target, root=tree, limits=limits)
