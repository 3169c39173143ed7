"""Git remote URLs: the transports Fleet supports, parsed once, for validation, credential
matching and git's own protocol allow-list.

Supported, and nothing else:

- ``https://host[:port]/path``: no user info, no query, no fragment (a token in a URL,
  ``https://user:token@…`` or ``?private_token=…``, would land in logs, errors, audit
  entries and ``.git/config``: give a repository credential instead). Plain ``http://``
  and ``git://`` are refused: they carry code and tokens in clear.
- ``ssh://[user@]host[:port]/path`` and scp-like ``[user@]host:path``: a user name, never
  a password.
- local repositories (an absolute path or ``file:///path``), only inside a directory of
  ``FLEET_GIT_LOCAL_ROOTS`` (default: ``<FLEET_DATA_DIR>/repos``; empty: none at all),
  so a URL cannot point git at the control plane's own files.

Everything git would read as something else is refused: remote helpers
(``fd::17``, ``ext::sh -c …``), other schemes, options (a host or path starting with
``-``), and control characters. When git runs, ``protocol.allow=never`` with an allow
per supported transport enforces the same list again (``fleet.gitops.git``).
Messages never repeat the URL given, which may hold a secret.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from fleet.core.errors import FleetError

TRANSPORTS = ("https", "ssh", "file")
DEFAULT_PORTS = {"https": 443, "ssh": 22}
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")
_IPV6_RE = re.compile(r"^[0-9A-Fa-f]*:[0-9A-Fa-f:.]*$")  # as urlsplit gives it, without brackets
_SCP_RE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:]+):(?P<path>.*)$")
_HELPER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_CONTROL_RE = re.compile(r"[\x00-\x20\x7f]")


class RepoUrlError(FleetError):
    """A repository URL Fleet will not use; ``code``: ``invalid``, ``transport``,
    ``credentials-inline`` or ``local``."""

    domain = "repourl"
    code = "invalid"


@dataclass(frozen=True)
class RepoUrl:
    """A parsed remote: transport, host (lowercase), effective port, user, path segments."""

    transport: str
    host: str = ""
    port: int | None = None
    user: str = ""
    segments: tuple[str, ...] = ()

    def covers(self, other: RepoUrl) -> bool:
        """Whether this prefix covers ``other``: the same transport, host and port, the same
        user if it names one, and its path segments leading ``other``'s (whole segments)."""
        return (self.transport == other.transport and self.host == other.host and self.port == other.port
                and (not self.user or self.user == other.user)
                and other.segments[:len(self.segments)] == self.segments)


def local_roots() -> list[Path]:
    return [Path(os.path.realpath(root)) for root in settings.FLEET_GIT_LOCAL_ROOTS]


def _segments(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part)


def _host(host: str | None) -> str:
    if not host or not (_HOST_RE.match(host) or _IPV6_RE.match(host)):
        raise RepoUrlError("repository URL has no valid host name")
    return host.lower()


def _local(path: str) -> RepoUrl:
    if not path.startswith("/"):
        raise RepoUrlError("a local repository needs an absolute path")
    real = Path(os.path.realpath(path))
    roots = local_roots()
    if not any(real == root or root in real.parents for root in roots):
        allowed = ", ".join(map(str, roots)) if roots else "none: FLEET_GIT_LOCAL_ROOTS is empty"
        raise RepoUrlError(f"a local repository must be inside FLEET_GIT_LOCAL_ROOTS ({allowed})", code="local")
    return RepoUrl("file", segments=_segments(str(real)))


def parse_repo_url(value: str, *, prefix: bool = False) -> RepoUrl:
    """Parse a remote URL (or, with ``prefix``, the start of one: the path may be empty);
    raise :class:`RepoUrlError` for anything outside the supported transports."""
    if not isinstance(value, str) or not value:
        raise RepoUrlError("repository URL is empty")
    if _HELPER_RE.match(value):
        raise RepoUrlError("repository URL names a git remote helper (transport::address), which Fleet refuses",
                           code="transport")
    if _CONTROL_RE.search(value):
        raise RepoUrlError("repository URL contains whitespace or a control character")
    if value.startswith("-"):
        raise RepoUrlError("repository URL must not start with '-'")
    if value.startswith("/"):
        return _local(value)
    if "://" in value:
        parts = urlsplit(value)
        scheme = parts.scheme.lower()
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise RepoUrlError("a file:// URL must not name a host")
            return _local(parts.path)
        if scheme not in ("https", "ssh"):
            shown = scheme if re.fullmatch(r"[a-z][a-z0-9+.-]{0,15}", scheme) else "this"
            raise RepoUrlError(f"repository URL uses the {shown} transport; Fleet supports https, ssh "
                               "(ssh:// or user@host:path) and local paths inside FLEET_GIT_LOCAL_ROOTS",
                               code="transport")
        if parts.password is not None or (scheme == "https" and parts.username is not None):
            raise RepoUrlError("repository URL must not carry credentials inline; give the repository a "
                               "credential instead", code="credentials-inline")
        if parts.query or parts.fragment or value.endswith(("?", "#")):
            raise RepoUrlError("repository URL must not have a query or fragment (a token in a query, such as "
                               "?private_token=, is a credential: give the repository one instead)",
                               code="credentials-inline" if parts.query else "invalid")
        try:
            port = parts.port
        except ValueError:
            raise RepoUrlError("repository URL has an invalid port") from None
        segments = _segments(parts.path)
        if not segments and not prefix:
            raise RepoUrlError("repository URL has no path")
        return RepoUrl(scheme, _host(parts.hostname), port or DEFAULT_PORTS[scheme], parts.username or "",
                       segments)
    match = _SCP_RE.match(value)
    if match is None:
        raise RepoUrlError("not a repository URL: use https://host/path, ssh://host/path, user@host:path or "
                           "a local path inside FLEET_GIT_LOCAL_ROOTS")
    if ":" in (match.group("user") or "") or "@" in match.group("path"):
        raise RepoUrlError("repository URL must not carry credentials inline", code="credentials-inline")
    path = match.group("path")
    if path.startswith("-") or (not path and not prefix):
        raise RepoUrlError("repository URL has no valid path")
    return RepoUrl("ssh", _host(match.group("host")), DEFAULT_PORTS["ssh"], match.group("user") or "",
                   _segments(path))
