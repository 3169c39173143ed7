"""Who changed a field: its owner in the live object's ``managedFields``.

Server-side apply records, per field manager, the fields it owns as a ``fieldsV1``
trie: ``f:<key>`` for a map key, ``k:{"name":"web"}`` for a list item by its merge
key, ``i:<n>`` for an atomic list's item, and ``{}`` at a leaf (an atomic value the
manager owns whole). A diff path is walked down that trie; the manager whose trie
reaches it (or a leaf above it) owns the field, with the time of its last write.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from fleet.kube.constants import FIELD_MANAGER
from fleet.kube.diff import Segment

OWN_MANAGERS = frozenset({FIELD_MANAGER})


@dataclass(frozen=True)
class Owner:
    manager: str
    operation: str  # Apply or Update
    time: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {"manager": self.manager, "operation": self.operation,
                "time": self.time.isoformat() if self.time else None}


def entries(live: Mapping[str, Any] | None) -> list[tuple[Owner, Mapping[str, Any]]]:
    """Each manager of ``live`` with its field trie, newest write last."""
    found = []
    for entry in ((live or {}).get("metadata") or {}).get("managedFields") or []:
        if not isinstance(entry, Mapping):
            continue
        when = parse_datetime(str(entry.get("time") or "")) if entry.get("time") else None
        found.append((Owner(str(entry.get("manager") or "?"), str(entry.get("operation") or ""), when),
                      entry.get("fieldsV1") or {}))
    return sorted(found, key=lambda item: item[0].time.timestamp() if item[0].time else 0.0)


def _child(node: Mapping[str, Any], segment: Segment) -> Any:
    if isinstance(segment, str):
        return node.get(f"f:{segment}")
    if isinstance(segment, int):
        return node.get(f"i:{segment}")
    key, value = segment
    for name, child in node.items():
        if name.startswith("k:"):
            try:
                if json.loads(name[2:]).get(key) == value:
                    return child
            except (ValueError, AttributeError):
                continue
    return None


def owns(trie: Mapping[str, Any], segments: Iterable[Segment]) -> bool:
    """Whether the trie reaches ``segments`` or owns an atomic value above them."""
    if not trie:
        return False
    node: Any = trie
    for segment in segments:
        if not isinstance(node, Mapping):
            return False
        if node == {}:  # a leaf above the field: the whole value is this manager's
            return True
        node = _child(node, segment)
        if node is None:
            return False
    return True


def owners(live: Mapping[str, Any] | None, segments: tuple[Segment, ...]) -> list[Owner]:
    """The managers owning the field at ``segments`` (several share a field set to the
    same value by each), newest write last."""
    return [owner for owner, trie in entries(live) if owns(trie, segments)]


def who_changed(live: Mapping[str, Any] | None, segments: tuple[Segment, ...]) -> Owner | None:
    """The manager that most recently wrote the field and is not Fleet; a field Fleet set
    that is now absent has no owner, so the latest other manager of the object is named."""
    mine = [owner for owner in owners(live, segments) if owner.manager not in OWN_MANAGERS]
    if mine:
        return mine[-1]
    others = [owner for owner, _ in entries(live) if owner.manager not in OWN_MANAGERS
              and not owner.manager.endswith("-applyset")]
    return others[-1] if others else None
