"""Handing a repository credential to git without it landing anywhere durable.

An HTTPS token goes through ``GIT_ASKPASS``: a small script, with no secret in it,
prints the user name and token from environment variables of the git process only.
An SSH key goes to a 0600 file in a private temporary directory, named in
``GIT_SSH_COMMAND``. Both are removed when the context ends, whatever happens;
the secret is also returned so the caller can scrub it from any error text.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

_ASKPASS = """#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "$FLEET_GIT_USERNAME" ;;
  *) printf '%s\\n' "$FLEET_GIT_PASSWORD" ;;
esac
"""


# Non-interactive, and a dead or silent server is given up on in about a minute.
SSH_COMMAND = "ssh -o BatchMode=yes -o ConnectTimeout=30 -o ServerAliveInterval=15 -o ServerAliveCountMax=4"


@dataclass(frozen=True)
class GitAuth:
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()


def is_local(url: str) -> bool:
    return url.startswith(("/", "file://"))


@contextmanager
def credential_env(url: str) -> Iterator[GitAuth]:
    """The environment git needs to reach ``url`` with its stored credential, if any."""
    if not url or is_local(url):
        yield GitAuth()
        return
    from fleet.gitops.models import CredentialKind, RepositoryCredential

    credential = RepositoryCredential.for_url(url)
    if credential is None:
        yield GitAuth()
        return
    secret = credential.get_secret()
    with tempfile.TemporaryDirectory(prefix="fleet-git-") as private:
        if credential.kind == CredentialKind.HTTPS_TOKEN:
            script = Path(private) / "askpass"
            script.write_text(_ASKPASS)
            script.chmod(0o700)
            env = {"GIT_ASKPASS": str(script), "FLEET_GIT_USERNAME": credential.username or "git",
                   "FLEET_GIT_PASSWORD": secret}
        else:
            key = Path(private) / "id"
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secret.rstrip("\n") + "\n")
            known_hosts = Path(settings.FLEET_GIT_KNOWN_HOSTS)
            known_hosts.parent.mkdir(parents=True, exist_ok=True)
            env = {"GIT_SSH_COMMAND": f"{SSH_COMMAND} -i {key} -o IdentitiesOnly=yes "
                                      f"-o StrictHostKeyChecking=accept-new "
                                      f"-o UserKnownHostsFile={known_hosts}"}
        yield GitAuth(env, (secret,))
