"""``manage.py localfleet up N | down [--purge] | status | build [name ...]``.

Thin on purpose: all the work is in ``fleet.dev.localfleet`` (and building in
``fleet.toolchain``), which tests and CI call directly. Installed with FLEET_DEV_TOOLS.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fleet.dev.localfleet.fleet import LocalFleet, LocalFleetError
from fleet.toolchain.build import ensure_binaries
from fleet.toolchain.errors import ToolchainError


class Command(BaseCommand):
    help = "Start, stop and inspect a local fleet of real Kubernetes API servers (kwok nodes)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        up = actions.add_parser("up", help="start clusters local-1..local-N (running ones are kept)")
        up.add_argument("count", type=int)
        up.add_argument("--network", action="store_true",
                        help="put each API server behind a Toxiproxy listener (latency, resets: see README)")
        up.add_argument("--register", metavar="CHANNEL",
                        help="also register the clusters in the inventory on this channel")
        up.add_argument("--repos", metavar="DIR",
                        help="with --register: each cluster's internal repo is DIR/<name>.git")
        down = actions.add_parser("down", help="stop every process of the fleet")
        down.add_argument("--purge", action="store_true", help="also delete the state directory")
        actions.add_parser("status", help="list clusters, their processes and readiness")
        build = actions.add_parser("build", help="build the pinned binaries into the cache")
        build.add_argument("names", nargs="*", help="only these (default: all)")
        for sub in (up, down, actions.choices["status"]):
            sub.add_argument(
                "--dir", help="state directory (default: $FLEET_LOCALFLEET_DIR or ~/.cache/fleet/localfleet)"
            )

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            if action == "build":
                for name, path in ensure_binaries(options["names"] or None, progress=self._say).items():
                    self._say(f"{name}: {path}")
                return
            fleet = LocalFleet(options["dir"])
            if action == "up":
                channel = self._channel(options["register"], options["repos"]) if options["register"] else None
                clusters = fleet.up(options["count"], network=options["network"], progress=self._say)
                for cluster in clusters:
                    self._say(f"{cluster.name}: {cluster.server}  KUBECONFIG={cluster.kubeconfig_path}")
                if channel is not None:
                    self._register(clusters, channel, options["repos"])
            elif action == "down":
                fleet.down(purge=options["purge"])
                self._say(
                    f"stopped the fleet in {fleet.state_dir}"
                    + (" and deleted it" if options["purge"] else "")
                )
            else:
                self._status(fleet)
        except (ToolchainError, LocalFleetError) as error:
            raise CommandError(str(error)) from error

    def _channel(self, name: str, repos: str | None):
        """Checked before any cluster starts: a typo must not leave a fleet running."""
        from fleet.inventory.models import Channel

        channel = Channel.objects.filter(name=name).first()
        if channel is None:
            raise CommandError(f"no channel {name!r}: create it first (API or admin)")
        if not repos:
            raise CommandError("--register needs --repos DIR (each cluster's internal repo is DIR/<name>.git)")
        return channel

    def _register(self, clusters, channel, repos: str) -> None:
        from pathlib import Path

        from fleet.core import context
        from fleet.dev.localfleet.register import register

        root = Path(repos).resolve()
        with context.activate(source="cli", actor=context.cli_actor()):
            for cluster in register(clusters, channel=channel, repo_url=lambda name: str(root / f"{name}.git")):
                self._say(f"registered {cluster.name} on channel {channel.name}")

    def _status(self, fleet: LocalFleet) -> None:
        statuses = fleet.status()
        if not statuses:
            self._say(f"no clusters recorded in {fleet.state_dir}")
            return
        self._say(f"etcd: {'running' if fleet.etcd_running() else 'stopped'}")
        for status in statuses:
            stopped = [name for name, running in status.processes.items() if not running]
            if status.ready:
                health = "ready"
            elif not status.processes or len(stopped) == len(status.processes):
                health = "stopped"
            else:
                health = f"NOT ready (stopped: {', '.join(stopped) or 'none'})"
            self._say(
                f"{status.name}: {status.server} {health}, {status.rss_bytes / 2**20:.0f} MiB RSS, "
                f"KUBECONFIG={status.kubeconfig_path}"
            )

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()
