"""What the benchmarks share: a dedicated PostgreSQL database beside the test one, set up."""

from __future__ import annotations

import os
import sys
from pathlib import Path
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


def bench_environment(suffix: str, tmp: Path, **extra: str) -> dict[str, str]:
    """Point Django at a fresh benchmark database and at directories under ``tmp``, set it
    up and migrate; returns the environment (for processes a benchmark starts)."""
    from cryptography.fernet import Fernet

    env = {"DATABASE_URL": bench_database_url(suffix), "FLEET_DATA_DIR": str(tmp / "data"),
           "FLEET_WORKSPACE_DIR": str(tmp / "workspaces"), "DJANGO_SETTINGS_MODULE": "fleet.settings",
           "FLEET_CREDENTIALS_KEYS": Fernet.generate_key().decode(), "FLEET_GIT_LOCAL_ROOTS": str(tmp), **extra}
    os.environ.update(env)
    (tmp / "data").mkdir(exist_ok=True)
    ensure_database(env["DATABASE_URL"], recreate=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env
