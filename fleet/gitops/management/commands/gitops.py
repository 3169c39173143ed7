"""``manage.py gitops test-repos DIR [--clusters a,b]`` (the demo's repositories), and
``status``, ``history``, ``render`` for one cluster."""

from __future__ import annotations

import json
from pathlib import Path

from fleet.core.commands import FleetCommand
from fleet.core.objects import ObjectRef
from fleet.gitops import services
from fleet.gitops.errors import GitOpsError
from fleet.gitops.testrepo import create_internal_repo, create_primary_repo
from fleet.inventory.models import Cluster
from fleet.render.errors import RenderError


class Command(FleetCommand):
    help = "GitOps repositories: generate the test/demo repos, or inspect a cluster's."

    def add_command_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        repos = sub.add_parser("test-repos", help="create the vendor repo and empty internal repos")
        repos.add_argument("directory", type=Path)
        repos.add_argument("--clusters", default="", help="comma-separated cluster names")
        for name, text in (("status", "workspace status against origin and internal"),
                           ("history", "deployments, from the internal repo's tags"),
                           ("render", "render the cluster's workspace; print the hash and objects")):
            sub.add_parser(name, help=text).add_argument("cluster")

    def handle(self, *args, **options) -> None:
        if options["subcommand"] == "test-repos":
            self._test_repos(options["directory"], [c for c in options["clusters"].split(",") if c])
            return
        cluster = Cluster.objects.select_related("channel").filter(name=options["cluster"]).first()
        if cluster is None:
            raise self.fail(f"no cluster named {options['cluster']!r}")
        try:
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
        except (GitOpsError, RenderError) as exc:
            raise self.fail(str(exc)) from None

    def _test_repos(self, directory: Path, clusters: list[str]) -> None:
        directory = directory.resolve()
        if (directory / "platform.git").exists():
            raise self.fail(f"{directory / 'platform.git'} already exists")
        primary = create_primary_repo(directory / "platform.git")
        self.stdout.write(f"vendor repo: {primary.url}")
        for branch, shas in primary.commits.items():
            self.stdout.write(f"  {branch}: {shas[-1]}")
        for name in clusters:
            internal = create_internal_repo(directory / "internal" / f"{name}.git")
            self.stdout.write(f"internal repo: {internal}")
