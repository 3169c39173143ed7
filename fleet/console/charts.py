"""Bar charts drawn on the server: each bar an SVG rectangle beside its label and its
number in text, so the chart reads without colour, a mouse or script, and its labels
stay legible on a narrow window (they are HTML, not text scaled with a drawing)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MAX_BARS = 12


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    key: object  # what a link from the bar filters on
    percent: float  # of the total
    length: float  # of the largest bar, 0-100


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    total: int
    others: int  # items in the groups left out (past MAX_BARS)


def bars(items: Iterable[tuple[str, int, object]]) -> Chart:
    """``(label, count, key)`` rows, largest first, as a chart scaled to the largest."""
    rows = sorted(items, key=lambda item: -item[1])
    total = sum(count for _, count, _ in rows)
    shown, rest = rows[:MAX_BARS], rows[MAX_BARS:]
    largest = max((count for _, count, _ in shown), default=0) or 1
    return Chart([Bar(label, count, key, round(100 * count / total, 1) if total else 0.0,
                      round(100 * count / largest, 1)) for label, count, key in shown],
                 total, sum(count for _, count, _ in rest))
