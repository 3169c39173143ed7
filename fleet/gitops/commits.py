"""Writing files into a workspace and committing them, refusing what is unsafe first.

Every path, size and resulting kustomization is checked before anything is
written; if a check fails after writing (a kustomization reaching outside the
repo, say), the work tree is restored, so a refused edit never leaves a trace.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fleet.gitops.errors import BadInput
from fleet.gitops.workspace import Workspace
from fleet.render import safety
from fleet.render.errors import RenderError
from fleet.render.limits import RenderLimits

MAX_MESSAGE_CHARS = 10_000
MAX_NAME_BYTES = 255  # one path component, as file systems allow
MAX_PATH_BYTES = 1024


@dataclass(frozen=True)
class Author:
    name: str
    email: str

    @classmethod
    def of(cls, user) -> Author:
        """A Django user as a git author; users without an e-mail get a placeholder."""
        username = user.get_username()
        return cls(user.get_full_name() or username, user.email or f"{username}@users.fleet.invalid")


@dataclass(frozen=True)
class CommitResult:
    sha: str
    changed: bool
    files: list[str]

    def as_dict(self) -> dict:
        return {"sha": self.sha, "changed": self.changed, "files": self.files}


def clean_path(path: str, *, cluster: str = "", deleting: bool = False) -> str:
    """A repo-relative POSIX path to a file, or :class:`BadInput` for anything that could
    escape, is no file name, or is one of git's own control files.

    git reads ``.gitmodules``, ``.gitattributes`` and the like from the tree itself (a
    submodule to fetch, a filter to run): Fleet never writes any ``.git*`` name. It may
    delete one (not inside ``.git``), which is how one pushed by hand is removed.
    """
    if not isinstance(path, str) or not path or "\x00" in path or "\\" in path:
        raise BadInput(f"file path {path!r} is not a relative POSIX path", cluster=cluster)
    if len(path.encode()) > MAX_PATH_BYTES:
        raise BadInput(f"file path of {len(path.encode())} bytes is longer than {MAX_PATH_BYTES}", cluster=cluster)
    if path.startswith("/"):
        raise BadInput(f"file path {path!r} is absolute; paths are relative to the repository",
                       cluster=cluster)
    parts = PurePosixPath(path).parts
    if ".." in parts:
        raise BadInput(f"file path {path!r} contains '..'", cluster=cluster)
    normalised = posixpath.normpath(path)
    if normalised in (".", "") or path.endswith("/"):
        raise BadInput(f"file path {path!r} names no file", cluster=cluster)
    long = next((part for part in parts if len(part.encode()) > MAX_NAME_BYTES), None)
    if long is not None:
        raise BadInput(f"file path {path[:80]!r}…: a name is longer than {MAX_NAME_BYTES} bytes", cluster=cluster)
    if any(part.lower() == ".git" for part in parts):
        raise BadInput(f"file path {path!r} is inside .git", cluster=cluster)
    if not deleting and any(part.lower().startswith(".git") for part in parts):
        raise BadInput(f"file path {path!r} is one of git's own control files (.gitmodules, .gitattributes, "
                       "…); Fleet never writes them (deleting one is allowed)", cluster=cluster)
    return normalised


def write_files(ws: Workspace, files: dict[str, str | None], limits: RenderLimits) -> list[str]:
    """Validate, then write (``None`` deletes) ``files``; return the paths, sorted."""
    cluster = ws.spec.cluster
    cleaned: dict[str, str | None] = {}
    for raw, content in files.items():
        path = clean_path(raw, cluster=cluster, deleting=content is None)
        if content is not None and not isinstance(content, str):
            raise BadInput(f"{path}: content must be text (or null to delete)", cluster=cluster)
        if content is not None and len(content.encode()) > limits.max_file_bytes:
            raise BadInput(f"{path}: file is larger than {limits.max_file_bytes} bytes", cluster=cluster)
        _refuse_symlinks(ws.path, path, cluster, deleting=content is None)
        if (ws.path / path).is_dir() and not (ws.path / path).is_symlink():
            raise BadInput(f"{path} is a directory; give the files in it", cluster=cluster)
        cleaned[path] = content
    for path, content in cleaned.items():
        target = ws.path / path
        if content is None:
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    return sorted(cleaned)


def _refuse_symlinks(root: Path, path: str, cluster: str, *, deleting: bool) -> None:
    """Writing through a symlink (the file or a parent directory) could land anywhere.

    Deleting a symlink itself is allowed: it is how a bad one is removed.
    """
    parts = PurePosixPath(path).parts
    current = root
    for index, part in enumerate(parts):
        current = current / part
        if current.is_symlink() and not (deleting and index == len(parts) - 1):
            raise BadInput(f"{path}: {current.relative_to(root)} is a symlink; Fleet does not write "
                           "through symlinks", cluster=cluster)


def check_and_commit(ws: Workspace, paths: list[str], author: Author, message: str,
                     limits: RenderLimits) -> CommitResult:
    """Check the resulting tree and commit ``paths``; on any refusal, restore the work tree."""
    cluster = ws.spec.cluster
    try:
        if not message.strip() or len(message) > MAX_MESSAGE_CHARS:
            raise BadInput(f"a commit message is required (at most {MAX_MESSAGE_CHARS} characters)",
                           cluster=cluster)
        try:
            safety.check_tree(ws.path, limits)
            for directory in {(ws.path / p).parent for p in paths
                              if Path(p).name in safety.KUSTOMIZATION_FILES}:
                if directory.is_dir():
                    safety.check_kustomization_tree(directory, ws.path, limits)
        except RenderError as exc:
            raise BadInput(str(exc), cluster=cluster) from None
        ws.git.run("add", "--all", "--", *paths)
        if ws.git.attempt("diff", "--cached", "--quiet").status == 0:
            return CommitResult(ws.head(), False, paths)
        env = {"GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email}
        ws.git.run("commit", "--quiet", "--no-verify", "--message", message, env=env)
    except BaseException:
        discard(ws)
        raise
    return CommitResult(ws.head(), True, paths)


def discard(ws: Workspace) -> None:
    """Throw away uncommitted changes (after a refused edit)."""
    ws.git.run("reset", "--quiet", "--hard", "HEAD")
    ws.git.run("clean", "-ffdxq")
