"""``manage.py gitops status|history|render CLUSTER``: one cluster's repository.

The demo's test repositories are made by the dev tooling's ``manage.py testrepos``."""

from __future__ import annotations

import json

from fleet.core.commands import FleetCommand
from fleet.core.objects import ObjectRef
from fleet.gitops import services
from fleet.inventory.models import Cluster


class Command(FleetCommand):
    help = "GitOps repositories: inspect a cluster's."

    def add_command_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        for name, text in (("status", "workspace status against origin and internal"),
                           ("history", "deployments, from the internal repo's tags"),
                           ("render", "render the cluster's workspace; print the hash and objects")):
            sub.add_parser(name, help=text).add_argument("cluster")

    def handle(self, *args, **options) -> None:
        cluster = Cluster.objects.select_related("channel").filter(name=options["cluster"]).first()
        if cluster is None:
            raise self.fail(f"no cluster named {options['cluster']!r}")
        if options["subcommand"] == "status":
            self.stdout.write(json.dumps(services.status(cluster).as_dict(), indent=2))
        elif options["subcommand"] == "history":
            for record in services.history(cluster):
                self.stdout.write(f"{record.tag}  {record.local_sha[:12]}  {record.upstream_branch}"
                                  f"@{record.upstream_sha[:12]}  {json.dumps(record.context)}")
        else:
            result = services.render(cluster)
            self.stdout.write(f"{result.content_hash} ({len(result.objects)} objects, {result.renderer})")
            for obj in result.objects:
                self.stdout.write(f"  {ObjectRef.of(obj)}")
