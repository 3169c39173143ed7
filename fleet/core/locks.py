"""PostgreSQL advisory locks, with every key in one registry so two features never
pick the same number by accident (as NetBox keeps ADVISORY_LOCK_KEYS)."""

from __future__ import annotations

from django.db import connection

ADVISORY_LOCK_KEYS: dict[str, int] = {
    # Serialises appends to the audit hash chain (read last hash, insert next).
    "audit-chain": 7_301_001,
    # One render per content at a time across workers (the second key is the content's).
    "render-cache": 7_301_002,
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


def try_xact_lock(name: str, subkey: int) -> bool:
    """Try to take the transaction-scoped advisory lock ``(name, subkey)`` (``subkey`` a
    signed 32-bit number); whether it was taken. Never waits, so a caller bounds its own
    wait and can never deadlock on it. SQLite: always taken (see :func:`xact_lock`)."""
    if connection.vendor != "postgresql":
        return True
    if not connection.in_atomic_block:
        raise RuntimeError(f"advisory lock {name!r} needs an open transaction")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [ADVISORY_LOCK_KEYS[name], subkey])
        return bool(cursor.fetchone()[0])
