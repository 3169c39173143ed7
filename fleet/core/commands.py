"""Base for Fleet's management commands: a context (source ``cli``) around
every run, and a clean one-line error instead of a traceback for user mistakes."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from fleet.core import context


class FleetCommand(BaseCommand):
    def add_arguments(self, parser) -> None:
        parser.add_argument("--actor", help="who is acting, for the audit log (default: cli:<OS user>)")
        self.add_command_arguments(parser)

    def add_command_arguments(self, parser) -> None:
        """Subclasses add their own arguments here."""

    def execute(self, *args: Any, **options: Any) -> str | None:
        with context.activate(source="cli", actor=context.cli_actor(options.get("actor"))):
            return super().execute(*args, **options)

    def fail(self, message: str, code: int = 1) -> CommandError:
        return CommandError(message, returncode=code)
