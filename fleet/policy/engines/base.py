"""What every engine does: run a bundle over an evaluation input, return raw hits.

Every engine Fleet ships is OPA (a server Fleet is pointed at, or one Fleet runs
itself), so they answer alike by construction; ``tests/policy/test_parity.py`` still
holds them to the same hits for the same bundle and input.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleet.policy.bundle import Bundle, Module
from fleet.policy.errors import PolicyError
from fleet.policy.inputs import EvaluationInput

_INTERNAL_PATH = re.compile(r"(data\.)?fleet_bundles[./]b[0-9a-f]{16}[./]")
SET_INDEX = -1  # the index of a hit from a set-scoped rule: it names no object


@dataclass(frozen=True)
class Hit:
    """One element of a deny/violation/warn set."""

    source: str  # "<module id>::<rule>", or "gk::<constraint index>"
    index: int   # object index, or SET_INDEX
    value: Any

    def key(self) -> tuple[str, int, str]:
        return self.source, self.index, json.dumps(self.value, sort_keys=True)


def rule_source(module: Module, rule: str) -> str:
    return f"{module.id}::{rule}"


def constraint_source(index: int) -> str:
    return f"gk::{index}"


def narrowed(data: EvaluationInput, reviews: list[dict[str, Any]], matches: Mapping[int, list[int]],
             indexes: list[int]) -> tuple[EvaluationInput, list[dict[str, Any]], dict[int, list[int]]]:
    """The subjects at ``indexes`` (ascending) as an evaluation of their own: their
    reviews, and the constraint matches renumbered (hit ``n`` of the result is subject
    ``indexes[n]``)."""
    position = {index: n for n, index in enumerate(indexes)}
    return (data.subset(indexes), [reviews[i] for i in indexes],
            {number: [position[i] for i in found if i in position] for number, found in matches.items()})


def located_error(bundle: Bundle, module_id: str, line: int | None, message: str,
                  code: str) -> PolicyError:
    """An engine error against a module, pointed back at the author's file and line."""
    message = _INTERNAL_PATH.sub("", message)
    module = bundle.module(module_id)
    if module is None:
        return PolicyError(message, code=code, file=module_id, line=line)
    return PolicyError(message, code=code, file=module.file,
                       line=line + module.line_offset if line else None)


class Engine(ABC):
    name: str

    @abstractmethod
    def prepare(self, bundle: Bundle, slot: str = "") -> None:
        """Compile/load the bundle once; raise PolicyError for bad policies. ``slot``
        names the policy set the bundle is the current version of."""

    @abstractmethod
    def evaluate(self, bundle: Bundle, data: EvaluationInput, reviews: list[dict[str, Any]],
                 matches: Mapping[int, list[int]], *, per_object: bool = True,
                 whole_set: bool = True, slot: str = "") -> list[Hit]:
        """All hits, deduplicated and sorted; raise PolicyError on any failure.

        ``reviews`` are the Gatekeeper reviews of ``data.subjects``, and ``matches`` which
        subjects each constraint applies to. ``per_object`` covers per-object rules and
        Gatekeeper constraints, ``whole_set`` the rules over the whole release; leaving
        one out lets a caller that already knows those hits (``MemoEngine``) skip them.
        """

    def close(self) -> None:  # noqa: B027 - optional: most engines hold nothing
        """Release what the engine holds (connections, compiled policies)."""


def sorted_hits(hits: list[Hit]) -> list[Hit]:
    unique = {hit.key(): hit for hit in hits}
    return [unique[key] for key in sorted(unique)]
