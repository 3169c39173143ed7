"""The git adapter: every git command Fleet runs goes through :class:`Git`.

Git runs non-interactive (``GIT_TERMINAL_PROMPT=0``), ignores system and global
configuration (a host's credential helper or hooks must not apply), never runs
repository hooks, and has a timeout; a stalled transfer fails well before it (low-speed
limits, ssh keep-alives). Only the transports Fleet supports are allowed
(``protocol.allow=never`` and one allow each: https, ssh, and file where
``FLEET_GIT_LOCAL_ROOTS`` names directories), and a command's remote URL is checked
against ``fleet.core.repourl`` before git sees it, so a stored URL of another transport
(``fd::17``, ``ext::``) never reaches git. Submodules are never followed: a committed
``.gitmodules`` is a file like any other. Errors are
:class:`~fleet.gitops.errors.GitError` with URL credentials and any secret used for the
command scrubbed out.

Every command is counted by subcommand (:func:`command_counts`): git processes are a
large share of a deployment's CPU, and a test holds their number to a budget.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from fleet.core.repourl import RepoUrlError, local_roots, parse_repo_url
from fleet.gitops.askpass import SSH_COMMAND, credential_env
from fleet.gitops.errors import BadInput, GitError

COMMITTER = ("Fleet", "fleet@fleet.invalid")
_CONFIG = (
    "core.hooksPath=/dev/null", "core.fsmonitor=false", "protocol.ext.allow=never",
    "credential.helper=", "commit.gpgSign=false", "tag.gpgSign=false", "rebase.autoStash=false",
    "rebase.autoSquash=false", "advice.detachedHead=false", "init.defaultBranch=main",
    "core.symlinks=true", "gc.auto=0", "maintenance.auto=false",
    # Submodules are never followed, whatever a committed .gitmodules says.
    "submodule.recurse=false", "fetch.recurseSubmodules=false", "push.recurseSubmodules=no",
    "diff.ignoreSubmodules=all", "status.submoduleSummary=false",
    # Only the transports Fleet supports (file is added where local roots are configured).
    "protocol.allow=never", "protocol.https.allow=always", "protocol.ssh.allow=always",
    # A transfer slower than 1 KB/s for 60 s is a stalled server, not a slow one.
    "http.lowSpeedLimit=1000", "http.lowSpeedTime=60",
)
_BASE_ENV = {
    "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_ASKPASS": "", "SSH_ASKPASS": "", "GIT_SSH_COMMAND": SSH_COMMAND, "GIT_PROTOCOL_FROM_USER": "0",
    "LC_ALL": "C", "GIT_COMMITTER_NAME": COMMITTER[0], "GIT_COMMITTER_EMAIL": COMMITTER[1],
    "GIT_AUTHOR_NAME": COMMITTER[0], "GIT_AUTHOR_EMAIL": COMMITTER[1],
}
_USERINFO_RE = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
# Subcommands that never move HEAD or a ref outside refs/tags/ (``tag`` makes tags only, and
# tags are read afresh each time, never kept): refs read before one still hold after it.
_KEEP_REFS = frozenset({"add", "cat-file", "clean", "diff", "for-each-ref", "log", "ls-remote", "ls-tree",
                        "merge-base", "rev-list", "rev-parse", "show", "status", "tag"})
_OPTIONS_WITH_VALUE = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace"})
_counts: Counter[str] = Counter()
_counts_lock = threading.Lock()


def _subcommand(args: tuple[str, ...]) -> str:
    """The git subcommand of ``args`` (``checkout`` of ``--work-tree DIR checkout …``)."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return ""


def command_counts(*, reset: bool = False) -> Counter[str]:
    """How many git processes this process has run, by subcommand (``rev-parse``: 3), since
    start or the last ``reset`` (which this call does after reading, atomically)."""
    with _counts_lock:
        counts = Counter(_counts)
        if reset:
            _counts.clear()
    return counts


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove secrets and URL user info (``https://user:token@``) from ``text``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _USERINFO_RE.sub(r"\g<scheme>***@", text)


# Highest precedence of all attributes files: whatever a committed .gitattributes says,
# no filter, end-of-line conversion, keyword expansion or re-encoding changes what Fleet
# reads from, or writes to, a repository (``!`` restores git's default).
NEUTRAL_ATTRIBUTES = "* !filter !text !eol !crlf !ident !working-tree-encoding !merge !diff !export-subst\n"


def neutralise_attributes(git_dir: Path) -> None:
    """Write :data:`NEUTRAL_ATTRIBUTES` as ``info/attributes`` of the repository at ``git_dir``."""
    target = git_dir / "info" / "attributes"
    if not target.is_file() or target.read_text() != NEUTRAL_ATTRIBUTES:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(NEUTRAL_ATTRIBUTES)


@dataclass(frozen=True)
class Completed:
    status: int
    stdout: str
    stderr: str


class Git:
    """Runs git in one directory.

    :attr:`ref_changes` counts the commands run that may have moved HEAD or a ref outside
    ``refs/tags/`` (any subcommand but those of ``_KEEP_REFS``): a reader that keeps refs it
    read (:meth:`Workspace.refs <fleet.gitops.workspace.Workspace.refs>`) reads them again
    when it has changed. Something else that may move refs (a migration script) says so
    with :meth:`refs_moved`.
    """

    def __init__(self, path: Path):
        self.path = path
        self.ref_changes = 0

    def refs_moved(self) -> None:
        """Note that a process outside this adapter may have moved refs or HEAD."""
        self.ref_changes += 1

    def run(self, *args: str, remote_url: str = "", env: dict[str, str] | None = None,
            timeout: float | None = None, local_source: bool = False) -> str:
        """Run ``git args``; return stdout, raise :class:`GitError` on a non-zero exit."""
        result = self.attempt(*args, remote_url=remote_url, env=env, timeout=timeout, local_source=local_source)
        if result.status != 0:
            raise GitError(f"git {_subcommand(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def attempt(self, *args: str, remote_url: str = "", env: dict[str, str] | None = None,
                timeout: float | None = None, local_source: bool = False) -> Completed:
        """Run ``git args`` and return its outcome, whatever the exit status.

        ``remote_url`` names the remote the command talks to, so its stored
        credential (if any) is made available for this command only. ``local_source``
        allows the file transport for this command, whatever the local roots: the
        command reads a repository of Fleet's own (a primary mirror), never a stored URL.
        """
        if remote_url:
            try:
                parse_repo_url(remote_url)
            except RepoUrlError as exc:
                raise BadInput(f"git remote refused: {exc}") from None
        config = (*_CONFIG, f"protocol.file.allow={'always' if local_source or local_roots() else 'never'}")
        command = ["git", *(part for item in config for part in ("-c", item)), *args]
        name = _subcommand(args)
        with _counts_lock:
            _counts[name] += 1
        if name not in _KEEP_REFS:
            self.refs_moved()
        with credential_env(remote_url) as auth:
            environment = {**os.environ, **_BASE_ENV, **auth.env, **(env or {})}
            status, stdout, stderr = _execute(command, self.path, environment, timeout or settings.FLEET_GIT_TIMEOUT)
        return Completed(status, scrub(stdout, auth.secrets), scrub(stderr, auth.secrets))


def _execute(command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str, str]:
    """Run ``command`` with no input; past ``timeout`` its whole process group is killed
    (git's helpers too: ssh, a remote helper) and the outcome says so. Plain ``subprocess``
    on purpose: a general git wrapper (GitPython's ``execute``) starts a watchdog thread
    and redacts the command line on every call, a measurable share of a deployment's CPU."""
    if not cwd.is_dir():  # never git in whatever directory the process happens to be in
        return 128, "", f"{cwd.name} is not a directory"
    with subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return -signal.SIGKILL, "", f"git {_subcommand(tuple(command[1:]))} did not complete in {timeout:g}s"
    return (process.returncode, stdout.decode(errors="surrogateescape"),
            stderr.decode(errors="surrogateescape").rstrip("\n"))
