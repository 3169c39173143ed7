"""Read-only mirrors of repositories, to render a ref without any cluster or workspace.

Used by the policy gate's CI endpoint: a repository URL and a ref come in, a tree
goes out, and :func:`render_ref` renders it. Each URL gets one bare mirror under ``FLEET_WORKSPACE_DIR/_mirrors``
(``_`` cannot start a cluster name), updated by fetch, and each request exports
the ref's tree to a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

from fleet.gitops.errors import BadInput
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
    home = Path(settings.FLEET_WORKSPACE_DIR) / "_mirrors" / key
    git = Git(home / "repo.git")
    with tempfile.TemporaryDirectory(prefix="fleet-tree-") as scratch:
        tree = Path(scratch) / "tree"
        tree.mkdir()
        with directory_lock(home, f"mirror of {scrub(repo_url)}"):
            if not (git.path / "HEAD").is_file():
                git.path.mkdir(parents=True, exist_ok=True)
                git.run("init", "--quiet", "--bare")
                neutralise_attributes(git.path)
                git.run("remote", "add", "origin", repo_url)
            git.run("fetch", "--quiet", "--prune", "--no-tags", "origin", "+refs/heads/*:refs/heads/*",
                    "+refs/tags/*:refs/tags/*", remote_url=repo_url)
            found = next((c for c in (f"refs/heads/{ref}", f"refs/tags/{ref}", ref) if git.attempt(
                "rev-parse", "--verify", "--quiet", f"{c}^{{commit}}").status == 0), None)
            if found is None:
                raise BadInput(f"{ref!r} is not a branch, tag or commit of {scrub(repo_url)}")
            git.run("--work-tree", str(tree), "checkout", "--quiet", found, "--", ".",
                    env={"GIT_INDEX_FILE": str(Path(scratch) / "index")})
        yield tree


def render_ref(repo_url: str, ref: str, path: str = "", *,
               limits: RenderLimits | None = None) -> RenderResult:
    """Render ``path`` of ``repo_url`` at ``ref`` (branch, tag or SHA), for CI and previews.

    The repository is fetched into a reused mirror and the tree exported to a
    temporary directory, so nothing here needs a cluster or a workspace.
    """
    with exported_tree(repo_url, ref) as tree:
        target = tree / path if path else tree
        return render_dir(target, root=tree, limits=limits)
