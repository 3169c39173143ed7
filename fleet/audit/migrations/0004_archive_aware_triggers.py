"""Triggers: checkpoints and archives are append-only too; events stay append-only
except that retention may delete those an archive already holds.

The deletion rule lives in the database, not only in the code: a DELETE of an event
whose sequence is above the last archived one is refused whoever issues it.
"""

from django.db import migrations

POSTGRES_UP = """
CREATE OR REPLACE FUNCTION fleet_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_auditevent' THEN
        IF OLD.sequence <= (SELECT COALESCE(MAX(last_sequence), 0) FROM audit_auditarchive) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_checkpoint_append_only
    BEFORE UPDATE OR DELETE ON audit_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION fleet_audit_append_only();
CREATE TRIGGER audit_archive_append_only
    BEFORE UPDATE OR DELETE ON audit_auditarchive
    FOR EACH ROW EXECUTE FUNCTION fleet_audit_append_only();
"""
POSTGRES_DOWN = """
DROP TRIGGER IF EXISTS audit_checkpoint_append_only ON audit_auditcheckpoint;
DROP TRIGGER IF EXISTS audit_archive_append_only ON audit_auditarchive;
CREATE OR REPLACE FUNCTION fleet_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""
_REFUSE = "BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"
SQLITE_UP = [
    "DROP TRIGGER IF EXISTS audit_event_no_delete",
    """CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_auditevent
       WHEN OLD.sequence > (SELECT COALESCE(MAX(last_sequence), 0) FROM audit_auditarchive)
       """ + _REFUSE.format(table="audit_auditevent", op="DELETE"),
    *(f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} " + _REFUSE.format(table=table, op=op)
      for table in ("audit_auditcheckpoint", "audit_auditarchive") for op in ("UPDATE", "DELETE")),
]
SQLITE_DOWN = [
    *(f"DROP TRIGGER IF EXISTS {table}_no_{op.lower()}"
      for table in ("audit_auditcheckpoint", "audit_auditarchive") for op in ("UPDATE", "DELETE")),
    "DROP TRIGGER IF EXISTS audit_event_no_delete",
    """CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_auditevent
       BEGIN SELECT RAISE(ABORT, 'audit events are append-only: DELETE refused'); END""",
]


def _run(statements: dict[str, list[str]]):
    def apply(apps, schema_editor):
        for sql in statements.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql, params=None)

    return apply


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_checkpoints_archives")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": [POSTGRES_UP], "sqlite": SQLITE_UP}),
            _run({"postgresql": [POSTGRES_DOWN], "sqlite": SQLITE_DOWN}),
        )
    ]
