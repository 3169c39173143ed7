"""The event table's layout on PostgreSQL: range partitions by day, made ahead of time.

Why by day: retention removes whole days (``DROP TABLE`` of a partition, instant and
without bloat, where a ``DELETE`` of millions of rows is neither), and the queries that
matter (a day of changes outside GitOps, an object's last 30 days) read only the
partitions of their period. A day holds a few hundred thousand rows for a busy fleet;
months would make retention coarse, hours would make thousands of tables.

Partitions are made for the retention period behind and
``FLEET_CLUSTER_AUDIT_PARTITIONS_AHEAD`` days ahead, by the migration and by the hourly
``clusteraudit.maintain`` task. An event outside them (a cluster whose clock is far off, a
file of old logs) lands in the default partition, nothing is refused; when its day's
partition is made later, its rows move in with it (``_attach_with_rows``).

Every function here is a no-op off PostgreSQL: SQLite keeps one plain table.
"""

from __future__ import annotations

import datetime
import logging
import re

from django.conf import settings
from django.db import connection, transaction

logger = logging.getLogger(__name__)

TABLE = "clusteraudit_clusterauditevent"
DEFAULT = f"{TABLE}_default"
_NAME = re.compile(rf"^{TABLE}_p(\d{{8}})$")


def is_partitioned() -> bool:
    return connection.vendor == "postgresql"


def partition_name(day: datetime.date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


def existing() -> dict[datetime.date, str]:
    """The day partitions there are, by day."""
    if not is_partitioned():
        return {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                       "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s", [TABLE])
        names = [row[0] for row in cursor.fetchall()]
    found = {}
    for name in names:
        match = _NAME.match(name)
        if match:
            found[datetime.datetime.strptime(match.group(1), "%Y%m%d").date()] = name
    return found


def _bound(day: datetime.date) -> str:
    return f"{day.isoformat()} 00:00:00+00"


def _attach_with_rows(day: datetime.date) -> int:
    """Make ``day``'s partition, moving in the rows the default partition holds for it.

    PostgreSQL refuses a new partition whose range has rows in the default one, so the
    partition is built apart, filled from the default, and attached, in one transaction.
    Returns the rows moved.
    """
    name, start, end = partition_name(day), _bound(day), _bound(day + datetime.timedelta(days=1))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {DEFAULT} WHERE request_received_at >= %s "
                       f"AND request_received_at < %s", [start, end])
        held = cursor.fetchone()[0]
        if not held:
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {TABLE} "
                           f"FOR VALUES FROM ('{start}') TO ('{end}')")
            return 0
        cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        cursor.execute(f"WITH moved AS (DELETE FROM {DEFAULT} WHERE request_received_at >= %s AND "
                       f"request_received_at < %s RETURNING *) INSERT INTO {name} SELECT * FROM moved", [start, end])
        cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM ('{start}') TO ('{end}')")
        return held


def ensure(today: datetime.date | None = None, *, ahead: int | None = None, behind: int | None = None) -> list[str]:
    """Make the day partitions from ``behind`` days ago to ``ahead`` days on; the names made."""
    if not is_partitioned():
        return []
    today = today or datetime.datetime.now(datetime.UTC).date()
    ahead = settings.FLEET_CLUSTER_AUDIT_PARTITIONS_AHEAD if ahead is None else ahead
    behind = (settings.FLEET_CLUSTER_AUDIT_KEEP_DAYS or 31) if behind is None else behind
    have = existing()
    made = []
    for offset in range(-behind, ahead + 1):
        day = today + datetime.timedelta(days=offset)
        if day in have:
            continue
        moved = _attach_with_rows(day)
        if moved:
            logger.info("cluster audit: partition %s made with %d rows from the default partition", day, moved)
        made.append(partition_name(day))
    return made


def drop_before(cutoff: datetime.datetime) -> tuple[list[str], int]:
    """Drop the day partitions that end at or before ``cutoff``, and delete older rows of the
    default partition; the partitions dropped and the default rows deleted."""
    if not is_partitioned():
        return [], 0
    dropped = []
    with transaction.atomic(), connection.cursor() as cursor:
        for day, name in sorted(existing().items()):
            end = datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time(), datetime.UTC)
            if end <= cutoff:
                cursor.execute(f"DROP TABLE {name}")
                dropped.append(name)
        cursor.execute(f"DELETE FROM {DEFAULT} WHERE request_received_at < %s", [cutoff])
        return dropped, cursor.rowcount


def create_table(schema_editor, model) -> None:
    """Create the event table: partitioned by day on PostgreSQL, plain elsewhere.

    The columns are Django's own definitions of the model's fields (``column_sql``), so the
    partitioned table cannot disagree with the model; only the primary key (which must
    include the partition column) and the default partition are written here.
    """
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.create_model(model)
        return
    columns = ["id bigint GENERATED BY DEFAULT AS IDENTITY"]
    for field in model._meta.local_fields:
        if field.primary_key:
            continue
        definition, params = schema_editor.column_sql(model, field, include_default=False)
        assert not params, field.name
        columns.append(f"{schema_editor.quote_name(field.column)} {definition}")
    cluster = model._meta.get_field("cluster")
    target = cluster.related_model._meta.db_table
    constraint = next(c for c in model._meta.constraints if c.name == "clusteraudit_event_once")
    unique = ", ".join(model._meta.get_field(f).column for f in constraint.fields)
    columns += ["PRIMARY KEY (id, request_received_at)",
                f"CONSTRAINT {constraint.name} UNIQUE ({unique})",
                f"CONSTRAINT {TABLE}_cluster_fk FOREIGN KEY (cluster_id) REFERENCES {target} (id) "
                "DEFERRABLE INITIALLY DEFERRED"]
    schema_editor.execute(f"CREATE TABLE {TABLE} ({', '.join(columns)}) PARTITION BY RANGE (request_received_at)")
    schema_editor.execute(f"CREATE TABLE {DEFAULT} PARTITION OF {TABLE} DEFAULT")
    for index in model._meta.indexes:
        schema_editor.add_index(model, index)


def drop_table(schema_editor, model) -> None:
    schema_editor.delete_model(model)
