"""``manage.py audit``: verify the chain, export signed bundles, checkpoints, retention, keys.

    audit verify [--anchors] [--checkpoints FILE]   exit 1 naming the first disagreement
    audit export [--since T] [--until T] [--output FILE]
    audit checkpoints [--output FILE]               the signed checkpoints, to keep elsewhere
    audit checkpoint                                sign the head now (as the periodic task does)
    audit archive [--dry-run]                       retention: events older than FLEET_AUDIT_KEEP_DAYS
    audit public-key | audit keygen
"""

from __future__ import annotations

import base64
import secrets
import sys
from pathlib import Path

from django.conf import settings

from fleet.audit import export, retention
from fleet.audit.checkpoints import checkpoint_head
from fleet.audit.keys import public_key, signing_key_id
from fleet.audit.services import verify_and_record
from fleet.audit.verify import read_checkpoints
from fleet.core.commands import FleetCommand
from fleet.core.errors import FleetError
from fleet.reports.anchors import deploy_tag_anchors
from fleet.reports.scope import parse_time
from fleet_audit_verify.signing import public_key_text


class Command(FleetCommand):
    help = "Audit log tools: verify, export, checkpoints, archive, keys."

    def add_command_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        verify = sub.add_parser("verify", help="verify the chain, its checkpoints and archives")
        verify.add_argument("--anchors", action="store_true",
                            help="also check the chain heads recorded in every cluster's deploy tags")
        verify.add_argument("--checkpoints", type=Path, metavar="FILE",
                            help="checkpoints kept outside the database (from `audit checkpoints`)")
        bundle = sub.add_parser("export", help="write a signed bundle of events (JSON lines)")
        bundle.add_argument("--since", help="ISO time or date (default: the first event)")
        bundle.add_argument("--until", help="ISO time or date, exclusive (default: now)")
        bundle.add_argument("--output", type=Path, help="default: standard output")
        listing = sub.add_parser("checkpoints", help="print every signed checkpoint, one JSON per line")
        listing.add_argument("--output", type=Path, help="default: standard output")
        sub.add_parser("checkpoint", help="checkpoint the head now if it moved")
        archive = sub.add_parser("archive", help="archive events older than FLEET_AUDIT_KEEP_DAYS")
        archive.add_argument("--dry-run", action="store_true")
        sub.add_parser("public-key", help="print the public key auditors verify bundles with (PEM)")
        sub.add_parser("keygen", help="print a new signing key for FLEET_AUDIT_SIGNING_KEY")

    def handle(self, *args, **options) -> None:
        try:
            getattr(self, options["subcommand"].replace("-", "_"))(options)
        except FleetError as exc:
            raise self.fail(str(exc)) from None

    def verify(self, options) -> None:
        external = []
        if options["checkpoints"]:
            try:
                external = list(read_checkpoints(options["checkpoints"].read_bytes().splitlines()))
            except (OSError, ValueError) as exc:
                raise self.fail(f"{options['checkpoints']}: {exc}") from None
        anchors, unreachable = deploy_tag_anchors() if options["anchors"] else ([], [])
        for warning in unreachable:
            self.stderr.write(f"warning: {warning}")
        report = verify_and_record(anchors=anchors, checkpoints=external,
                              workers=settings.FLEET_AUDIT_VERIFY_WORKERS)
        if not report.ok:
            raise self.fail(f"audit chain BROKEN after {report.good} good events: {report.reason}")
        self.stdout.write(self.style.SUCCESS(
            f"audit chain intact: {report.checked} events verified ({report.rate:,.0f}/s), "
            f"{report.checkpoints} checkpoints, {report.anchors} anchors"
            + (f", {report.archived} archived before" if report.archived else "")))

    def export(self, options) -> None:
        since = parse_time(options["since"], "since") if options["since"] else None
        until = parse_time(options["until"], "until") if options["until"] else None
        self._write(options["output"], export.bundle(since=since, until=until))

    def checkpoints(self, options) -> None:
        self._write(options["output"], export.checkpoint_lines())

    def _write(self, path: Path | None, chunks) -> None:
        handle = path.open("wb") if path else sys.stdout.buffer
        try:
            for chunk in chunks:
                handle.write(chunk)
        finally:
            if path:
                handle.close()
        if path:
            self.stderr.write(f"wrote {path}")

    def checkpoint(self, options) -> None:
        made = checkpoint_head()
        self.stdout.write(f"signed {made}" if made else "the head is already checkpointed")

    def archive(self, options) -> None:
        result = retention.archive(dry_run=options["dry_run"])
        self.stdout.write(result.summary())

    def public_key(self, options) -> None:
        self.stdout.write(f"# key id {signing_key_id()}\n{public_key_text(public_key())}", ending="")
        if settings.FLEET_AUDIT_SIGNING_KEY_GENERATED:
            self.stderr.write("note: this key was generated into the data directory; in production give "
                              "FLEET_AUDIT_SIGNING_KEY from a secret store the database's owners cannot read")

    def keygen(self, options) -> None:
        self.stdout.write(base64.b64encode(secrets.token_bytes(32)).decode())
