"""``manage.py demo [--clusters N]``: seed the demo (see fleet.dev.demo)."""

from __future__ import annotations

from fleet.core.commands import FleetCommand
from fleet.dev import demo
from fleet.dev.localfleet.fleet import LocalFleetError
from fleet.toolchain.errors import ToolchainError


class Command(FleetCommand):
    help = "Start a local fleet, seed repos, clusters and policies, and leave a rollout ready to start."

    def add_command_arguments(self, parser) -> None:
        parser.add_argument("--clusters", type=int, default=3, help="how many local clusters (default 3)")
        parser.add_argument("--author", default="admin", help="the user who authors the demo rollout")

    def handle(self, *args, **options) -> None:
        try:
            rollout = demo.seed(options["clusters"], options["author"], say=self.stdout.write)
        except (ToolchainError, LocalFleetError) as exc:
            raise self.fail(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(
            f"demo ready: rollout #{rollout.pk} ({rollout.release}) waits to be started: "
            f"POST /api/v1/rollouts/{rollout.pk}/start/, the admin's 'Start' action, or "
            f"`python manage.py rollout start {rollout.pk}`. Its second wave needs an approval by "
            "another user. Stop the clusters with "
            f"`FLEET_DEV_TOOLS=true python manage.py localfleet down --dir {demo.local_fleet().state_dir}`."))
