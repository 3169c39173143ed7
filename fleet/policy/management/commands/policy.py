"""``manage.py policy check PATH …`` (the CI gate), ``policy verify SUITE…`` (a team's
policy tests) and ``manage.py policy import NAME DIR``.

``check`` renders PATH (a kustomize directory, plain manifests, or one file) and
judges it, with no cluster access: against the policy sets stored for the cluster
(``--cluster``) or matching ``--labels``, or against a policy directory
(``--policies``, no database needed). ``--inventory FILE`` adds objects to what
Gatekeeper templates see in ``data.inventory`` (the release is always there).
``verify`` runs Gatekeeper suites and ``*_test.rego`` tests (``fleet/policy/verify.py``).
Exit status: 0 allowed (or all passed), 1 denied (or a failure), 2 usage error.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError
from django.db import DatabaseError
from django.utils import timezone

from fleet.core.commands import FleetCommand
from fleet.core.labels import LabelError, parse_selector
from fleet.inventory.models import Cluster
from fleet.policy import gate, reporting, services, verify
from fleet.policy.bundle import read_directory
from fleet.policy.choices import DecisionSource, Mode
from fleet.policy.engines import ENGINES, get_engine
from fleet.policy.errors import PolicyError
from fleet.policy.inputs import build_input, check_objects, release_admission
from fleet.policy.manifests import render_path
from fleet.toolchain.errors import ToolchainError

OUTPUTS = {"human": reporting.human, "json": reporting.as_json, "junit": reporting.junit}


def parse_labels(text: str) -> dict[str, str]:
    """``env=prod,region=eu`` → dict; only equality, as labels are values, not selectors."""
    try:
        selector = parse_selector(text)
    except LabelError as exc:
        raise CommandError(str(exc), returncode=2) from None
    if any(r.operator != "=" for r in selector.requirements):
        raise CommandError("--labels takes key=value pairs separated by commas", returncode=2)
    return {r.key: r.values[0] for r in selector.requirements}


class Command(FleetCommand):
    help = "Judge manifests with the policy gate (check), or store a policy directory as a set (import)."

    def add_command_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        check = sub.add_parser("check", help="evaluate manifests; exit 0 when allowed, 1 when denied")
        check.add_argument("path", type=Path, help="kustomize directory, manifest directory or file")
        who = check.add_mutually_exclusive_group()
        who.add_argument("--cluster", help="judge as for this cluster (its labels select the sets)")
        who.add_argument("--labels", default="", help="cluster labels, e.g. env=prod,region=eu")
        check.add_argument("--policies", type=Path, help="a policy directory instead of the stored sets")
        check.add_argument("--mode", choices=Mode.values, default=Mode.ENFORCE,
                           help="mode for --policies (default enforce)")
        check.add_argument("--deployed", type=Path, help="what runs now (the change input, and oldObject)")
        check.add_argument("--inventory", type=Path, action="append", default=[],
                           help="objects Gatekeeper templates also see in data.inventory (repeatable)")
        check.add_argument("--engine", choices=ENGINES, help="default: FLEET_POLICY_ENGINE")
        check.add_argument("--output", choices=sorted(OUTPUTS), default="human")
        check.add_argument("--no-record", action="store_true", help="do not store a PolicyDecision")
        suites = sub.add_parser("verify", help="run Gatekeeper suites (kind: Suite) and *_test.rego tests")
        suites.add_argument("paths", type=Path, nargs="+", help="suite files, or directories to search")
        suites.add_argument("--engine", choices=ENGINES, help="default: FLEET_POLICY_ENGINE")
        suites.add_argument("--output", choices=("human", "junit"), default="human")
        load = sub.add_parser("import", help="create or update a policy set from a directory")
        load.add_argument("name")
        load.add_argument("directory", type=Path)
        load.add_argument("--selector", default="", help="cluster label selector (default: all)")
        load.add_argument("--mode", choices=Mode.values, default=Mode.ENFORCE)
        load.add_argument("--fail-open", action="store_true")
        load.add_argument("--review-deletes", action="store_true",
                          help="send what an apply prunes to Gatekeeper constraints as DELETE reviews")
        load.add_argument("--description", default="")

    def handle(self, *args, **options) -> None:
        try:
            if options["subcommand"] == "import":
                self.import_set(options)
            elif options["subcommand"] == "verify":
                self.run_verify(options)
            else:
                self.run_check(options)
        except (PolicyError, ToolchainError) as exc:
            raise CommandError(str(exc), returncode=2) from None

    def import_set(self, options) -> None:
        policy_set, created = services.import_policy_set(
            options["name"], options["directory"], selector=options["selector"], mode=options["mode"],
            fail_open=options["fail_open"], description=options["description"],
            review_deletes=options["review_deletes"])
        verb = "created" if created else "updated"
        self.stdout.write(self.style.SUCCESS(
            f"policy set {policy_set.name} {verb}: {len(policy_set.files)} files, "
            f"bundle {policy_set.bundle_hash[:12]}"))

    def run_verify(self, options) -> None:
        results = verify.verify(get_engine(options["engine"], shared_memo=False), options["paths"])
        output = reporting.verify_junit if options["output"] == "junit" else reporting.verify_human
        self.stdout.write(output(results))
        if any(r.error for r in results):
            raise CommandError("some policy tests failed", returncode=1)

    def run_check(self, options) -> None:
        objects = render_path(options["path"])
        deployed = render_path(options["deployed"]) if options["deployed"] else None
        inventory = check_objects([o for path in options["inventory"] for o in render_path(path)], "inventory")
        # With --policies the check needs no database; with policy sets it reads them anyway.
        engine = get_engine(options["engine"], shared_memo=not options["policies"])
        if options["policies"]:
            spec = gate.PolicySetSpec(options["policies"].name, options["mode"], False,
                                      services.bundle_of(read_directory(options["policies"])))
            cluster = {"name": options["cluster"] or "", "labels": parse_labels(options["labels"])}
            data = build_input(objects, cluster=cluster, deployed=deployed,
                               admission=release_admission(objects, inventory))
            verdict = gate.evaluate([spec], data, engine, now=timezone.now())
        else:
            verdict = self.check_stored(objects, deployed, inventory, engine, options)
        self.stdout.write(OUTPUTS[options["output"]](verdict))
        if not verdict.allowed:
            raise CommandError("the policy gate denies these manifests", returncode=1)

    def check_stored(self, objects, deployed, inventory, engine, options) -> gate.Verdict:
        try:
            cluster = None
            if options["cluster"]:
                cluster = Cluster.objects.select_related("channel").filter(name=options["cluster"]).first()
                if cluster is None:
                    raise CommandError(f"no cluster named {options['cluster']!r}", returncode=2)
            verdict, _ = services.evaluate(objects, cluster=cluster, labels=parse_labels(options["labels"]),
                                           deployed=deployed, inventory=inventory, engine=engine,
                                           source=DecisionSource.CLI,
                                           record=not options["no_record"])
        except DatabaseError as exc:
            raise CommandError(f"the policy sets are stored in the database, which is not reachable "
                               f"({exc.__class__.__name__}); use --policies DIR", returncode=2) from None
        return verdict
