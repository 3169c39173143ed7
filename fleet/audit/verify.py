"""Verifying the chain in the database: every event, every checkpoint, the archives,
and (given them) the anchors the deploy tags recorded; naming the first disagreement.

Speed matters (an auditor runs it over years of events, the hourly task over all of
them): events are streamed in batches straight from the database cursor (no model
instances), and each hash is recomputed with orjson, which writes the same canonical
bytes as ``json.dumps`` for what Fleet records. Where it does not (exotic numbers),
a mismatch is re-checked with the reference encoding before anything is reported,
so the fast path can cost time but never a false alarm.

What each check catches is in ``fleet_audit_verify.chain``; here are the parts only
the database has: a tail cut after the last checkpoint or anchor (they name an event
beyond the chain's end), archives that do not link up, and anchors from git.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import multiprocessing
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg
from django.conf import settings
from django.db import connection, connections

from fleet.audit.keys import trusted_keys
from fleet.audit.models import AuditArchive, AuditCheckpoint, AuditEvent
from fleet_audit_verify.canonical import GENESIS_HASH, event_hash
from fleet_audit_verify.chain import ChainWalker, Problem
from fleet_audit_verify.signing import check

BATCH = 5000
MIN_SEGMENT = 100_000  # events per worker below which forking costs more than it saves
COLUMNS = ("sequence", "timestamp", "actor", "source", "action", "target_type", "target_id", "target_repr",
            "cluster", "before", "after", "request_id", "metadata", "prev_hash", "hash")
_JSON = frozenset({"before", "after", "metadata"})
_SORT = orjson.OPT_SORT_KEYS


@dataclass(frozen=True)
class Anchor:
    """Something kept outside the database that says event ``sequence`` had ``hash``."""

    sequence: int
    hash: str
    source: str  # for people: "deploy tag deploy/2026-01-02/release-1.1 of edge-1"

    @classmethod
    def parse(cls, text: str, source: str) -> Anchor | None:
        """``<sequence>:<hash>`` as deploy tags record it; None when absent or malformed."""
        sequence, _, digest = text.partition(":")
        if not sequence.isdigit() or len(digest) != 64:
            return None
        return cls(int(sequence), digest, source)


@dataclass
class ChainReport:
    ok: bool
    checked: int
    problem: Problem | None = None
    head: dict[str, Any] = field(default_factory=dict)
    checkpoints: int = 0
    anchors: int = 0
    archived: int = 0
    elapsed: float = 0.0
    good: int = 0  # events before the first problem

    @property
    def first_broken(self) -> int | None:
        return self.problem.sequence if self.problem else None

    @property
    def reason(self) -> str:
        return str(self.problem) if self.problem else ""


    @property
    def rate(self) -> float:
        return self.checked / self.elapsed if self.elapsed else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "first_broken_sequence": self.first_broken,
                "reason": self.reason, "head": self.head, "checkpoints": self.checkpoints,
                "anchors": self.anchors, "archived_events": self.archived,
                "events_per_second": round(self.rate)}


def _iso(value: datetime.datetime | str) -> str:
    """The timestamp as hashed; SQLite hands back naive UTC (as text or a datetime)."""
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return (value if value.tzinfo else value.replace(tzinfo=datetime.UTC)).isoformat()


def _content_ok(row: tuple) -> bool:
    """Does the row's content hash to its stored hash? Fast path, then the reference one."""
    (sequence, timestamp, actor, source, action, target_type, target_id, target_repr, cluster, before, after,
     request_id, metadata, prev_hash, stored) = row
    timestamp = _iso(timestamp)
    try:
        payload = {"action": action, "actor": actor, "after": None if after is None else orjson.loads(after),
                   "before": None if before is None else orjson.loads(before), "cluster": cluster,
                   "metadata": None if metadata is None else orjson.loads(metadata), "prev_hash": prev_hash,
                   "request_id": request_id, "sequence": sequence, "source": source, "target_id": target_id,
                   "target_repr": target_repr, "target_type": target_type, "timestamp": timestamp}
        if hashlib.sha256(orjson.dumps(payload, option=_SORT)).hexdigest() == stored:
            return True
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        pass
    fields = dict(zip(COLUMNS, row, strict=True))
    fields["timestamp"] = timestamp
    for name in _JSON:
        fields[name] = None if fields[name] is None else json.loads(fields[name])
    return event_hash(fields) == stored  # the reference encoding decides


def rows(first: int, last: int | None = None) -> Iterator[tuple]:
    """The events from ``first`` (to ``last``) in order, as raw tuples of ``COLUMNS``
    (JSON as text, so it is parsed once, by the caller)."""
    where = "sequence >= %s" + ("" if last is None else " AND sequence <= %s")
    params = [first] if last is None else [first, last]
    if connection.vendor == "postgresql":
        select = ", ".join(f"{c}::text" if c in _JSON else c for c in COLUMNS)
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:  # psycopg's own: stream() overlaps server and client
            # psycopg's C loader for timestamps, not Django's Python one: six times faster, same UTC values.
            oid = psycopg.adapters.types["timestamptz"].oid
            cursor.adapters.register_loader(oid, psycopg.adapters.get_loader(oid, psycopg.pq.Format.TEXT))
            yield from cursor.stream(f"SELECT {select} FROM audit_auditevent WHERE {where} ORDER BY sequence",
                                     params, size=BATCH)
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM audit_auditevent WHERE {where} ORDER BY sequence",
                       params)
        while batch := cursor.fetchmany(BATCH):
            yield from batch


def event_fields(row: tuple) -> dict[str, Any]:
    """A raw row as the hashed fields (and ``hash``), as bundles carry an event."""
    fields = dict(zip(COLUMNS, row, strict=True))
    fields["timestamp"] = _iso(fields["timestamp"])
    for name in _JSON:
        fields[name] = None if fields[name] is None else orjson.loads(fields[name])
    return fields


def _manifest_of(path: Path) -> dict[str, Any]:
    """A bundle's manifest: its last line (read from the end, not the whole file)."""
    with path.open("rb") as handle:
        handle.seek(max(path.stat().st_size - 256 * 1024, 0))
        tail = handle.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        manifest = json.loads(tail)
    except ValueError:
        return {}
    return manifest if isinstance(manifest, dict) and manifest.get("kind") == "manifest" else {}


def _archive_problem(keys: dict, archive: AuditArchive) -> str:
    """Does the archive's bundle exist, and does its signed manifest say what the row says?"""
    path = Path(archive.path)
    if not path.is_file():
        return f"its bundle {path} is missing"
    manifest = _manifest_of(path)
    why = check(keys, manifest) if manifest else "has no manifest"
    if why:
        return f"its bundle's manifest {why}"
    expected = {"first_sequence": archive.first_sequence, "last_sequence": archive.last_sequence,
                "first_prev_hash": archive.first_prev_hash, "last_hash": archive.last_hash}
    wrong = [name for name, value in expected.items() if manifest.get(name) != value]
    return f"the row's {', '.join(wrong)} differ from its signed bundle: the row was altered" if wrong else ""


def _archive_start(keys: dict, archives: list[AuditArchive]) -> tuple[int, str, list[Problem]]:
    """Where the events in the database must start, and whether the archives link up."""
    problems, sequence, prev_hash = [], 1, GENESIS_HASH
    for archive in archives:
        if archive.first_sequence != sequence or archive.first_prev_hash != prev_hash:
            problems.append(Problem(archive.first_sequence, 0, f"{archive} does not follow #{sequence - 1}: "
                                    "the archives do not link up"))
        elif why := _archive_problem(keys, archive):
            problems.append(Problem(archive.first_sequence, 0, f"{archive}: {why}"))
        sequence, prev_hash = archive.last_sequence + 1, archive.last_hash
    return sequence, prev_hash, problems


def _archived_checkpoint(keys: dict, statement: dict[str, Any], archives: dict[int, str]) -> Problem | None:
    """A checkpoint of an archived event: its signature, and its hash where an archive ends."""
    why = check(keys, statement)
    sequence = statement["sequence"]
    if why:
        return Problem(sequence, 0, f"checkpoint of #{sequence} ({statement.get('time')}) {why}")
    if sequence in archives and archives[sequence] != statement["hash"]:
        return Problem(sequence, 0, f"checkpoint of #{sequence} disagrees with the archive ending there")
    return None


@dataclass
class _Segment:
    """A contiguous range of the chain, walked on its own (in a worker process, maybe)."""

    first: int
    last: int | None  # None: to the end
    prev_hash: str | None  # None: not known here, the stitching checks the link
    last_checkpoint: int
    checkpoints: dict[int, list[dict[str, Any]]]
    anchors: dict[int, list[Anchor]]
    # results
    problem: Problem | None = None
    good: int = 0
    events: int = 0
    checked_checkpoints: int = 0
    first_seen: tuple[int, str] | None = None  # (sequence, prev_hash) of its first event
    last_seen: tuple[int, str] | None = None  # (sequence, hash) of its last event
    final_checkpoint: int = 0  # the last checkpoint it verified (or the one before it)


def _walk(segment: _Segment) -> _Segment:
    walker = ChainWalker(trusted_keys(), first_sequence=segment.first, first_prev_hash=segment.prev_hash)
    walker.last_checkpoint = segment.last_checkpoint
    pending, anchored = segment.checkpoints, segment.anchors
    for row in rows(segment.first, segment.last):
        sequence = row[0]
        if segment.first_seen is None:
            segment.first_seen = (sequence, row[13])
        walker.event(sequence, row[13], row[14], _content_ok(row))
        if sequence in pending:
            for statement in pending.pop(sequence):
                walker.checkpoint(statement)
        if sequence in anchored:
            for anchor in anchored.pop(sequence):
                walker.covers(sequence, anchor.hash, anchor.source)
    if walker.events:
        segment.last_seen = (walker.expected_sequence - 1, walker.last_hash)
    segment.problem, segment.good, segment.events = walker.problem, walker.good, walker.events
    segment.checked_checkpoints, segment.final_checkpoint = walker.checkpoints, walker.last_checkpoint
    return segment


def _workers(start: int, wanted: int) -> int:
    """Processes to verify with: several on PostgreSQL for a long chain, when the caller
    may fork (a command: not a web or task worker with threads), not inside a
    transaction whose rows other connections cannot see."""
    if wanted < 2 or connection.vendor != "postgresql" or connection.in_atomic_block \
            or multiprocessing.current_process().daemon:
        return 1
    head = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
    return max(1, min(wanted, (head - start + 1) // MIN_SEGMENT))


def _segments(start: int, prev_hash: str, count: int, last_checkpoints: list[int],
              pending: dict[int, list[dict[str, Any]]], anchored: dict[int, list[Anchor]]) -> list[_Segment]:
    head = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or start
    size = max((head - start + 1) // count, 1)
    bounds = [start + n * size for n in range(count)] + [None]
    segments = []
    for n in range(count):
        first, end = bounds[n], bounds[n + 1]
        last = None if end is None else end - 1
        before = [c for c in last_checkpoints if c < first]
        segments.append(_Segment(first, last, prev_hash if n == 0 else None, max(before, default=start - 1),
                                 {s: v for s, v in pending.items() if s >= first and (last is None or s <= last)},
                                 {s: v for s, v in anchored.items() if s >= first and (last is None or s <= last)}))
    return segments


def verify_chain(*, anchors: Iterable[Anchor] = (), checkpoints: Iterable[dict[str, Any]] = (),
                 workers: int = 1) -> ChainReport:
    """Check every event against its content and its predecessor, every checkpoint
    (stored, plus ``checkpoints`` kept elsewhere) and every anchor; report the first
    disagreement by position. With ``workers`` (``audit verify`` passes
    ``FLEET_AUDIT_VERIFY_WORKERS``) a long chain on PostgreSQL is walked in segments by
    that many forked processes, stitched where they meet."""
    started = time.perf_counter()
    keys = trusted_keys()
    archives = list(AuditArchive.objects.order_by("last_sequence"))
    start, prev_hash, problems = _archive_start(keys, archives)
    walker = ChainWalker(keys, first_sequence=start, first_prev_hash=prev_hash)  # what no segment sees
    for problem in problems:
        walker.fail(problem.sequence, problem.message)
    statements = [c.statement() for c in AuditCheckpoint.objects.order_by("sequence")]
    statements += [dict(c) for c in checkpoints]
    archive_ends = {a.last_sequence: a.last_hash for a in archives}
    pending: dict[int, list[dict[str, Any]]] = defaultdict(list)
    seen: set[tuple[int, str]] = set()
    archived_checkpoint = start - 1 if not archives else 0
    for statement in statements:
        sequence = statement.get("sequence")
        if not isinstance(sequence, int) or (sequence, str(statement.get("signature"))) in seen:
            continue
        seen.add((sequence, str(statement.get("signature"))))
        if sequence < start:
            problem = _archived_checkpoint(keys, statement, archive_ends)
            if problem:
                walker.fail(problem.sequence, problem.message)
            archived_checkpoint = max(archived_checkpoint, sequence)
        else:
            pending[sequence].append(statement)
    anchored: dict[int, list[Anchor]] = defaultdict(list)
    for anchor in anchors:
        if anchor.sequence >= start:
            anchored[anchor.sequence].append(anchor)
    anchor_count = sum(len(a) for a in anchored.values())
    count = _workers(start, workers)
    segments = _segments(start, prev_hash, count, [archived_checkpoint, *sorted(pending)], pending, anchored)
    if count == 1:
        segments = [_walk(segments[0])]
    else:
        connections.close_all()  # each worker opens its own
        with multiprocessing.get_context("fork").Pool(count) as pool:
            segments = pool.map(_walk, segments)
    return _stitch(walker, segments, start, anchor_count, time.perf_counter() - started)


def _stitch(walker: ChainWalker, segments: list[_Segment], start: int, anchor_count: int,
            elapsed: float) -> ChainReport:
    """Join the segments: their problems, the links where they meet, and the tail."""
    events = good = checked = 0
    previous: tuple[int, str] | None = None
    first_problem: tuple[int, int] | None = None  # (sequence, events before it)
    for segment in segments:
        if segment.problem and (walker.problem is None or segment.problem.sequence < walker.problem.sequence):
            walker.problem, first_problem = segment.problem, (segment.problem.sequence, events + segment.good)
        if previous and segment.first_seen and segment.first_seen[0] == previous[0] + 1 \
                and segment.first_seen[1] != previous[1]:
            sequence = segment.first_seen[0]  # the link is checked before the content, as in one walk
            if walker.problem is None or sequence <= walker.problem.sequence:
                walker.problem = Problem(sequence, 0, f"prev_hash does not match event #{sequence - 1}'s hash: "
                                                      "the chain was re-linked")
                first_problem = (sequence, events)
        elif previous and segment.first_seen and segment.first_seen[0] != previous[0] + 1:
            sequence = segment.first_seen[0]
            if walker.problem is None or sequence < walker.problem.sequence:
                walker.problem = Problem(sequence, 0, f"follows #{previous[0]}: events are missing, removed or "
                                                      "reordered")
                first_problem = (sequence, events)
        events += segment.events
        checked += segment.checked_checkpoints
        previous = segment.last_seen or previous
    last, last_hash = previous if previous else (start - 1, walker.last_hash)
    beyond = [(s, f"checkpoint of #{s} signed {items[0].get('time')}")
              for segment in segments for s, items in segment.checkpoints.items() if s > last]
    beyond += [(s, items[0].source) for segment in segments for s, items in segment.anchors.items() if s > last]
    if beyond:
        sequence, what = min(beyond)
        removed = f"event #{sequence} was" if sequence == last + 1 else f"events #{last + 1}..#{sequence} were"
        walker.fail(last + 1, f"{what} names event #{sequence}, but the chain ends at #{last}: "
                              f"{removed} removed (the tail was cut)")
    walker.expected_sequence = last + 1
    walker.last_checkpoint = max(segment.final_checkpoint for segment in segments)
    walker.finish(settings.FLEET_AUDIT_CHECKPOINT_EVERY)
    problem = walker.problem
    if problem is not None and first_problem and problem.sequence == first_problem[0]:
        good = first_problem[1]
    elif problem is not None:
        good = min(events, max(problem.sequence - start, 0))
    return ChainReport(problem is None, events, problem, head={"sequence": last, "hash": last_hash},
                       checkpoints=checked, anchors=anchor_count, archived=start - 1, elapsed=elapsed,
                       good=good if problem else events)


def read_checkpoints(lines: Iterable[bytes | str]) -> Iterator[dict[str, Any]]:
    """Checkpoints kept outside the database (``audit checkpoints`` output), one JSON per line."""
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            statement = json.loads(raw)
        except ValueError:
            raise ValueError(f"line {number}: not JSON") from None
        if not isinstance(statement, dict):
            raise ValueError(f"line {number}: not a checkpoint")
        yield statement
