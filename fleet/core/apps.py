import os

from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _private_sqlite(sender, connection, **kwargs) -> None:
    """The embedded SQLite database holds sessions and password hashes: owner-only (0600),
    with its WAL and shared-memory files, whatever the umask made them."""
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict["NAME"])
    if name == ":memory:" or name.startswith("file:"):
        return
    for path in (name, f"{name}-wal", f"{name}-shm"):
        if os.path.exists(path) and os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)


class CoreConfig(AppConfig):
    name = "fleet.core"
    label = "core"

    def ready(self) -> None:
        connection_created.connect(_private_sqlite, dispatch_uid="fleet-private-sqlite")
