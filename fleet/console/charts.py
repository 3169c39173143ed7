"""Bar charts drawn on the server as SVG: no script, no library, and every bar
carries its number in text, so the chart reads without colour or a mouse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

ROW, LABEL_WIDTH, BAR_WIDTH = 28, 190, 300
MAX_BARS = 12


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    key: object  # what a link from the bar filters on
    percent: float
    y: int
    width: float

    @property
    def count_x(self) -> float:
        return LABEL_WIDTH + self.width + 6


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    total: int
    others: int  # clusters in the bars left out (past MAX_BARS)
    height: int
    label_width: int = LABEL_WIDTH
    bar_width: int = BAR_WIDTH

    @property
    def view_width(self) -> int:
        return self.label_width + self.bar_width + 110


def bars(items: Iterable[tuple[str, int, object]]) -> Chart:
    """``(label, count, key)`` rows, largest first, as a chart scaled to the largest."""
    rows = sorted(items, key=lambda item: -item[1])
    total = sum(count for _, count, _ in rows)
    shown, rest = rows[:MAX_BARS], rows[MAX_BARS:]
    largest = max((count for _, count, _ in shown), default=0) or 1
    chart_bars = [Bar(label if len(label) <= 28 else label[:27] + "…", count, key,
                      round(100 * count / total, 1) if total else 0.0, index * ROW,
                      round(BAR_WIDTH * count / largest, 1))
                  for index, (label, count, key) in enumerate(shown)]
    return Chart(chart_bars, total, sum(count for _, count, _ in rest), max(1, len(chart_bars)) * ROW)
