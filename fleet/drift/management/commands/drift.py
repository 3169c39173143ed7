"""``manage.py drift``: scan, show, heal, acknowledge, status, sync-rules.

    drift scan [--selector env=prod]   scan now (all clusters by default), with a progress bar
    drift show CLUSTER [--no-color]    the cluster's drift as a coloured unified diff, as kubectl diff
    drift heal CLUSTER                 heal it now (a heal rollout of its deployed tag)
    drift ack CLUSTER                  acknowledge: a contested cluster may heal again, a frozen one deploy
    drift status [--label ring]        the fleet summary
    drift sync-rules [FILE]            load ignore and mode rules from the rules file (rules as code)
    drift watch [--selector env=prod]  watch the clusters' applied objects; scan a cluster when one drifts
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from django.conf import settings

from fleet.core.commands import FleetCommand
from fleet.drift import services
from fleet.drift import watch as watching
from fleet.drift.choices import Trigger
from fleet.inventory.models import Cluster

COLOURS = {"-": "\033[31m", "+": "\033[32m", "@": "\033[36m"}
RESET = "\033[0m"


class ProgressBar:
    """``[#####.....] 12/40 clusters  drifted 3  unknown 1``, redrawn in place on a
    terminal, a line per tenth otherwise (logs stay readable)."""

    WIDTH = 30

    def __init__(self, total: int, out, tty: bool):
        self.total, self.out, self.tty, self.done, self.states = total, out, tty, 0, {}
        self.started, self._last_tenth = time.monotonic(), -1

    def update(self, state: str) -> None:
        self.done += 1
        self.states[state] = self.states.get(state, 0) + 1
        filled = self.WIDTH * self.done // max(self.total, 1)
        counts = "  ".join(f"{k} {v}" for k, v in sorted(self.states.items()))
        line = (f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total} clusters  {counts}  "
                f"{time.monotonic() - self.started:.1f}s")
        tenth = 10 * self.done // max(self.total, 1)
        if self.tty:
            self.out.write("\r" + line + ("\n" if self.done == self.total else ""))
            self.out.flush()
        elif tenth != self._last_tenth:
            self._last_tenth = tenth
            self.out.write(line + "\n")


class Command(FleetCommand):
    help = "Drift: scan clusters, show a cluster's diff, heal, acknowledge, the fleet summary, rules as code."

    def add_command_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        scan = sub.add_parser("scan", help="scan clusters now")
        scan.add_argument("--selector", default="", help="label selector (default: every cluster)")
        show = sub.add_parser("show", help="a cluster's drift as a unified diff")
        show.add_argument("cluster")
        show.add_argument("--no-color", action="store_true")
        show.add_argument("--json", action="store_true", help="the per-resource diff as JSON")
        for name in ("heal", "ack"):
            sub.add_parser(name, help=f"{name} a cluster").add_argument("cluster")
        status = sub.add_parser("status", help="the fleet summary")
        status.add_argument("--selector", default="")
        status.add_argument("--label", default="")
        watch = sub.add_parser("watch", help="event-driven detection: watch, and scan a cluster when it drifts")
        watch.add_argument("--selector", default="")
        rules = sub.add_parser("sync-rules", help="load the rules file (ignore and mode rules as code)")
        rules.add_argument("file", nargs="?", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, "_" + options["action"].replace("-", "_"))(options)

    def _cluster(self, name: str) -> Cluster:
        cluster = Cluster.objects.filter(name=name).select_related("channel").first()
        if cluster is None:
            raise self.fail(f"no cluster {name!r}")
        return cluster

    def _scan(self, options: dict[str, Any]) -> None:
        total = services.clusters_matching(options["selector"]).count()
        bar = ProgressBar(total, self.stderr, self.stderr.isatty())
        drifts = services.scan(options["selector"], trigger=Trigger.MANUAL, progress=lambda d: bar.update(d.state))
        for drift in sorted(drifts, key=lambda d: d.cluster.name):
            if drift.state != "in_sync":
                self.stdout.write(f"{drift.cluster.name}: {drift.state}"
                                  + (f" ({drift.reason})" if drift.reason else f" {drift.counts}"))
        self.stdout.write(f"{len(drifts)} clusters scanned")

    def _show(self, options: dict[str, Any]) -> None:
        cluster = self._cluster(options["cluster"])
        if options["json"]:
            self.stdout.write(json.dumps(services.cluster_detail(cluster), default=str, indent=2))
            return
        detail = services.cluster_detail(cluster)
        self.stdout.write(f"# {cluster.name}: {detail['state']}" + (f" ({detail['reason']})" if detail["reason"]
                                                                      else "") + f", mode {detail['mode']}")
        colour = not options["no_color"] and sys.stdout.isatty()
        for line in services.unified_diff(cluster).splitlines():
            start = COLOURS.get(line[:1]) if colour and not line.startswith(("---", "+++")) else None
            self.stdout.write(f"{start}{line}{RESET}" if start else line)

    def _heal(self, options: dict[str, Any]) -> None:
        attempt = services.request_heal(self._cluster(options["cluster"]))
        self.stdout.write(f"heal rollout #{attempt.rollout_id} started for {options['cluster']} "
                          f"({len(attempt.refs)} drifted objects)")

    def _ack(self, options: dict[str, Any]) -> None:
        drift = services.acknowledge(self._cluster(options["cluster"]))
        self.stdout.write(f"{drift.cluster.name}: acknowledged by {drift.acknowledged_by}")

    def _status(self, options: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(services.summary(selector=options["selector"], label=options["label"]),
                                     default=str, indent=2))

    def _watch(self, options: dict[str, Any]) -> None:
        clusters = list(services.clusters_matching(options["selector"]))
        self.stderr.write(f"watching {len(clusters)} clusters (Ctrl-C stops)")

        def scanned(cluster: Cluster) -> None:
            drift = services.scan_by_id(cluster.pk, trigger=Trigger.WATCH)
            self.stdout.write(f"{cluster.name}: {drift.state if drift else 'gone'}")

        try:
            watching.run_forever(clusters, scanned)
        except KeyboardInterrupt:
            pass

    def _sync_rules(self, options: dict[str, Any]) -> None:
        path = options["file"] or settings.FLEET_DRIFT_RULES_FILE
        result = services.sync_rules(path)
        self.stdout.write(f"{path}: " + ", ".join(f"{k} {v}" for k, v in result.items()))
