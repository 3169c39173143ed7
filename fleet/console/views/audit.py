"""The audit trail: the API's own filter over the chain, a page at a time, its export
(the API's streamed CSV/JSON with the same filter) and the chain's verification."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from fleet.audit.api import AuditEventFilter
from fleet.audit.models import AuditEvent
from fleet.audit.services import latest_verification, verify_and_record
from fleet.console.access import requires
from fleet.console.forms import filter_errors, given, paginate
from fleet.core.context import SOURCES


@requires()
def audit_list(request: HttpRequest) -> HttpResponse:
    filters = AuditEventFilter(given(request.GET), queryset=AuditEvent.objects.order_by("-sequence"))
    errors = filter_errors(filters)
    page = None if errors else paginate(filters.qs, request.GET)
    query = given(request.GET)
    query.pop("page", None)
    return render(request, "console/audit/list.html",
                  {"page": page, "events": page.object_list if page else [], "errors": errors,
                   "sources": SOURCES, "export_query": query.urlencode(), "verification": latest_verification()})


@requires()
def audit_verify(request: HttpRequest) -> HttpResponse:
    """Walk the whole chain now (the hourly task does the same) and say where it breaks."""
    return render(request, "console/audit/verify.html", {"report": verify_and_record()})
