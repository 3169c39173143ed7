"""PostgreSQL advisory locks, with every key in one registry so two features never
pick the same number by accident (as NetBox keeps ADVISORY_LOCK_KEYS)."""

from __future__ import annotations

from django.db import connection

ADVISORY_LOCK_KEYS: dict[str, int] = {
    # Serialises appends to the audit hash chain (read last hash, insert next).
    "audit-chain": 7_301_001,
}


def xact_lock(name: str) -> None:
    """Take a transaction-scoped advisory lock; released at commit or rollback.

    SQLite needs none: its settings open every write transaction IMMEDIATE, which
    already serialises writers on the whole database.
    """
    if connection.vendor != "postgresql":
        return
    if not connection.in_atomic_block:
        raise RuntimeError(f"advisory lock {name!r} needs an open transaction")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEYS[name]])
