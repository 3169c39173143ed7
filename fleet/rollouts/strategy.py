"""Wave specs and the plan that assigns clusters to waves.

A strategy is an ordered list of wave specs. Each wave takes, from the clusters the
rollout targets, those its selector (or explicit list) picks and no earlier wave
took; a cluster named by two explicit lists is an error, and so is a targeted
cluster that no wave takes (it would silently never be deployed).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from fleet.core.labels import LabelError, parse_selector
from fleet.inventory.models import Cluster

_BUDGET_RE = re.compile(r"^(\d{1,6})(%?)$")
MAX_WAVES = 50


class StrategyError(ValueError):
    """A strategy or plan problem; ``field`` points at it (``waves[1].max_parallel``)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class WaveSpec:
    name: str
    selector: str = ""
    clusters: tuple[str, ...] = ()
    max_parallel: int = 1
    max_failures: str = "0"
    bake_seconds: int = 0
    require_approval: bool = False

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["clusters"] = list(self.clusters)
        return data


def parse_waves(raw: object) -> list[WaveSpec]:
    if not isinstance(raw, list) or not raw:
        raise StrategyError("waves", "a strategy needs at least one wave")
    if len(raw) > MAX_WAVES:
        raise StrategyError("waves", f"at most {MAX_WAVES} waves")
    specs = []
    for index, item in enumerate(raw):
        where = f"waves[{index}]"
        if not isinstance(item, dict):
            raise StrategyError(where, "each wave must be an object")
        unknown = set(item) - set(WaveSpec.__dataclass_fields__)
        if unknown:
            raise StrategyError(f"{where}.{sorted(unknown)[0]}", "unknown wave field")
        max_parallel = item.get("max_parallel", 1)
        if not isinstance(max_parallel, int) or isinstance(max_parallel, bool) or max_parallel < 1:
            raise StrategyError(f"{where}.max_parallel", "max_parallel must be an integer of at least 1")
        budget = str(item.get("max_failures", "0"))
        match = _BUDGET_RE.match(budget)
        if not match or (match.group(2) and int(match.group(1)) > 100):
            raise StrategyError(f"{where}.max_failures", "max_failures must be a count (2) or a percentage (10%)")
        bake = item.get("bake_seconds", 0)
        if not isinstance(bake, int) or isinstance(bake, bool) or not 0 <= bake <= 7 * 86400:
            raise StrategyError(f"{where}.bake_seconds", "bake_seconds must be 0 to 604800")
        selector = item.get("selector", "")
        clusters = item.get("clusters", [])
        if not isinstance(clusters, list) or not all(isinstance(c, str) for c in clusters):
            raise StrategyError(f"{where}.clusters", "clusters must be a list of cluster names")
        if len(set(clusters)) != len(clusters):
            raise StrategyError(f"{where}.clusters", "a cluster is listed twice")
        if selector and clusters:
            raise StrategyError(where, "give a selector or a cluster list, not both")
        try:
            parse_selector(selector)
        except LabelError as exc:
            raise StrategyError(f"{where}.selector", str(exc)) from None
        specs.append(WaveSpec(name=str(item.get("name") or f"wave-{index + 1}")[:63], selector=selector,
                              clusters=tuple(clusters), max_parallel=max_parallel, max_failures=budget,
                              bake_seconds=bake, require_approval=bool(item.get("require_approval", False))))
    listed: dict[str, int] = {}
    for index, spec in enumerate(specs):
        for name in spec.clusters:
            if name in listed:
                raise StrategyError(f"waves[{index}].clusters",
                                    f"cluster {name!r} is already in waves[{listed[name]}]")
            listed[name] = index
    return specs


@dataclass
class PlannedWave:
    spec: WaveSpec
    clusters: list[Cluster] = field(default_factory=list)


def plan_waves(targets: Iterable[Cluster], specs: list[WaveSpec]) -> list[PlannedWave]:
    """Assign each targeted cluster to the first wave that takes it."""
    remaining = {c.name: c for c in sorted(targets, key=lambda c: c.name)}
    if not remaining:
        raise StrategyError("selector", "the target selector matches no cluster")
    plan = [PlannedWave(spec) for spec in specs]
    for index, wave in enumerate(plan):
        missing = [name for name in wave.spec.clusters if name not in remaining]
        if missing:
            raise StrategyError(f"waves[{index}].clusters",
                                f"{', '.join(missing)}: not among the rollout's targets (or in an earlier wave)")
        selector = parse_selector(wave.spec.selector)
        for name in list(remaining):
            if name in wave.spec.clusters or (not wave.spec.clusters and selector.matches(remaining[name].labels)):
                wave.clusters.append(remaining.pop(name))
    if remaining:
        raise StrategyError("waves", f"no wave takes {', '.join(sorted(remaining))}")
    for index, wave in enumerate(plan):
        if not wave.clusters:
            raise StrategyError(f"waves[{index}]", f"wave {wave.spec.name!r} gets no cluster")
    return plan
