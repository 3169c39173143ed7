"""What the benchmarks share: a dedicated PostgreSQL database beside the test one."""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit, urlunsplit


def bench_database_url(suffix: str) -> str:
    """DATABASE_URL with ``suffix`` appended to the database name."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("set DATABASE_URL to PostgreSQL first: eval \"$(scripts/services.sh up)\"")
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path + suffix))


def ensure_database(url: str, *, recreate: bool = False) -> None:
    """Create the database (dropping it first with ``recreate``)."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path[1:]
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        if recreate:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
