"""``manage.py inventory sync [--dry-run] [--prune] [--dir DIR]``."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import transaction

from fleet.core.commands import FleetCommand
from fleet.inventory.sync import SyncError, apply_sync, plan_sync


class Command(FleetCommand):
    help = "Make the inventory match the clusters-as-code files (all or nothing)."

    def add_command_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        sync = sub.add_parser("sync", help="show the diff, then create/update clusters to match")
        sync.add_argument("--dir", type=Path, default=None,
                          help="directory of cluster files (default: FLEET_CLUSTERS_DIR)")
        sync.add_argument("--dry-run", action="store_true", help="show the diff, change nothing")
        sync.add_argument("--prune", action="store_true",
                          help="delete clusters whose file is gone (only clusters that came from files)")
        sync.add_argument("--adopt", action="store_true",
                          help="let files manage clusters of the same name created through the API or admin")

    def handle(self, *args, **options) -> None:
        directory = options["dir"] or settings.FLEET_CLUSTERS_DIR
        try:
            with transaction.atomic():
                plan = plan_sync(directory, prune=options["prune"], adopt=options["adopt"])
                for line in plan.lines():
                    self.stdout.write(line)
                if options["dry_run"]:
                    self.stdout.write("dry run: nothing changed")
                    return
                counts = apply_sync(plan)
        except SyncError as exc:
            for problem in exc.problems:
                self.stderr.write(f"error: {problem}")
            raise self.fail(f"{len(exc.problems)} problem(s) in {directory}; the inventory is unchanged") from None
        self.stdout.write(self.style.SUCCESS(
            f"applied: {counts['create']} created, {counts['update']} updated, {counts['delete']} deleted"))
