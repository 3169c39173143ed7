"""A report as data: a title, its scope, key figures and tables; rendered as JSON,
CSV or PDF by ``render``. Every report records the audit chain head it was built
from, so a reader can check later that the records behind it were not changed."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from fleet.audit.services import ChainHead
from fleet.reports.scope import ReportScope


@dataclass
class Table:
    name: str  # a slug: the CSV export picks a table by it
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    note: str = ""

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


@dataclass
class Report:
    kind: str
    title: str
    purpose: str  # what it proves, and to whom (the PDF's first paragraph)
    scope: ReportScope
    generated_at: datetime.datetime
    generated_by: str
    chain_head: ChainHead
    summary: dict[str, Any] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self, name: str) -> Table | None:
        return next((t for t in self.tables if t.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "title": self.title, "purpose": self.purpose, "scope": self.scope.as_dict(),
                "generated_at": self.generated_at.isoformat(), "generated_by": self.generated_by,
                "chain_head": self.chain_head.as_dict(), "summary": self.summary,
                "tables": {t.name: {"title": t.title, "note": t.note, "rows": t.records()} for t in self.tables},
                "notes": self.notes}


def iso(value: datetime.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def seconds_between(start: datetime.datetime | None, end: datetime.datetime | None) -> float | None:
    return round((end - start).total_seconds(), 1) if start and end else None
