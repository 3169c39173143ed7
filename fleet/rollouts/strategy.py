"""Wave specs and the plan that assigns clusters to waves.

A strategy is an ordered list of wave specs. Each wave takes, from the clusters the
rollout targets, those its selector (or explicit list) picks and no earlier wave
took; a cluster named by two explicit lists is an error, and so is a targeted
cluster that no wave takes (it would silently never be deployed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from fleet.core.labels import LabelError, parse_selector
from fleet.inventory.models import Cluster
from fleet.rollouts.errors import StrategyError

_BUDGET_RE = re.compile(r"^(\d{1,6})(%?)$")
MAX_WAVES = 50


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
        raise StrategyError("a strategy needs at least one wave", field="waves")
    if len(raw) > MAX_WAVES:
        raise StrategyError(f"at most {MAX_WAVES} waves", field="waves")
    specs = []
    for index, item in enumerate(raw):
        where = f"waves[{index}]"
        if not isinstance(item, dict):
            raise StrategyError("each wave must be an object", field=where)
        unknown = set(item) - set(WaveSpec.__dataclass_fields__)
        if unknown:
            raise StrategyError("unknown wave field", field=f"{where}.{sorted(unknown)[0]}")
        max_parallel = item.get("max_parallel", 1)
        if not isinstance(max_parallel, int) or isinstance(max_parallel, bool) or max_parallel < 1:
            raise StrategyError("max_parallel must be an integer of at least 1", field=f"{where}.max_parallel")
        budget = str(item.get("max_failures", "0"))
        match = _BUDGET_RE.match(budget)
        if not match or (match.group(2) and int(match.group(1)) > 100):
            raise StrategyError("max_failures must be a count (2) or a percentage (10%)",
                                field=f"{where}.max_failures")
        bake = item.get("bake_seconds", 0)
        if not isinstance(bake, int) or isinstance(bake, bool) or not 0 <= bake <= 7 * 86400:
            raise StrategyError("bake_seconds must be 0 to 604800", field=f"{where}.bake_seconds")
        selector = item.get("selector", "")
        clusters = item.get("clusters", [])
        if not isinstance(clusters, list) or not all(isinstance(c, str) for c in clusters):
            raise StrategyError("clusters must be a list of cluster names", field=f"{where}.clusters")
        if len(set(clusters)) != len(clusters):
            raise StrategyError("a cluster is listed twice", field=f"{where}.clusters")
        if selector and clusters:
            raise StrategyError("give a selector or a cluster list, not both", field=where)
        try:
            parse_selector(selector)
        except LabelError as exc:
            raise StrategyError(str(exc), field=f"{where}.selector") from None
        specs.append(WaveSpec(name=str(item.get("name") or f"wave-{index + 1}")[:63], selector=selector,
                              clusters=tuple(clusters), max_parallel=max_parallel, max_failures=budget,
                              bake_seconds=bake, require_approval=bool(item.get("require_approval", False))))
    listed: dict[str, int] = {}
    for index, spec in enumerate(specs):
        for name in spec.clusters:
            if name in listed:
                raise StrategyError(f"cluster {name!r} is already in waves[{listed[name]}]",
                                    field=f"waves[{index}].clusters")
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
        raise StrategyError("the target selector matches no cluster", field="selector")
    plan = [PlannedWave(spec) for spec in specs]
    for index, wave in enumerate(plan):
        missing = [name for name in wave.spec.clusters if name not in remaining]
        if missing:
            raise StrategyError(f"{', '.join(missing)}: not among the rollout's targets (or in an earlier wave)",
                                field=f"waves[{index}].clusters")
        selector = parse_selector(wave.spec.selector)
        for name in list(remaining):
            if name in wave.spec.clusters or (not wave.spec.clusters and selector.matches(remaining[name].labels)):
                wave.clusters.append(remaining.pop(name))
    if remaining:
        raise StrategyError(f"no wave takes {', '.join(sorted(remaining))}", field="waves")
    for index, wave in enumerate(plan):
        if not wave.clusters:
            raise StrategyError(f"wave {wave.spec.name!r} gets no cluster", field=f"waves[{index}]")
    return plan
