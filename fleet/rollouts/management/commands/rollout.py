"""``manage.py rollout``: create, drive and watch rollouts from the command line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from django.contrib.auth import get_user_model

from fleet.core import jsonload
from fleet.core.commands import FleetCommand
from fleet.inventory.models import Release
from fleet.rollouts import services
from fleet.rollouts.models import Rollout
from fleet.rollouts.progress import rollout_progress
from fleet.rollouts.states import ROLLOUT_FINISHED

BAR = 24


def bar(done: int, total: int) -> str:
    filled = round(BAR * done / total) if total else BAR
    return "█" * filled + "░" * (BAR - filled)


def render(rollout: Rollout) -> list[str]:
    progress = rollout_progress(rollout)
    lines = [f"rollout #{rollout.pk} {rollout.kind} {rollout.release.channel.name} {rollout.release.version}: "
             f"{rollout.state} {progress['percent']}%" + (f" — {rollout.reason}" if rollout.reason else "")]
    for wave in rollout.waves.order_by("index").prefetch_related("deployments__cluster"):
        deployments = list(wave.deployments.all())
        done = sum(d.state not in ("pending", "running") for d in deployments)
        lines.append(f"  wave {wave.index + 1} {wave.name:<12} {bar(done, len(deployments))} "
                     f"{done}/{len(deployments)} {wave.state}")
        for d in deployments:
            detail = f" ({d.step})" if d.state == "running" and d.step else f" — {d.error}" if d.error else ""
            lines.append(f"      {d.cluster.name:<24} {d.state}{detail}")
    return lines


class Command(FleetCommand):
    help = "Create, drive and watch rollouts."

    def add_command_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        create = sub.add_parser("create", help="create a rollout (and optionally start and watch it)")
        create.add_argument("--release", type=int, required=True, help="release id")
        create.add_argument("--selector", default="", help="target label selector")
        group = create.add_mutually_exclusive_group(required=True)
        group.add_argument("--waves", type=Path, help="JSON file with the list of wave specs")
        group.add_argument("--template", help="name of a strategy template")
        create.add_argument("--start", action="store_true")
        create.add_argument("--watch", action="store_true", help="show live progress until it ends")
        create.add_argument("--as-user", required=True, help="the Fleet user who authors the rollout")
        sub.add_parser("list", help="list rollouts")
        for name in ("show", "watch", "start", "pause", "resume", "abort"):
            p = sub.add_parser(name, help=f"{name} a rollout")
            p.add_argument("id", type=int)
        approve = sub.add_parser("approve", help="approve the wave waiting for it")
        approve.add_argument("id", type=int)
        approve.add_argument("--as-user", required=True)
        rollback = sub.add_parser("rollback", help="re-deploy previous tags of a rollout's clusters")
        rollback.add_argument("id", type=int)
        rollback.add_argument("--scope", choices=["failed", "all"], default="failed")
        rollback.add_argument("--as-user", required=True)

    def handle(self, *args, **options) -> None:
        getattr(self, "do_" + options["subcommand"])(options)

    def _user(self, name: str):
        user = get_user_model().objects.filter(username=name).first()
        if user is None:
            raise self.fail(f"no user {name!r}")
        return user

    def _rollout(self, pk: int) -> Rollout:
        rollout = Rollout.objects.select_related("release__channel").filter(pk=pk).first()
        if rollout is None:
            raise self.fail(f"no rollout #{pk}")
        return rollout

    def do_create(self, options) -> None:
        release = Release.objects.select_related("channel").filter(pk=options["release"]).first()
        if release is None:
            raise self.fail(f"no release #{options['release']}")
        waves = None
        if options["waves"]:
            try:
                waves = jsonload.loads(options["waves"].read_text(), source=str(options["waves"]))
            except OSError as exc:
                raise self.fail(f"{options['waves']}: {exc.strerror}") from None
        request = services.RolloutRequest(release=release, selector=options["selector"], waves=waves,
                                          template=options["template"] or "")
        rollout = services.create_rollout(request, self._user(options["as_user"]))
        self.stdout.write(f"created rollout #{rollout.pk}")
        if options["start"]:
            services.start(rollout)
        if options["watch"]:
            self.watch(rollout.pk)

    def do_list(self, options) -> None:
        for rollout in Rollout.objects.select_related("release__channel")[:50]:
            self.stdout.write(render(rollout)[0])

    def do_show(self, options) -> None:
        self.stdout.write("\n".join(render(self._rollout(options["id"]))))

    def do_watch(self, options) -> None:
        self.watch(options["id"])

    def watch(self, pk: int, interval: float = 1.0) -> None:
        """Redraw in place on a terminal; print only changes otherwise (logs, CI)."""
        tty, previous, drawn = sys.stdout.isatty(), None, 0
        while True:
            rollout = self._rollout(pk)
            lines = render(rollout)
            if lines != previous:
                if tty and drawn:
                    self.stdout.write(f"\x1b[{drawn}F\x1b[J", ending="")
                self.stdout.write("\n".join(lines))
                drawn, previous = len(lines), lines
            if rollout.state in ROLLOUT_FINISHED:
                return
            time.sleep(interval)

    def do_start(self, options) -> None:
        services.start(self._rollout(options["id"]))
        self.stdout.write("started")

    def do_pause(self, options) -> None:
        services.pause(self._rollout(options["id"]))
        self.stdout.write("paused: clusters in flight finish, no new ones start")

    def do_resume(self, options) -> None:
        services.resume(self._rollout(options["id"]))
        self.stdout.write("resumed")

    def do_abort(self, options) -> None:
        services.abort(self._rollout(options["id"]))
        self.stdout.write("aborting: nothing new starts; clusters in flight finish or are cancelled")

    def do_approve(self, options) -> None:
        wave = services.approve(self._rollout(options["id"]), self._user(options["as_user"]))
        self.stdout.write(f"approved wave {wave.index + 1} ({wave.name})")

    def do_rollback(self, options) -> None:
        created = services.rollback(self._rollout(options["id"]), self._user(options["as_user"]),
                                   scope=options["scope"])
        services.start(created)
        self.stdout.write(f"started rollback rollout #{created.pk}")
