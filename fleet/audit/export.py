"""Export bundles (``fleet_audit_verify.bundle``), written as a stream.

Memory stays flat whatever the range: events are read from the database cursor in
batches and written out line by line; only the checkpoints of the range (one per
``FLEET_AUDIT_CHECKPOINT_EVERY`` events) are held, because the header announces them.
The range is fixed when the export starts: events appended meanwhile are not in it.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.utils import timezone

from fleet.audit.keys import signing_key, signing_key_id
from fleet.audit.models import AuditCheckpoint, AuditEvent
from fleet.audit.verify import event_fields, rows
from fleet.core import context
from fleet_audit_verify.bundle import FORMAT
from fleet_audit_verify.signing import sign

CHUNK = 256 * 1024


def _line(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) + b"\n"


def sequence_range(since: datetime.datetime | None, until: datetime.datetime | None,
                   last: int | None = None) -> tuple[int, int] | None:
    """The events recorded in ``[since, until)`` (and up to ``last``) as a sequence range."""
    events = AuditEvent.objects.all()
    if since is not None:
        events = events.filter(timestamp__gte=since)
    if until is not None:
        events = events.filter(timestamp__lt=until)
    if last is not None:
        events = events.filter(sequence__lte=last)
    first = events.order_by("sequence").values_list("sequence", flat=True).first()
    end = events.order_by("-sequence").values_list("sequence", flat=True).first()
    return (first, end) if first is not None and end is not None else None


def bundle(*, since: datetime.datetime | None = None, until: datetime.datetime | None = None,
           last: int | None = None) -> Iterator[bytes]:
    """The signed bundle of the events in the range, in chunks of bytes."""
    span = sequence_range(since, until, last)
    first, end = span if span else (None, None)
    first_prev = (AuditEvent.objects.filter(sequence=first).values_list("prev_hash", flat=True).first()
                  if first is not None else None)
    checkpoints = ({c.sequence: c.statement() for c in AuditCheckpoint.objects.filter(
        sequence__gte=first, sequence__lte=end).order_by("sequence")} if span else {})
    now = timezone.now().isoformat()
    header = {"kind": "header", "format": FORMAT, "created_at": now, "created_by": context.current().actor_name(),
              "key_id": signing_key_id(),
              "range": {"since": since.isoformat() if since else None, "until": until.isoformat() if until else None},
              "first_sequence": first, "last_sequence": end, "count": end - first + 1 if span else 0,
              "first_prev_hash": first_prev, "checkpoints": sorted(checkpoints),
              "checkpoint_every": settings.FLEET_AUDIT_CHECKPOINT_EVERY}
    digest = hashlib.sha256()
    buffer = bytearray(_line(header))
    count, seen, first_hash, last_hash = 0, [], None, None
    for row in rows(first, end) if span else ():
        fields = event_fields(row)
        buffer += _line({"kind": "event", **fields})
        count += 1
        if not seen:
            seen, first_hash = [fields["sequence"]], fields["hash"]
        last_seen, last_hash = fields["sequence"], fields["hash"]
        if fields["sequence"] in checkpoints:
            buffer += _line({"kind": "checkpoint", "checkpoint": checkpoints[fields["sequence"]]})
        if len(buffer) >= CHUNK:
            digest.update(buffer)
            yield bytes(buffer)
            buffer.clear()
    digest.update(buffer)
    yield bytes(buffer)
    manifest = {"kind": "manifest", "format": FORMAT, "created_at": now, "key_id": signing_key_id(),
                "first_sequence": seen[0] if seen else None, "last_sequence": last_seen if seen else None,
                "count": count, "first_prev_hash": first_prev, "first_hash": first_hash, "last_hash": last_hash,
                "checkpoints": [{"sequence": s, "hash": c["hash"]} for s, c in sorted(checkpoints.items())],
                "lines_sha256": digest.hexdigest()}
    manifest["signature"] = sign(signing_key(), manifest)
    yield _line(manifest)


def write(path: Path, chunks: Iterator[bytes]) -> str:
    """Write a bundle to ``path`` durably (whole or not at all) and return its SHA-256."""
    digest = hashlib.sha256()
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        for chunk in chunks:
            digest.update(chunk)
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    return digest.hexdigest()


def checkpoint_lines() -> Iterator[bytes]:
    """Every stored checkpoint, one signed statement per line, to keep outside the database."""
    for checkpoint in AuditCheckpoint.objects.order_by("sequence").iterator(chunk_size=2000):
        yield _line(checkpoint.statement())
