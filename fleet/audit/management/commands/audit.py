"""``manage.py audit verify``: check the whole hash chain; exit 1 naming the first break."""

from __future__ import annotations

from fleet.audit.services import verify_chain
from fleet.core.commands import FleetCommand


class Command(FleetCommand):
    help = "Audit log tools."

    def add_command_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        sub.add_parser("verify", help="verify the hash chain of every audit event")

    def handle(self, *args, **options) -> None:
        report = verify_chain()
        if not report.ok:
            raise self.fail(f"audit chain BROKEN after {report.checked} good events: {report.reason}")
        self.stdout.write(self.style.SUCCESS(f"audit chain intact: {report.checked} events verified"))
