"""Walking a chain of events and checkpoints, naming the first thing that does not fit.

One walker serves the database check (``manage.py audit verify``) and the bundle
check (``fleet-audit-verify``): events are fed in the order they are read, each
checkpoint right after the event it covers. The walker keeps only the last event and
checkpoint (constant memory) and the first problem; later problems are usually
consequences of the first, so it is the one reported.

What it catches:
- an edited event (its stored hash is not its content's);
- a removed or reordered event (a sequence that skips, or a ``prev_hash`` that is
  not the previous event's hash);
- a consistent rewrite of the chain (every hash recomputed): a signed checkpoint
  names a different hash at its sequence;
- a removed checkpoint: more events than the checkpoint interval without one;
- a forged checkpoint, or one signed by another key.
Truncation of the tail is found by the caller, which knows what should follow the
last event (a checkpoint or anchor beyond it, a manifest's count).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fleet_audit_verify.canonical import GENESIS_HASH
from fleet_audit_verify.signing import CHECKPOINT_FORMAT, check


@dataclass(frozen=True)
class Problem:
    """The first disagreement: at event ``sequence`` (and bundle ``line``, when read from one)."""

    sequence: int
    line: int
    message: str

    def where(self) -> str:
        at = f"event #{self.sequence}" if self.sequence else "the start"
        return f"line {self.line} ({at})" if self.line else at

    def __str__(self) -> str:
        return f"{self.where()}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "line": self.line or None, "message": self.message}


class ChainWalker:
    """Feed ``event`` and ``checkpoint`` in chain order, then ``finish``."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey], *, first_sequence: int = 1,
                 first_prev_hash: str | None = GENESIS_HASH, by_line: bool = False):
        """``by_line``: the first problem is the first in the file (a bundle), not by sequence."""
        self.keys = keys
        self.by_line = by_line
        self.first_sequence = first_sequence
        self.expected_sequence = first_sequence
        self.prev_hash = first_prev_hash  # None: not known (a bundle that starts mid-chain)
        self.last_checkpoint = first_sequence - 1  # conservative for a chain read from the middle
        self.events = self.checkpoints = 0
        self.last_hash = first_prev_hash or ""
        self.problem: Problem | None = None
        self.good = 0  # events read before the problem's position

    def fail(self, sequence: int, message: str, line: int = 0) -> None:
        candidate = Problem(sequence, line, message)
        if self.problem is None or self._position(candidate) < self._position(self.problem):
            self.problem = candidate
            in_stream = sequence >= self.expected_sequence - 1
            self.good = self.events if in_stream else min(self.events, max(sequence - self.first_sequence, 0))

    def _position(self, problem: Problem) -> tuple[int, int]:
        return (problem.line, problem.sequence) if self.by_line else (problem.sequence, problem.line)

    def event(self, sequence: int, prev_hash: str, stored_hash: str, content_ok: bool, line: int = 0) -> None:
        if sequence != self.expected_sequence:
            if sequence > self.expected_sequence:
                gap = (f"#{self.expected_sequence}" if sequence == self.expected_sequence + 1
                       else f"#{self.expected_sequence}..#{sequence - 1}")
                self.fail(sequence, f"follows #{self.expected_sequence - 1}: events are missing ({gap}), removed "
                                    "or reordered", line)
            else:
                self.fail(sequence, f"comes after #{self.expected_sequence - 1}: events are out of order", line)
        elif self.prev_hash is not None and prev_hash != self.prev_hash:
            self.fail(sequence, f"prev_hash does not match event #{sequence - 1}'s hash: the chain was re-linked",
                      line)
        elif not content_ok:
            self.fail(sequence, "stored hash does not match the event's content: it was altered", line)
        self.events += 1
        self.expected_sequence, self.prev_hash, self.last_hash = sequence + 1, stored_hash, stored_hash

    def checkpoint(self, statement: Mapping[str, Any], line: int = 0) -> None:
        """A signed checkpoint, fed right after the event at its sequence (if that event was read)."""
        self.checkpoints += 1
        sequence = statement.get("sequence")
        if statement.get("format") != CHECKPOINT_FORMAT or not isinstance(sequence, int):
            self.fail(self.expected_sequence - 1, "a checkpoint that is not in the checkpoint format", line)
            return
        why = check(self.keys, statement)
        if why:
            self.fail(sequence, f"checkpoint of #{sequence} ({statement.get('time')}) {why}", line)
            return
        self.covers(sequence, str(statement.get("hash")),
                    f"checkpoint of #{sequence} signed {statement.get('time')}", line)
        every = statement.get("every")
        if isinstance(every, int) and sequence - self.last_checkpoint > every:
            self.missing_checkpoint(self.last_checkpoint, every, line)
        self.last_checkpoint = max(self.last_checkpoint, sequence)

    def covers(self, sequence: int, expected_hash: str, what: str, line: int = 0) -> None:
        """Something outside the events (a checkpoint, a deploy tag) says event ``sequence`` had this hash."""
        if sequence != self.expected_sequence - 1:
            self.fail(sequence, f"{what} does not follow event #{sequence}", line)
        elif expected_hash != self.last_hash:
            self.fail(sequence, f"{what} says its hash is {expected_hash[:16]}…, the chain has "
                                f"{self.last_hash[:16]}…: the chain was rewritten up to here", line)

    def missing_checkpoint(self, after: int, every: int, line: int = 0) -> None:
        self.fail(after + every, f"no checkpoint for the {every} events after #{after} (one is signed every "
                                 f"{every} events): a checkpoint was removed", line)

    def finish(self, every: int | None, line: int = 0) -> None:
        """The tail: with more than ``every`` events after the last checkpoint, one is missing."""
        last = self.expected_sequence - 1
        if every and last - self.last_checkpoint >= every:
            self.missing_checkpoint(self.last_checkpoint, every, line)
