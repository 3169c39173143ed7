"""How an audit event is hashed: SHA-256 over its canonical JSON, previous hash included.

The encoding is Python's ``json.dumps`` with sorted keys, no spaces and UTF-8 text
(``ensure_ascii=False``); the timestamp is ``datetime.isoformat()`` of the stored UTC
time. Changing any of this changes every hash: the formula is versioned with the
bundle format, not tuned.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

GENESIS_HASH = "0" * 64
# Every recorded field of an event, in the order bundles list them; ``hash`` is not hashed.
HASHED_FIELDS = ("sequence", "timestamp", "actor", "source", "action", "target_type", "target_id",
                 "target_repr", "cluster", "before", "after", "request_id", "metadata", "prev_hash")


def encode(value: Any) -> bytes:
    """The canonical JSON bytes of ``value`` (also what signatures are made over)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(fields: Mapping[str, Any]) -> str:
    """The hash of an event given its hashed fields (``timestamp`` already a string)."""
    return hashlib.sha256(encode({name: fields[name] for name in HASHED_FIELDS})).hexdigest()
