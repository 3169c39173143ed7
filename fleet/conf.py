"""Settings read from the environment, validated all at once.

Every variable is read through :class:`Env`, which records one clear line per bad
value instead of failing on the first, so an operator fixes a broken deployment in
one pass. Nothing here imports Django: ``manage.py`` and the WSGI entry point call
:func:`report_and_exit` before Django starts to print those lines without a traceback.
"""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(Exception):
    """Raised with every bad variable; ``lines`` holds one message per variable."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("invalid configuration:\n" + "\n".join(f"  {line}" for line in lines))


@dataclass
class Env:
    """Reads typed variables from a mapping and collects the errors."""

    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    errors: list[str] = field(default_factory=list)

    def _get(self, name: str, default: T, parse: Callable[[str], T], expected: str) -> T:
        raw = self.environ.get(name)
        if raw is None:
            return default
        try:
            return parse(raw.strip())
        except ValueError as exc:
            detail = f" ({exc})" if str(exc) else ""
            self.errors.append(f"{name}={raw!r}: expected {expected}{detail}")
            return default

    def str(self, name: str, default: str = "") -> str:
        return self._get(name, default, str, "a string")

    def bool(self, name: str, default: bool = False) -> bool:
        def parse(raw: str) -> bool:
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise ValueError("")

        return self._get(name, default, parse, "one of true/false/1/0/yes/no")

    def int(self, name: str, default: int, *, minimum: int = 0) -> int:
        def parse(raw: str) -> int:
            value = int(raw)
            if value < minimum:
                raise ValueError(f"must be at least {minimum}")
            return value

        return self._get(name, default, parse, "an integer")

    def list(self, name: str, default: list[str]) -> list[str]:
        return self._get(name, default, lambda raw: [p.strip() for p in raw.split(",") if p.strip()],
                         "a comma-separated list")

    def path(self, name: str, default: Path) -> Path:
        return self._get(name, default, lambda raw: Path(raw).expanduser().resolve(), "a path")

    def key(self, name: str, size: int) -> str:
        """A key given as base64 of exactly ``size`` bytes ("" when unset)."""
        def parse(raw: str) -> str:
            try:
                decoded = base64.b64decode(raw, validate=True)
            except ValueError:
                raise ValueError("not base64") from None
            if len(decoded) != size:
                raise ValueError(f"{len(decoded)} bytes, not {size}")
            return raw

        return self._get(name, "", parse, f"the base64 of {size} bytes")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        def parse(raw: str) -> str:
            if raw.lower() not in choices:
                raise ValueError("")
            return raw.lower()

        return self._get(name, default, parse, "one of " + ", ".join(choices))

    def database(self, name: str, default_sqlite: Path) -> dict:
        def parse(raw: str) -> dict:
            return parse_database_url(raw)

        return self._get(
            name,
            sqlite_database(default_sqlite),
            parse,
            "postgres://user:password@host:port/name or sqlite:///path",
        )

    def broker(self, name: str, default: str) -> str:
        def parse(raw: str) -> str:
            scheme = urlsplit(raw).scheme
            if scheme not in {"redis", "rediss", "amqp", "amqps", "filesystem", "memory", "sqla+sqlite",
                              "sqla+postgresql"}:
                raise ValueError(f"unsupported scheme {scheme!r}")
            return raw

        return self._get(name, default, parse, "redis://host:port/db, amqp://… or filesystem://")

    def check(self) -> None:
        if self.errors:
            raise ConfigError(self.errors)


def sqlite_database(path: Path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        # IMMEDIATE makes every write transaction take the database lock up front, so
        # read-then-append sequences (the audit hash chain) are serialised on SQLite too.
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20,
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
    }


def parse_database_url(url: str) -> dict:
    """Turn ``postgres://…`` or ``sqlite:///…`` into a Django DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # As SQLAlchemy reads it: sqlite:///relative/path, sqlite:////absolute/path.
        path = unquote(parts.path)[1:]
        if not path:
            raise ValueError("sqlite URL needs a file path")
        return sqlite_database(Path(path).resolve())
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ValueError(f"unsupported scheme {parts.scheme!r}")
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ValueError("missing database name")
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    host = unquote(parts.hostname or "") if parts.hostname else ""
    if "host" in options:  # a socket directory, as libpq accepts it
        host = options.pop("host")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": options,
    }


def report_and_exit(exc: ConfigError) -> None:
    """Print one line per bad variable and exit; used by entry points, never a traceback."""
    print("Fleet cannot start, the configuration is invalid:", file=sys.stderr)
    for line in exc.lines:
        print(f"  - {line}", file=sys.stderr)
    raise SystemExit(2)


def persistent_secret(path: Path, generate: Callable[[], str]) -> str:
    """Read a generated secret from ``path``, creating it (mode 0600) on first use.

    The embedded default must start with no configuration at all, yet keep the same
    keys across restarts (sessions, encrypted credentials); several processes may
    start at once, so creation is exclusive and the loser reads the winner's file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(generate())
    return path.read_text().strip()
