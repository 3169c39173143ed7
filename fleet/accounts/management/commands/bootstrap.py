"""``manage.py bootstrap``: first-run setup for the embedded default.

Creates the role groups and, when no admin exists, an ``admin`` user whose generated
password is written once to ``FLEET_DATA_DIR/admin-password`` (mode 0600) and printed.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.auth import get_user_model

from fleet.accounts import services
from fleet.accounts.roles import Role
from fleet.core.commands import FleetCommand


class Command(FleetCommand):
    help = "Create the role groups and a first admin user if there is none."

    def handle(self, *args, **options) -> None:
        services.ensure_role_groups()
        password_file = settings.DATA_DIR / "admin-password"
        if get_user_model().objects.filter(is_superuser=True).exists():
            hint = f" (password in {password_file})" if password_file.exists() else ""
            self.stdout.write(f"admin user exists{hint}")
            return
        _, password = services.create_user("admin", Role.ADMIN)
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        self.stdout.write(f"created user 'admin' with password {password} (saved in {password_file})")
