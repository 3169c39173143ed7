"""What every report is over: a period and a cluster selector, checked as input.

A bad value is the caller's mistake and gets a ``report.invalid`` error naming the
field (a 400 over the API); an empty period is not a mistake and gives an empty report.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from fleet.core.errors import FleetError
from fleet.core.labels import LabelError, Selector, parse_selector
from fleet.inventory.models import Cluster

DEFAULT_DAYS = 30
MAX_DAYS = 3 * 366


class ReportError(FleetError):
    domain = "report"
    code = "invalid"


def parse_time(text: str, field: str) -> datetime.datetime:
    """An ISO 8601 time, or a date (its midnight, UTC); a time without a zone is UTC."""
    try:
        value = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(f"{text!r} is not an ISO 8601 date or time (2026-01-31 or 2026-01-31T12:00:00Z)",
                          field=field) from None
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


@dataclass(frozen=True)
class ReportScope:
    since: datetime.datetime
    until: datetime.datetime
    selector_text: str = ""

    @property
    def selector(self) -> Selector:
        return parse_selector(self.selector_text)

    def clusters(self) -> list[Cluster]:
        return list(Cluster.objects.filter(self.selector.to_q("labels")).select_related("channel").order_by("name"))

    def cluster_names(self) -> set[str]:
        return {c.name for c in self.clusters()}

    def as_dict(self) -> dict[str, Any]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat(),
                "selector": self.selector_text or "(all clusters)"}

    def describe(self) -> str:
        return (f"{self.since:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M} UTC, clusters: "
                f"{self.selector_text or 'all'}")


def scope_from(params: Mapping[str, str], now: datetime.datetime | None = None) -> ReportScope:
    """The scope from request or command parameters: ``since``, ``until``, ``selector``."""
    now = now or timezone.now()
    until = parse_time(params["until"], "until") if params.get("until") else now
    since = parse_time(params["since"], "since") if params.get("since") else until - datetime.timedelta(
        days=DEFAULT_DAYS)
    if since >= until:
        raise ReportError(f"the period is empty or reversed: since {since.isoformat()} is not before until "
                          f"{until.isoformat()}", field="until")
    if until - since > datetime.timedelta(days=MAX_DAYS):
        raise ReportError(f"a report covers at most {MAX_DAYS} days; split the period", field="since")
    selector = (params.get("selector") or "").strip()
    try:
        parse_selector(selector)
    except LabelError as exc:
        raise ReportError(str(exc), field="selector") from None
    return ReportScope(since, until, selector)
