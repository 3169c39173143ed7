"""``manage.py report KIND [--since] [--until] [--selector] [--format json|csv|pdf] [--output FILE]``."""

from __future__ import annotations

import sys
from pathlib import Path

from django.contrib.auth import get_user_model

from fleet.core import context
from fleet.core.commands import FleetCommand
from fleet.core.errors import FleetError
from fleet.reports import services
from fleet.reports.render import FORMATS, render


class Command(FleetCommand):
    help = "Build a report (changes, compliance, access, delivery) as JSON, CSV or PDF."

    def add_command_arguments(self, parser) -> None:
        parser.add_argument("kind", choices=list(services.KINDS))
        parser.add_argument("--since", help="ISO date or time (default: 30 days before --until)")
        parser.add_argument("--until", help="ISO date or time, excluded (default: now)")
        parser.add_argument("--selector", default="", help="label selector on clusters")
        parser.add_argument("--format", default="json", choices=FORMATS)
        parser.add_argument("--table", default="", help="csv: which table (default: the first)")
        parser.add_argument("--group-by", default="", help="delivery: label keys, comma-separated")
        parser.add_argument("--expiring-days", default="", help="compliance: waivers expiring within (14)")
        parser.add_argument("--output", type=Path, help="default: standard output")
        parser.add_argument("--as-user", help="check this user's role (default: the shell user is trusted)")

    def handle(self, *args, **options) -> None:
        user = None
        if options["as_user"]:
            user = get_user_model().objects.filter(username=options["as_user"]).first()
            if user is None:
                raise self.fail(f"no user {options['as_user']!r}")
        params = {name: options[key] for name, key in (("since", "since"), ("until", "until"),
                                                       ("selector", "selector"), ("group_by", "group_by"),
                                                       ("expiring_days", "expiring_days")) if options[key]}
        try:
            report = services.build(options["kind"], params, user=user,
                                    generated_by=user.get_username() if user else context.current().actor_name())
            body = render(report, options["format"], options["table"])
        except FleetError as exc:
            raise self.fail(f"{exc.field}: {exc}" if exc.field else str(exc)) from None
        if options["output"]:
            options["output"].write_bytes(body)
            self.stderr.write(f"wrote {options['output']} ({len(body)} bytes)")
        else:
            sys.stdout.buffer.write(body)
