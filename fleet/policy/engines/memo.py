"""Hits reused across decisions: the same object, judged by the same policies in the
same context, gets the same findings, so it is evaluated once.

A fleet rollout gates the same rendered objects again and again: one release to many
clusters whose overlays leave most objects alike, a retried or resumed deployment, a
preview followed by the rollout, CI checking a branch where one file changed. The
engines evaluate every object of every decision (~100 µs each in OPA, ~1 ms in
regopy); this layer evaluates only the objects it has not seen.

A per-object entry is keyed on the bundle hash (so a policy change misses
everything), the part of ``data.fleet`` the bundle reads (``Bundle.context_keys``: the
baseline reads only the cluster), ``data.inventory`` when a template reads it, and the
subject's canonical JSON together with its Gatekeeper review when a constraint matches
it (the review carries the live object, the Namespace and the operation); an object
the apply prunes is a subject of its own kind, never confused with the same object
being applied. Set-scoped rules see the whole release, so their entry is keyed on all of it — on
its objects only if one of them reads ``input.objects`` (``Bundle.set_input_keys``).
A bundle that calls a clock, network or random built-in is never memoised, nor is a
failed evaluation. Entries live in this process (LRU, bounded by
``FLEET_POLICY_MEMO_OBJECTS``); a worker restart only costs one cold decision.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from fleet.policy.bundle import Bundle
from fleet.policy.engines.base import SET_INDEX, Engine, Hit, narrowed, sorted_hits
from fleet.policy.inputs import EvaluationInput

Entry = tuple[tuple[str, Any], ...]  # (source, value) of each hit


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class MemoEngine(Engine):
    """Wraps an engine; evaluates only the objects (and release) it has no hits for."""

    def __init__(self, inner: Engine, max_entries: int):
        self.inner = inner
        self.name = inner.name
        self.max_entries = max_entries
        self.hits = self.misses = 0  # objects (and releases) answered from memory / evaluated
        self._entries: OrderedDict[tuple[str, str, str], Entry] = OrderedDict()
        self._lock = threading.Lock()

    def prepare(self, bundle: Bundle, slot: str = "") -> None:
        self.inner.prepare(bundle, slot)

    def evaluate(self, bundle: Bundle, data: EvaluationInput, reviews: list[dict[str, Any]],
                 matches: Mapping[int, list[int]], *, per_object: bool = True,
                 whole_set: bool = True, slot: str = "") -> list[Hit]:
        if not bundle.deterministic or self.max_entries < 1:
            return self.inner.evaluate(bundle, data, reviews, matches, per_object=per_object,
                                       whole_set=whole_set, slot=slot)
        reviewed = set().union(*matches.values()) if matches else set()
        count = len(data.objects)
        context = _digest(data.context_json(bundle.context_keys) + (
            _canonical(data.admission.inventory) if bundle.reads_inventory and reviewed else ""))
        digests = [_digest(_canonical([obj, reviews[i] if i in reviewed else None, i >= count]))
                   for i, obj in enumerate(data.subjects)]
        keys = [(bundle.hash, context, digest) for digest in digests] if per_object else []
        wants_set = whole_set and bool(bundle.rules("set"))
        set_key = (bundle.hash, "set", _digest(data.context_json() + (
            "".join(digests[:count]) if "objects" in bundle.set_input_keys else "")))
        with self._lock:
            entries = [self._get(key) for key in keys]
            set_entry = self._get(set_key) if wants_set else ()
        missing = [i for i, entry in enumerate(entries) if entry is None]
        fresh = self._evaluate(bundle, data, reviews, matches, missing, set_entry is None, slot)
        with self._lock:
            self.hits += len(keys) - len(missing) + (wants_set and set_entry is not None)
            self.misses += len(missing) + (set_entry is None)
            for index in missing:
                entries[index] = self._put(keys[index], fresh.get(index, ()))
            if set_entry is None:
                set_entry = self._put(set_key, fresh.get(SET_INDEX, ()))
        return sorted_hits([Hit(source, index, value)
                            for index, entry in [*enumerate(entries), (SET_INDEX, set_entry)]
                            for source, value in entry])

    def _evaluate(self, bundle: Bundle, data: EvaluationInput, reviews: list[dict[str, Any]],
                  matches: Mapping[int, list[int]], missing: list[int], whole_set: bool, slot: str,
                  ) -> dict[int, list[tuple[str, Any]]]:
        """Evaluate the missing objects (and the release when ``whole_set``), in as few
        engine calls as possible; the hits grouped by object index."""
        found: dict[int, list[tuple[str, Any]]] = {}

        def keep(hits: list[Hit], indexes: list[int] | None = None) -> None:
            for hit in hits:
                index = hit.index if indexes is None or hit.index == SET_INDEX else indexes[hit.index]
                found.setdefault(index, []).append((hit.source, hit.value))

        if whole_set and len(missing) == len(reviews):
            keep(self.inner.evaluate(bundle, data, reviews, matches, slot=slot))
            return found
        if whole_set:
            keep(self.inner.evaluate(bundle, data, reviews, matches, per_object=False, slot=slot))
        if missing:
            keep(self.inner.evaluate(bundle, *narrowed(data, reviews, matches, missing),
                                     whole_set=False, slot=slot), missing)
        return found

    def _get(self, key: tuple[str, str, str]) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def _put(self, key: tuple[str, str, str], hits: list[tuple[str, Any]] | Entry) -> Entry:
        entry = tuple(hits)
        self._entries[key] = entry
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return entry

    def close(self) -> None:
        with self._lock:
            self._entries.clear()
        self.inner.close()
