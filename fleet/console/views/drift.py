"""Drift: the fleet's summary, one cluster's drift as a coloured diff, and the acts on it.

Everything shown comes from ``fleet.drift.services`` (the same dicts the API returns),
and every act goes through the same service calls the API makes, which check the role
again: scan, heal, acknowledge, and a scan of every cluster a selector matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from fleet.clusteraudit.models import AuditSource
from fleet.console.access import requires
from fleet.console.errors import SERVICE_ERRORS, message_of
from fleet.drift import services as drift
from fleet.drift.errors import DriftError
from fleet.inventory.models import Cluster

SUMMARY_ROWS = 100


@dataclass(frozen=True)
class DiffLine:
    """One line of a unified diff and how it reads: ``file``, ``hunk``, ``del``, ``add``."""

    kind: str
    text: str


def diff_lines(text: str) -> list[DiffLine]:
    """A unified diff as lines tagged for colour *and* for a prefix screen readers read
    (the ``-``/``+`` stay in the text), as ``kubectl diff`` shows it in a terminal."""
    lines = []
    for line in text.splitlines():
        if line.startswith(("---", "+++")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("-"):
            kind = "del"
        elif line.startswith("+"):
            kind = "add"
        else:
            kind = "context"
        lines.append(DiffLine(kind, line))
    return lines


@requires()
def drift_overview(request: HttpRequest) -> HttpResponse:
    """The fleet's drift, narrowed by a label selector, grouped by a label if asked."""
    selector, label = request.GET.get("selector", "").strip(), request.GET.get("label", "").strip()
    summary, error, oldest_since = None, "", None
    try:
        summary = drift.summary(selector=selector, label=label, limit=SUMMARY_ROWS, user=request.user)
    except DriftError as exc:
        error = message_of(exc)
    if summary and summary["oldest_open_drift"]:  # the summary is the API's: times as ISO text
        oldest_since = datetime.fromisoformat(summary["oldest_open_drift"]["since"])
    return render(request, "console/drift/overview.html", {"summary": summary, "selector": selector, "label": label,
                                                          "error": error, "oldest_since": oldest_since})


@requires()
def cluster_drift(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_object_or_404(Cluster.objects.select_related("channel"), name=name)
    return render(request, "console/drift/cluster.html", {
        "cluster": cluster, "detail": drift.cluster_detail(cluster, user=request.user),
        "audit_sources": AuditSource.objects.filter(cluster=cluster).exists(),
        "diff": diff_lines(drift.unified_diff(cluster, user=request.user))})


def _act(request: HttpRequest, name: str, act, done: str) -> HttpResponse:
    cluster = get_object_or_404(Cluster, name=name)
    try:
        act(cluster, user=request.user)
    except SERVICE_ERRORS as exc:
        messages.error(request, f"{cluster.name}: {message_of(exc)}")
    else:
        messages.success(request, f"{cluster.name}: {done}")
    return redirect("console:cluster-drift", name=cluster.name)


@require_POST
@requires("drift.scan")
def cluster_drift_scan(request: HttpRequest, name: str) -> HttpResponse:
    return _act(request, name, drift.request_scan, "scan requested; this page shows its result once it ran.")


@require_POST
@requires("drift.heal")
def cluster_drift_heal(request: HttpRequest, name: str) -> HttpResponse:
    return _act(request, name, drift.request_heal,
                "heal requested: the drifted objects are re-applied from the deployed tag, through the pipeline.")


@require_POST
@requires("drift.acknowledge")
def cluster_drift_acknowledge(request: HttpRequest, name: str) -> HttpResponse:
    return _act(request, name, drift.acknowledge, "drift acknowledged: self-heal and rollouts may act on it again.")


@require_POST
@requires("drift.scan")
def drift_scan_selector(request: HttpRequest) -> HttpResponse:
    selector = request.POST.get("selector", "").strip()
    try:
        count = drift.request_selector_scan(selector, user=request.user)
    except SERVICE_ERRORS as exc:
        messages.error(request, message_of(exc))
    else:
        messages.success(request, f"scan requested for {count} cluster{'s' if count != 1 else ''}"
                                  f"{f' matching {selector}' if selector else ''}.")
    response = redirect("console:drift")
    if selector:
        response["Location"] += f"?selector={selector}"
    return response
