"""Export bundles: the events of a range as JSON lines, with their checkpoints, and a
signed manifest; and their verification with the public key alone.

A bundle is one UTF-8 file, one JSON object per line, read and written as a stream:

    {"kind": "header", "format": "fleet-audit-bundle/1", "first_sequence", "last_sequence",
     "count", "first_prev_hash", "checkpoints": [sequences], "checkpoint_every", ...}
    {"kind": "event", "sequence": 1, ..., "prev_hash": "…", "hash": "…"}    one per event
    {"kind": "checkpoint", "checkpoint": {signed statement}}                right after its event
    {"kind": "manifest", ..., "lines_sha256": "…", "key_id": "…", "signature": "…"}   last

The manifest repeats the range, count, first and last hash and the checkpoints, and
signs the SHA-256 of every line before it, so no byte of the bundle can change
unnoticed; the per-line checks say *where* it changed. The header announces what
follows, so a removed line is named at its place, not only at the end.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fleet_audit_verify.canonical import HASHED_FIELDS, event_hash
from fleet_audit_verify.chain import ChainWalker, Problem
from fleet_audit_verify.signing import check

FORMAT = "fleet-audit-bundle/1"
SUMMARY_FIELDS = ("first_sequence", "last_sequence", "count", "first_prev_hash", "first_hash", "last_hash")


def line(obj: Mapping[str, Any]) -> bytes:
    """One bundle line (compact JSON, UTF-8, newline-terminated)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


@dataclass
class BundleReport:
    ok: bool
    events: int = 0
    checkpoints: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    key_id: str = ""
    created_at: str = ""
    problem: Problem | None = None
    lines: int = 0

    def summary(self) -> str:
        if self.problem is not None:
            return f"FAILED at {self.problem}"
        span = f"#{self.first_sequence}..#{self.last_sequence}" if self.events else "no events"
        return (f"OK: {self.events} events ({span}), {self.checkpoints} checkpoints, manifest signed by key "
                f"{self.key_id} at {self.created_at}")


@dataclass
class _Reader:
    keys: Mapping[str, Ed25519PublicKey]
    digest: Any = field(default_factory=hashlib.sha256)
    walker: ChainWalker | None = None
    header: dict[str, Any] | None = None
    announced: list[int] = field(default_factory=list)
    seen_checkpoints: list[dict[str, Any]] = field(default_factory=list)
    first_hash: str = ""
    first_seen: int | None = None
    manifest: dict[str, Any] | None = None
    number: int = 0
    after_manifest: int = 0

    def fail(self, message: str, sequence: int | None = None) -> None:
        if self.walker is None:
            self.walker = ChainWalker(self.keys, by_line=True)
        at = sequence if sequence is not None else max(self.walker.expected_sequence - 1, 0)
        self.walker.fail(at, message, self.number)

    def feed(self, raw: bytes) -> None:
        self.number += 1
        if self.manifest is not None:
            self.after_manifest += 1
            if self.after_manifest == 1:
                self.fail("lines follow the manifest: the bundle was extended after signing")
            return
        try:
            obj = json.loads(raw)
        except ValueError:
            self.digest.update(raw)
            self.fail("not a JSON line: the bundle is damaged")
            return
        kind = obj.get("kind") if isinstance(obj, dict) else None
        if kind == "manifest":
            self.manifest = obj
            return
        self.digest.update(raw)
        if self.number == 1:
            self.start(obj if kind == "header" else None)
        elif kind == "event":
            self.event(obj)
        elif kind == "checkpoint":
            self.checkpoint(obj.get("checkpoint") if isinstance(obj.get("checkpoint"), dict) else {})
        else:
            self.fail(f"a line of unknown kind {kind!r}")

    def start(self, header: dict[str, Any] | None) -> None:
        if header is None or header.get("format") != FORMAT:
            self.walker = ChainWalker(self.keys, by_line=True)
            self.fail(f"the first line is not a {FORMAT} header: not a Fleet audit bundle (or another version)")
            return
        self.header = header
        first = header.get("first_sequence")
        self.walker = ChainWalker(self.keys, first_sequence=first if isinstance(first, int) else 1,
                                  first_prev_hash=header.get("first_prev_hash"), by_line=True)
        self.announced = sorted(s for s in header.get("checkpoints", []) if isinstance(s, int))

    def event(self, obj: dict[str, Any]) -> None:
        assert self.walker is not None
        sequence = obj.get("sequence")
        if not isinstance(sequence, int) or any(name not in obj for name in (*HASHED_FIELDS, "hash")):
            self.fail("an event line without every recorded field")
            return
        self.expect_announced_before(sequence)
        ok = event_hash(obj) == obj["hash"]
        if not self.walker.events:
            self.first_hash, self.first_seen = obj["hash"], sequence
        self.walker.event(sequence, obj["prev_hash"], obj["hash"], ok, self.number)

    def expect_announced_before(self, sequence: int) -> None:
        """A checkpoint the header announced for an earlier event never came: it was removed."""
        while self.announced and self.announced[0] < sequence:
            missing = self.announced.pop(0)
            self.fail(f"the checkpoint of #{missing} announced in the header is missing", missing)

    def checkpoint(self, statement: dict[str, Any]) -> None:
        assert self.walker is not None
        sequence = statement.get("sequence")
        if sequence in self.announced:
            self.announced.remove(sequence)
        else:
            self.fail(f"a checkpoint of #{sequence} the header did not announce", sequence)
        self.seen_checkpoints.append({"sequence": sequence, "hash": statement.get("hash")})
        self.walker.checkpoint(statement, self.number)

    def finish(self) -> BundleReport:
        if self.walker is None or self.header is None:
            self.fail("the bundle is empty")
            assert self.walker is not None
            return BundleReport(False, problem=self.walker.problem, lines=self.number)
        walker, header = self.walker, self.header
        self.expect_announced_before(walker.expected_sequence)
        walker.finish(header.get("checkpoint_every") if isinstance(header.get("checkpoint_every"), int) else None,
                      self.number)
        manifest = self.manifest or {}
        if self.manifest is None:
            self.fail("the bundle ends without a manifest: it was truncated")
        else:
            self.number = self.number - self.after_manifest  # the manifest's own line
            self.check_manifest(manifest)
        return BundleReport(
            walker.problem is None, events=walker.events, checkpoints=walker.checkpoints,
            first_sequence=self.first_seen, last_sequence=walker.expected_sequence - 1,
            key_id=str(manifest.get("key_id", "")), created_at=str(manifest.get("created_at", "")),
            problem=walker.problem, lines=self.number)

    def check_manifest(self, manifest: dict[str, Any]) -> None:
        assert self.walker is not None and self.header is not None
        why = check(self.keys, manifest)
        if why:
            self.fail(f"the manifest {why}")
            return
        if manifest.get("lines_sha256") != self.digest.hexdigest():
            self.fail("the lines before the manifest are not those it signed: the bundle was changed")
        seen = {"first_sequence": self.first_seen,
                "last_sequence": self.walker.expected_sequence - 1 if self.walker.events else None,
                "count": self.walker.events, "first_prev_hash": self.header.get("first_prev_hash"),
                "first_hash": self.first_hash or None, "last_hash": self.walker.last_hash if self.walker.events
                else None}
        for name in SUMMARY_FIELDS:
            if manifest.get(name) != seen[name]:
                self.fail(f"the manifest's {name} is {manifest.get(name)!r}, the bundle holds {seen[name]!r}")
                break
        if manifest.get("checkpoints") != self.seen_checkpoints:
            self.fail("the manifest lists other checkpoints than the bundle holds")


def verify_bundle(lines: Iterable[bytes], keys: Mapping[str, Ed25519PublicKey]) -> BundleReport:
    """Check a bundle read line by line; memory does not grow with its size."""
    reader = _Reader(keys)
    for raw in lines:
        reader.feed(raw)
    return reader.finish()


def read_lines(handle: BinaryIO) -> Iterator[bytes]:
    """A bundle's lines, from a plain or a gzip-compressed file (opened in binary mode)."""
    magic = handle.read(2)
    handle.seek(0)
    yield from gzip.GzipFile(fileobj=handle) if magic == b"\x1f\x8b" else handle
