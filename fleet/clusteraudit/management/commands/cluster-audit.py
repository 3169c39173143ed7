"""``manage.py cluster-audit``: API servers' audit events from the shell.

    cluster-audit import FILE --cluster NAME          JSON lines (--audit-log-path format), all or nothing
    cluster-audit rotate NAME [--grace SECONDS] [--url URL] [--kubeconfig FILE]
                                                      issue or rotate the ingest credential (shown once)
    cluster-audit identity NAME (--username U | --resolve)   who Fleet is on the cluster
    cluster-audit events|outside-gitops [--since] [--until] [--selector] [--cluster] [--user] [--verb]
                  [--resource] [--namespace] [--name] [--changes] [--limit N] [--output table|json]
    cluster-audit top-actors [--since] [--until] [--selector] [--cluster] [--limit N]
    cluster-audit maintain                            partitions ahead, retention (as the hourly task)
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from pathlib import Path

from fleet.clusteraudit import credentials, queries, services
from fleet.clusteraudit.api import EventSerializer  # one shape of an event, in the API and here
from fleet.core.commands import FleetCommand

FILTERS = ("since", "until", "selector", "cluster", "user", "verb", "resource", "namespace", "name")


class Progress:
    """A one-line bar on standard error, redrawn at most ten times a second."""

    def __init__(self, stream, label: str) -> None:
        self.stream, self.label, self.drawn, self.started = stream, label, 0.0, time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.drawn < 0.1 and done < total:
            return
        self.drawn = now
        share = done / total if total else 1.0
        bar = "#" * int(share * 30)
        self.stream.write(f"\r{self.label} [{bar:<30}] {share:4.0%} {done / 1e6:,.1f}/{total / 1e6:,.1f} MB "
                          f"{now - self.started:,.0f}s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


class Command(FleetCommand):
    help = "API servers' audit events: import, credentials, Fleet's identity, queries, upkeep."

    def add_command_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        imp = sub.add_parser("import", help="import a JSON-lines audit log of one cluster")
        imp.add_argument("file", type=Path)
        imp.add_argument("--cluster", required=True)
        rotate = sub.add_parser("rotate", help="issue or rotate a cluster's ingest credential (printed once)")
        rotate.add_argument("name")
        rotate.add_argument("--grace", type=int, default=0, help="seconds the previous secret stays valid")
        rotate.add_argument("--url", default="", help="Fleet's base URL, to write the webhook kubeconfig")
        rotate.add_argument("--kubeconfig", type=Path, help="write the webhook kubeconfig here (0600)")
        identity = sub.add_parser("identity", help="who Fleet is on a cluster")
        identity.add_argument("name")
        group = identity.add_mutually_exclusive_group(required=True)
        group.add_argument("--username")
        group.add_argument("--resolve", action="store_true", help="ask the cluster (SelfSubjectReview)")
        for name in ("events", "outside-gitops", "top-actors"):
            query = sub.add_parser(name)
            for option in FILTERS if name != "top-actors" else FILTERS[:4]:
                query.add_argument(f"--{option}", default="")
            if name != "top-actors":
                query.add_argument("--changes", action="store_true", help="only completed, successful writes")
            query.add_argument("--limit", type=int, default=50)
            query.add_argument("--output", choices=("table", "json"), default="table")
        sub.add_parser("maintain", help="make partitions ahead and apply retention")

    def handle(self, *args, **options) -> None:
        getattr(self, "do_" + options["subcommand"].replace("-", "_"))(options)

    def do_import(self, options) -> None:
        cluster = services.cluster_named(options["cluster"])
        progress = Progress(self.stderr, options["file"].name)
        result = services.import_file(cluster, options["file"], progress=progress)
        self.stdout.write(f"{result.received} events read, {result.stored} stored, {result.duplicates} "
                          "already there")

    def do_rotate(self, options) -> None:
        cluster = services.cluster_named(options["name"])
        source, secret = credentials.issue(cluster, grace=datetime.timedelta(seconds=max(options["grace"], 0)))
        if options["kubeconfig"]:
            if not options["url"]:
                raise self.fail("--kubeconfig needs --url (Fleet's base URL, e.g. https://fleet.example.com)")
            url = f"{options['url'].rstrip('/')}/api/v1/cluster-audit/ingest/{cluster.name}/"
            fd = os.open(options["kubeconfig"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(credentials.webhook_kubeconfig(url, secret))
            self.stderr.write(f"wrote {options['kubeconfig']} for --audit-webhook-config-file")
        valid = f" (the previous one is valid until {source.previous_valid_until:%Y-%m-%d %H:%M} UTC)" if (
            source.previous_valid_until) else ""
        self.stderr.write(f"ingest credential of {cluster.name}{valid}; shown once:")
        self.stdout.write(secret)

    def do_identity(self, options) -> None:
        cluster = services.cluster_named(options["name"])
        if options["resolve"]:
            username = services.resolve_identity(cluster)
        else:
            username = services.set_identity(cluster, options["username"]).fleet_username
        self.stdout.write(f"Fleet is {username} on {cluster.name}")

    def _filter(self, options) -> queries.EventFilter:
        params = {name: options[name] for name in FILTERS if options.get(name)}
        if options.get("changes"):
            params["changes"] = "true"
        return queries.EventFilter.from_params(params)

    def do_events(self, options, found=None) -> None:
        found = found if found is not None else queries.events(None, self._filter(options))
        rows = list(found[: max(options["limit"], 1)])
        if options["output"] == "json":
            json.dump(EventSerializer(rows, many=True).data, sys.stdout, indent=1, default=str)
            sys.stdout.write("\n")
            return
        for e in rows:
            what = "/".join(p for p in (e.namespace, f"{e.resource}{'/' + e.subresource if e.subresource else ''}",
                                        e.name) if p) or e.request_uri
            self.stdout.write(f"{e.request_received_at:%Y-%m-%d %H:%M:%S} {e.cluster.name:<16} {e.username:<28} "
                              f"{e.verb:<8} {what} {e.response_code or ''} "
                              f"{e.field_manager or queries.tool_of(e.user_agent)} {','.join(e.source_ips)}")

    def do_outside_gitops(self, options) -> None:
        self.do_events(options, queries.outside_gitops(None, self._filter(options)))

    def do_top_actors(self, options) -> None:
        found = queries.top_actors(None, self._filter(options), limit=max(options["limit"], 1))
        if options["output"] == "json":
            json.dump([a.as_dict() for a in found], sys.stdout, indent=1)
            sys.stdout.write("\n")
            return
        for a in found:
            self.stdout.write(f"{a.cluster:<16} {a.username:<32} {a.actor:<7} {a.changes:>7} changes, "
                              f"{a.outside_gitops:>7} outside GitOps, last {a.last_at:%Y-%m-%d %H:%M:%S}")

    def do_maintain(self, options) -> None:
        self.stdout.write(services.maintain().summary())
