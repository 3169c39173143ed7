"""The policy memo's shared tier: findings in the database, so what one worker
evaluated serves every worker (``engines.memo.MemoEngine`` keeps its own LRU in front).

Best effort by design: the memo only saves work, so a failing query (a database
restart, a lock timeout) is logged and answered as "nothing known", and the engine
evaluates; each query runs in its own savepoint, so a failure never breaks the
caller's transaction. The table is bounded by ``FLEET_POLICY_MEMO_SHARED_OBJECTS``:
past it, the oldest entries go (checked every ``PRUNE_EVERY`` writes of a process).
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import DatabaseError, transaction

from fleet.policy.engines.memo import Entry
from fleet.policy.models import MemoEntry

logger = logging.getLogger(__name__)
PRUNE_EVERY = 2_000
BATCH = 500


class DatabaseMemoStore:
    def __init__(self) -> None:
        self._writes = 0
        self._lock = threading.Lock()

    def get_many(self, keys: list[str]) -> dict[str, Entry]:
        found: dict[str, Entry] = {}
        try:
            with transaction.atomic():
                for start in range(0, len(keys), BATCH):
                    for key, hits in MemoEntry.objects.filter(key__in=keys[start:start + BATCH]).values_list(
                            "key", "hits"):
                        found[key] = tuple((source, value) for source, value in hits)
        except DatabaseError as exc:
            logger.warning("policy memo: shared findings unavailable (%s); evaluating", exc)
            return {}
        return found

    def put_many(self, entries: dict[str, Entry]) -> None:
        rows = [MemoEntry(key=key, hits=[list(hit) for hit in hits]) for key, hits in entries.items()]
        try:
            with transaction.atomic():
                MemoEntry.objects.bulk_create(rows, batch_size=BATCH, ignore_conflicts=True)
        except DatabaseError as exc:
            logger.warning("policy memo: could not share %d findings (%s)", len(rows), exc)
            return
        with self._lock:
            self._writes += len(rows)
            due = self._writes >= PRUNE_EVERY
            if due:
                self._writes = 0
        if due:
            self.prune(settings.FLEET_POLICY_MEMO_SHARED_OBJECTS)

    def prune(self, keep: int) -> int:
        """Delete all but the ``keep`` newest entries; returns how many went."""
        try:
            with transaction.atomic():
                cutoff = (MemoEntry.objects.order_by("-created_at").values_list("created_at", flat=True)
                          [keep:keep + 1].first())
                if cutoff is None:
                    return 0
                deleted, _ = MemoEntry.objects.filter(created_at__lte=cutoff).delete()
                return deleted
        except DatabaseError as exc:
            logger.warning("policy memo: could not prune shared findings (%s)", exc)
            return 0
