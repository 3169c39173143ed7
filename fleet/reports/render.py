"""Reports as JSON, CSV (one table) and PDF (the document a person hands an auditor:
title, purpose, scope, period, generated at and by, the chain head, page numbers)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from fpdf import FPDF
from fpdf.fonts import FontFace

from fleet.reports.document import Report, Table
from fleet.reports.scope import ReportError

FORMATS = ("json", "csv", "pdf")
CONTENT_TYPES = {"json": "application/json", "csv": "text/csv", "pdf": "application/pdf"}


def _cell(value: Any) -> str:
    """A value as people read it in a grid (JSON keeps the structure)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _pdf_cell(column: str, value: Any) -> str:
    text = _cell(value)
    return text[:12] if column.endswith("_sha") else text[:400]


def _widths(table: Table) -> tuple[float, ...]:
    """Column widths from their content, so a SHA column does not get what a reason needs."""
    sample = table.rows[:200]
    return tuple(min(max(len(column) * 0.6, *(len(_pdf_cell(column, row[i])) for row in sample), 4), 34)
                 for i, column in enumerate(table.columns))


def to_json(report: Report) -> bytes:
    return json.dumps(report.as_dict(), indent=2, sort_keys=True, ensure_ascii=False).encode()


def to_csv(report: Report, table_name: str = "") -> bytes:
    """One table (the report's first unless named): CSV is one grid, JSON has them all."""
    table = report.table(table_name) if table_name else (report.tables[0] if report.tables else None)
    if table is None:
        names = ", ".join(t.name for t in report.tables)
        raise ReportError(f"no table {table_name!r} in the {report.kind} report: choose one of {names}",
                          field="table")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.columns)
    writer.writerows([_cell(v) for v in row] for row in table.rows)
    return out.getvalue().encode()


def _latin1(text: str) -> str:
    """The PDF's core fonts are Latin-1: anything else is shown escaped, never dropped."""
    return text.encode("latin-1", "backslashreplace").decode("latin-1")


class _Document(FPDF):
    def __init__(self, report: Report):
        super().__init__(orientation="landscape", format="A4")
        self.report = report
        self.set_title(_latin1(report.title))
        self.set_creator("Fleet")
        self.set_author(_latin1(report.generated_by))
        self.set_auto_page_break(auto=True, margin=15)
        self.set_margins(12, 12, 12)

    def header(self) -> None:
        if self.page_no() == 1:
            return
        self.set_font("Helvetica", "", 7)
        self.cell(0, 5, _latin1(f"{self.report.title}  |  {self.report.scope.describe()}"), align="L")
        self.ln(7)

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font("Helvetica", "", 7)
        head = self.report.chain_head
        self.cell(0, 5, _latin1(f"Generated {self.report.generated_at:%Y-%m-%d %H:%M:%S} UTC by "
                                f"{self.report.generated_by}  |  audit chain head #{head.sequence} "
                                f"{head.hash[:16]}"), align="L")
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="R")


def _key_values(pdf: _Document, pairs: list[tuple[str, str]]) -> None:
    with pdf.table(col_widths=(45, 225), first_row_as_headings=False, line_height=5) as table:
        for key, value in pairs:
            row = table.row()
            row.cell(_latin1(key), style=FontFace(emphasis="BOLD"))
            row.cell(_latin1(value))


def _table(pdf: _Document, table: Table) -> None:
    pdf.set_font("Helvetica", "B", 10)
    pdf.ln(3)
    pdf.cell(0, 7, _latin1(f"{table.title} ({len(table.rows)})"), new_x="LMARGIN", new_y="NEXT")
    if table.note:
        pdf.set_font("Helvetica", "I", 7)
        pdf.multi_cell(0, 4, _latin1(table.note), new_x="LMARGIN", new_y="NEXT")
    if not table.rows:
        pdf.set_font("Helvetica", "", 8)
        pdf.cell(0, 6, "None in this period.", new_x="LMARGIN", new_y="NEXT")
        return
    pdf.set_font("Helvetica", "", 6 if len(table.columns) > 8 else 7.5)
    with pdf.table(line_height=3.6 if len(table.columns) > 8 else 4.2, repeat_headings=1, col_widths=_widths(table),
                   headings_style=FontFace(emphasis="BOLD", fill_color=(225, 230, 238))) as grid:
        grid.row([_latin1(c.replace("_", " ")) for c in table.columns])
        for values in table.rows:
            grid.row([_latin1(_pdf_cell(c, v)) for c, v in zip(table.columns, values, strict=True)])


def to_pdf(report: Report) -> bytes:
    pdf = _Document(report)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _latin1(report.title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    pdf.multi_cell(0, 4.5, _latin1(report.purpose), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Helvetica", "", 8)
    head = report.chain_head
    _key_values(pdf, [
        ("Scope", f"clusters: {report.scope.selector_text or 'all'}"),
        ("Period", f"{report.scope.since:%Y-%m-%d %H:%M:%S} to {report.scope.until:%Y-%m-%d %H:%M:%S} UTC "
                   "(end excluded)"),
        ("Generated at", f"{report.generated_at:%Y-%m-%d %H:%M:%S} UTC"),
        ("Generated by", report.generated_by),
        ("Audit chain head", f"event #{head.sequence}, hash {head.hash}"),
        *((key.replace("_", " ").capitalize(), _cell(value)) for key, value in report.summary.items()),
    ])
    for note in report.notes:
        pdf.set_font("Helvetica", "I", 7.5)
        pdf.multi_cell(0, 4, _latin1(note), new_x="LMARGIN", new_y="NEXT")
    for table in report.tables:
        _table(pdf, table)
    return bytes(pdf.output())


def render(report: Report, fmt: str, table: str = "") -> bytes:
    if fmt == "json":
        return to_json(report)
    if fmt == "csv":
        return to_csv(report, table)
    if fmt == "pdf":
        return to_pdf(report)
    raise ReportError(f"unknown format {fmt!r}: use json, csv or pdf", field="format")
