"""A cluster's mode (report, heal, freeze) and heal windows.

The cluster's own ``ClusterDrift.mode`` wins; else the first ``ModeRule`` whose
selector matches its labels (highest priority, then name); else ``report``. Heal
windows (``"22:00-06:00"``, UTC, may wrap midnight) say when self-heal may run;
a rule without windows heals at any time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from datetime import time as dtime
from typing import Any

from fleet.core.labels import LabelError, parse_selector
from fleet.drift.choices import Mode
from fleet.drift.errors import DriftError
from fleet.drift.models import ClusterDrift, ModeRule

_WINDOW_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
MAX_WINDOWS = 12


@dataclass(frozen=True)
class EffectiveMode:
    mode: str
    source: str  # "cluster", "rule <name>", or "default"
    windows: tuple[tuple[dtime, dtime], ...] = ()

    def may_heal_at(self, when: datetime) -> bool:
        if not self.windows:
            return True
        now = when.time().replace(second=0, microsecond=0)
        return any(start <= now < end if start < end else (now >= start or now < end)
                   for start, end in self.windows)


def parse_windows(windows: Any, field: str = "heal_windows") -> tuple[tuple[dtime, dtime], ...]:
    if not isinstance(windows, list) or len(windows) > MAX_WINDOWS:
        raise DriftError(f"heal_windows must be a list of at most {MAX_WINDOWS} \"HH:MM-HH:MM\" ranges", field=field)
    parsed = []
    for index, text in enumerate(windows):
        match = _WINDOW_RE.match(text) if isinstance(text, str) else None
        if match is None:
            raise DriftError(f"{text!r} is not a window: use \"HH:MM-HH:MM\" in UTC, as \"22:00-06:00\"",
                             field=f"{field}[{index}]")
        h1, m1, h2, m2 = map(int, match.groups())
        if (h1, m1) == (h2, m2):
            raise DriftError(f"{text!r} is an empty window", field=f"{field}[{index}]")
        parsed.append((dtime(h1, m1), dtime(h2, m2)))
    return tuple(parsed)


def validate_rule(data: Mapping[str, Any]) -> dict[str, Any]:
    selector = data.get("cluster_selector", "") or ""
    try:
        parse_selector(selector)
    except LabelError as exc:
        raise DriftError(f"bad cluster selector: {exc.message}", field="cluster_selector") from None
    if data.get("mode") not in Mode.values:
        raise DriftError(f"mode must be one of {', '.join(Mode.values)}", field="mode")
    parse_windows(data.get("heal_windows") or [])
    return {**data, "cluster_selector": selector, "heal_windows": list(data.get("heal_windows") or [])}


def effective(drift: ClusterDrift | None, labels: Mapping[str, str],
              rules: Iterable[ModeRule] | None = None) -> EffectiveMode:
    rules = list(rules) if rules is not None else list(ModeRule.objects.all())
    matching = next((rule for rule in rules if parse_selector(rule.cluster_selector or "").matches(labels)), None)
    windows = parse_windows(matching.heal_windows) if matching else ()
    if drift is not None and drift.mode:
        return EffectiveMode(drift.mode, "cluster", windows)
    if matching is not None:
        return EffectiveMode(matching.mode, f"rule {matching.name}", windows)
    return EffectiveMode(Mode.REPORT, "default")
