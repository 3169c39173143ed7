"""``manage.py testrepos DIR [--clusters a,b]``: the demo's vendor repo (releases 1.0, 1.1,
1.2) and an empty internal repo per named cluster (see ``fleet.dev.testrepo``)."""

from __future__ import annotations

from pathlib import Path

from fleet.core.commands import FleetCommand
from fleet.dev.testrepo import create_internal_repo, create_primary_repo


class Command(FleetCommand):
    help = "Create the test/demo vendor repo and empty internal repos in a directory."

    def add_command_arguments(self, parser) -> None:
        parser.add_argument("directory", type=Path)
        parser.add_argument("--clusters", default="", help="comma-separated cluster names")

    def handle(self, *args, **options) -> None:
        directory = options["directory"].resolve()
        if (directory / "platform.git").exists():
            raise self.fail(f"{directory / 'platform.git'} already exists")
        primary = create_primary_repo(directory / "platform.git")
        self.stdout.write(f"vendor repo: {primary.url}")
        for branch, shas in primary.commits.items():
            self.stdout.write(f"  {branch}: {shas[-1]}")
        for name in (c for c in options["clusters"].split(",") if c):
            internal = create_internal_repo(directory / "internal" / f"{name}.git")
            self.stdout.write(f"internal repo: {internal}")
