"""Hits reused across decisions: the same object, judged by the same policies in the
same context, gets the same findings, so it is evaluated once.

A fleet rollout gates the same rendered objects again and again: one release to many
clusters whose overlays leave most objects alike, a retried or resumed deployment, a
preview followed by the rollout, CI checking a branch where one file changed. The
engines evaluate every object of every decision (~100 µs each in OPA, ~1 ms in
regopy); this layer evaluates only the objects it has not seen.

A per-object entry is keyed on the bundle hash (so a policy change misses
everything), the values of exactly the paths of ``data.fleet`` the bundle reads
(``Bundle.context_paths``, found in its Rego: the baseline reads the cluster's ``env``
label, not its name, so a thousand clusters in three environments share three sets of
findings), ``data.inventory`` when a template reads it, and the subject: the values of
the paths of an object its per-object rules read (``Bundle.object_input_paths``: the
baseline never reads ``metadata.namespace``, so one object in a namespace per cluster
has one set of findings), or its whole canonical JSON together with its Gatekeeper
review when a constraint matches it (the review carries the live object, the
Namespace and the operation); an object the apply prunes
is a subject of its own kind, never confused with the same object being applied. A
reference the analysis cannot follow (``data[x]``, ``data.fleet`` passed whole) keys on
the whole context. Set-scoped rules see the whole release, so their entry is keyed on
the paths of their input (and of ``data.fleet``) that they read, on the objects only if
one of them reads ``input.objects``.
A bundle that calls a clock, network or random built-in is never memoised, nor is a
failed evaluation. Entries live in this process (LRU, bounded by
``FLEET_POLICY_MEMO_OBJECTS``) in front of an optional shared :class:`MemoStore` (the
database's, installed by the policy app), so a finding one worker computed serves
every worker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

from fleet.policy.bundle import Bundle
from fleet.policy.engines.base import SET_INDEX, Engine, Hit, narrowed, sorted_hits
from fleet.policy.inputs import EvaluationInput

logger = logging.getLogger(__name__)
Entry = tuple[tuple[str, Any], ...]  # (source, value) of each hit
Path = tuple[str, ...]
ABSENT = ["absent"]  # a path the document does not have (Rego: undefined), unlike any value


class MemoStore(Protocol):
    """Findings shared across processes, by key. Best effort: a store that fails
    answers nothing and keeps nothing, and the engine evaluates."""

    def get_many(self, keys: list[str]) -> dict[str, Entry]: ...

    def put_many(self, entries: dict[str, Entry]) -> None: ...


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _at(document: Any, path: Path) -> Any:
    for key in path:
        if not isinstance(document, dict) or key not in document:
            return ABSENT
        document = document[key]
    return ["value", document]


def read_values(document: Mapping[str, Any], paths: frozenset[Path]) -> str:
    """Canonical JSON of what ``paths`` reach in ``document``: what rules reading only
    those paths can see of it (a path and its prefix both listed is harmless)."""
    return _canonical(sorted([list(path), _at(document, path)] for path in paths))


def subject_paths(bundle: Bundle) -> tuple[frozenset[Path], frozenset[Path]]:
    """What per-object rules and constraints may read of a subject: paths of the object
    (object rules' ``input``) and of its Gatekeeper review (constraints' ``input.review``).
    A constraint reviews ``review.object`` when the review has one, else the object
    itself: its paths under ``object`` are read in both."""
    paths = bundle.object_input_paths
    review = frozenset(p[1:] for p in paths if p[:1] == ("review",)) | (frozenset({()}) if () in paths
                                                                          else frozenset())
    under_object = frozenset(p[1:] for p in review if p[:1] == ("object",))
    return paths | under_object | (frozenset({()}) if () in review else frozenset()), review


class MemoEngine(Engine):
    """Wraps an engine; evaluates only the objects (and release) it has no hits for."""

    def __init__(self, inner: Engine, max_entries: int, shared: MemoStore | None = None):
        self.inner = inner
        self.name = inner.name
        self.max_entries = max_entries
        self.shared = shared
        self.hits = self.misses = 0  # objects (and releases) answered from memory / evaluated
        self.shared_hits = 0  # of ``hits``, those another process had computed
        self.decisions = self.cold_decisions = 0  # evaluations, and those that sent objects to the engine
        self.set_misses = 0  # of ``misses``, rules over the whole release (no objects sent unless they read them)
        self._entries: OrderedDict[str, Entry] = OrderedDict()
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
        context = _digest(read_values(data.context, bundle.context_paths) + (
            _canonical(data.admission.inventory) if bundle.reads_inventory and reviewed else ""))
        object_paths, review_paths = subject_paths(bundle)
        digests = [_digest(_canonical([read_values(obj, object_paths),
                                       read_values(reviews[i], review_paths) if i in reviewed else None,
                                       i >= count]))
                   for i, obj in enumerate(data.subjects)]
        full = [_digest(_canonical(obj)) for obj in data.objects] if "objects" in bundle.set_input_keys else []
        keys = [_digest(f"{bundle.hash}/{context}/{digest}") for digest in digests] if per_object else []
        wants_set = whole_set and bool(bundle.rules("set"))
        set_input = {**data.set_input(key for key in bundle.set_input_keys if key != "objects")}
        reads_objects = "objects" in bundle.set_input_keys
        set_key = _digest(f"{bundle.hash}/set/" + read_values(data.context, bundle.context_paths)
                          + read_values(set_input, bundle.set_input_paths)
                          + ("".join(full) if reads_objects else ""))
        entries = self._lookup([*keys, *([set_key] if wants_set else [])])
        set_entry = entries.pop() if wants_set else ()
        missing = [i for i, entry in enumerate(entries) if entry is None]
        fresh = self._evaluate(bundle, data, reviews, matches, missing, set_entry is None, slot)
        new: dict[str, Entry] = {}
        for index in missing:
            entries[index] = new[keys[index]] = tuple(fresh.get(index, ()))
        if set_entry is None:
            set_entry = new[set_key] = tuple(fresh.get(SET_INDEX, ()))
        self._store(new)
        set_missed = wants_set and set_key in new
        if missing:  # a cold decision: rare once a release's findings are known (benchmarks count them)
            logger.info("policy memo: cold decision, evaluated %d of %d subjects%s", len(missing), len(keys),
                        " and the rules over the release" if set_missed else "")
        with self._lock:
            self.hits += len(keys) - len(missing) + (wants_set and not set_missed)
            self.misses += len(missing) + set_missed
            self.set_misses += set_missed
            self.decisions += 1
            self.cold_decisions += bool(missing)
        return sorted_hits([Hit(source, index, value)
                            for index, entry in [*enumerate(entries), (SET_INDEX, set_entry)]
                            for source, value in entry])

    def _lookup(self, keys: list[str]) -> list[Entry | None]:
        """This process's entries, then the shared store's for the rest (kept here too)."""
        with self._lock:
            found = [self._get(key) for key in keys]
        absent = [key for key, entry in zip(keys, found, strict=True) if entry is None]
        if absent and self.shared is not None:
            shared = self.shared.get_many(absent)
            if shared:
                with self._lock:
                    self.shared_hits += len(shared)
                    for key, entry in shared.items():
                        self._put(key, entry)
                found = [entry if entry is not None else shared.get(key) for key, entry in zip(keys, found,
                                                                                             strict=True)]
        return found

    def _store(self, entries: dict[str, Entry]) -> None:
        if not entries:
            return
        with self._lock:
            for key, entry in entries.items():
                self._put(key, entry)
        if self.shared is not None:
            self.shared.put_many(entries)

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

    def _get(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def _put(self, key: str, entry: Entry) -> None:
        self._entries[key] = entry
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
