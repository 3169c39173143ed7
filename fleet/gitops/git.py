"""The git adapter: every git command Fleet runs goes through :class:`Git`.

Git runs non-interactive (``GIT_TERMINAL_PROMPT=0``), ignores system and global
configuration (a host's credential helper or hooks must not apply), never runs
repository hooks or ``ext::`` transports, and has a timeout. Errors are
:class:`~fleet.gitops.errors.GitError` with URL credentials and any secret used
for the command scrubbed out.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import git as gitpython
from django.conf import settings

from fleet.gitops.askpass import credential_env
from fleet.gitops.errors import GitError

COMMITTER = ("Fleet", "fleet@fleet.invalid")
_CONFIG = (
    "core.hooksPath=/dev/null", "core.fsmonitor=false", "protocol.ext.allow=never",
    "credential.helper=", "commit.gpgSign=false", "tag.gpgSign=false", "rebase.autoStash=false",
    "rebase.autoSquash=false", "advice.detachedHead=false", "init.defaultBranch=main",
    "core.symlinks=true", "gc.auto=0", "maintenance.auto=false",
)
_BASE_ENV = {
    "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_ASKPASS": "", "SSH_ASKPASS": "", "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
    "LC_ALL": "C", "GIT_COMMITTER_NAME": COMMITTER[0], "GIT_COMMITTER_EMAIL": COMMITTER[1],
    "GIT_AUTHOR_NAME": COMMITTER[0], "GIT_AUTHOR_EMAIL": COMMITTER[1],
}
_USERINFO_RE = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove secrets and URL user info (``https://user:token@``) from ``text``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _USERINFO_RE.sub(r"\g<scheme>***@", text)


@dataclass(frozen=True)
class Completed:
    status: int
    stdout: str
    stderr: str


class Git:
    """Runs git in one directory."""

    def __init__(self, path: Path):
        self.path = path
        self._git = gitpython.Git(str(path))

    def run(self, *args: str, remote_url: str = "", env: dict[str, str] | None = None,
            timeout: float | None = None) -> str:
        """Run ``git args``; return stdout, raise :class:`GitError` on a non-zero exit."""
        result = self.attempt(*args, remote_url=remote_url, env=env, timeout=timeout)
        if result.status != 0:
            raise GitError(f"git {args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def attempt(self, *args: str, remote_url: str = "", env: dict[str, str] | None = None,
                timeout: float | None = None) -> Completed:
        """Run ``git args`` and return its outcome, whatever the exit status.

        ``remote_url`` names the remote the command talks to, so its stored
        credential (if any) is made available for this command only.
        """
        command = ["git", *(part for item in _CONFIG for part in ("-c", item)), *args]
        with credential_env(remote_url) as auth:
            status, stdout, stderr = self._git.execute(
                command, with_extended_output=True, with_exceptions=False,
                kill_after_timeout=timeout or settings.FLEET_GIT_TIMEOUT,
                env={**_BASE_ENV, **auth.env, **(env or {})}, strip_newline_in_stdout=False)
        return Completed(status, scrub(stdout, auth.secrets), scrub(stderr, auth.secrets))
