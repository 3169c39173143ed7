"""The clusters' own API-server audit events, fleet-wide: who changed what, where and
when; only the changes outside GitOps; the top actors per cluster.

The filter is the API's (``EventFilter.from_params``: the same fields, the same errors).
The table lists the newest events and never counts them all: on tens of millions of
rows a count is the slow part, so the page says when there are more and how to narrow.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from fleet.clusteraudit import queries
from fleet.clusteraudit.errors import ClusterAuditError
from fleet.console.access import requires
from fleet.console.errors import field_of, message_of

SHOWN = 100
ACTORS = 5


@requires()
def cluster_audit(request: HttpRequest) -> HttpResponse:
    params = {key: value for key, value in request.GET.items() if value != ""}
    outside = params.pop("outside", "") == "true"
    rows, actors, errors = [], [], {}
    try:
        query = queries.EventFilter.from_params(params)
        found = (queries.outside_gitops if outside else queries.events)(request.user, query)
        rows = list(found[:SHOWN + 1])
        actors = queries.top_actors(request.user, query, limit=ACTORS)
    except ClusterAuditError as exc:
        errors[field_of(exc) or "since"] = message_of(exc)
    return render(request, "console/clusteraudit/list.html", {
        "events": rows[:SHOWN], "more": len(rows) > SHOWN, "shown": SHOWN, "actors": actors, "errors": errors,
        "outside": outside, "values": request.GET})
