"""Base for Fleet's management commands: a context (source ``cli``) around every run,
and a clean one-line error instead of a traceback for any Fleet error, as the API's
exception handler answers one for any request: commands need no try/except of their own
for the errors the services raise."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from fleet.core import context
from fleet.core.errors import FleetError


class FleetCommand(BaseCommand):
    #: The exit status of a run that a FleetError stopped.
    error_returncode = 1

    def add_arguments(self, parser) -> None:
        parser.add_argument("--actor", help="who is acting, for the audit log (default: cli:<OS user>)")
        self.add_command_arguments(parser)

    def add_command_arguments(self, parser) -> None:
        """Subclasses add their own arguments here."""

    def execute(self, *args: Any, **options: Any) -> str | None:
        with context.activate(source="cli", actor=context.cli_actor(options.get("actor"))):
            try:
                return super().execute(*args, **options)
            except FleetError as exc:
                raise CommandError(str(exc), returncode=self.error_returncode) from None

    def fail(self, message: str, code: int = 1) -> CommandError:
        return CommandError(message, returncode=code)
