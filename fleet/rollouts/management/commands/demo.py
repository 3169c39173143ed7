"""``manage.py demo [--clusters N]``: seed the demo (see fleet.rollouts.demo)."""

from __future__ import annotations

from fleet.core.commands import FleetCommand
from fleet.localfleet.binaries import BinaryError
from fleet.localfleet.fleet import FleetError
from fleet.rollouts import demo


class Command(FleetCommand):
    help = "Start a local fleet, seed repos, clusters and policies, and leave a rollout ready to start."

    def add_command_arguments(self, parser) -> None:
        parser.add_argument("--clusters", type=int, default=3, help="how many local clusters (default 3)")
        parser.add_argument("--author", default="admin", help="the user who authors the demo rollout")

    def handle(self, *args, **options) -> None:
        try:
            rollout = demo.seed(options["clusters"], options["author"], say=self.stdout.write)
        except (BinaryError, FleetError) as exc:
            raise self.fail(str(exc))
        self.stdout.write(self.style.SUCCESS(
            f"demo ready: rollout #{rollout.pk} ({rollout.release}) waits to be started: "
            f"POST /api/v1/rollouts/{rollout.pk}/start/, the admin's 'Start' action, or "
            f"`python manage.py rollout start {rollout.pk}`. Its second wave needs an approval by "
            "another user. Stop the clusters with `python manage.py localfleet down --dir var/localfleet`."))
