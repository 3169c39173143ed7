"""Rollouts: the list, one rollout's live page (and the fragment it refreshes itself
with), and its actions, each a call of the rollout service the API calls.

A page that acted on what it showed must not act on what it did not: every action
form carries the state the page saw (and, to approve, the wave), and an action on a
rollout that has moved on since is refused with what changed, before anything is
done. The services' compare-and-set transitions cover the moment in between.
"""

from __future__ import annotations

import hashlib

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from fleet.console.access import allowed, check, refuse, requires
from fleet.console.errors import SERVICE_ERRORS, forbidden, message_of
from fleet.console.forms import filter_errors, given, paginate
from fleet.console.live import LiveView, live_view
from fleet.rollouts import services
from fleet.rollouts.api import RolloutFilter
from fleet.rollouts.models import Rollout
from fleet.rollouts.progress import with_progress
from fleet.rollouts.states import RolloutState

POLL_MS = 1500


def _rollouts():
    return with_progress(Rollout.objects.select_related("release__channel", "author", "rollback_of"))


@requires()
def rollout_list(request: HttpRequest) -> HttpResponse:
    filters = RolloutFilter(given(request.GET), queryset=_rollouts().order_by("-created_at", "-pk"))
    errors = filter_errors(filters)
    page = None if errors else paginate(filters.qs, request.GET)
    return render(request, "console/rollouts/list.html",
                  {"page": page, "errors": errors, "states": RolloutState.choices})


SHOW_CHOICES = [("all", "all clusters"), ("problems", "failed, blocked or in conflict"), ("running", "running"),
                ("pending", "pending"), ("finished", "finished")]


def _live(request: HttpRequest, rollout: Rollout) -> LiveView:
    """The live view, offering what this person may do (and the author no approval)."""
    live = live_view(rollout, request.GET)
    live.offers = [offer for offer in live.offers if allowed(request.user, f"rollout.{offer.action}")
                   and not (offer.action == "approve" and request.user.pk == rollout.author_id)]
    return live


@requires()
def rollout_detail(request: HttpRequest, pk: int) -> HttpResponse:
    rollout = get_object_or_404(_rollouts(), pk=pk)
    return render(request, "console/rollouts/detail.html",
                  {"rollout": rollout, "live": _live(request, rollout), "poll_ms": POLL_MS,
                   "show_choices": SHOW_CHOICES})


@requires()
def rollout_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The live parts of the page, for the page to fetch every ``POLL_MS``; 304 while
    nothing changed, and ``X-Live-Final`` once the rollout has ended."""
    rollout = get_object_or_404(_rollouts(), pk=pk)
    live = _live(request, rollout)
    html = render_to_string("console/rollouts/_live.html", {"live": live}, request)
    etag = '"' + hashlib.sha256(html.encode()).hexdigest()[:32] + '"'
    response = HttpResponseNotModified() if request.headers.get("If-None-Match") == etag else HttpResponse(html)
    response["ETag"] = etag
    response["Cache-Control"] = "no-store"
    if live.final:
        response["X-Live-Final"] = "1"
    return response


class Stale(Exception):
    """The page acted on a rollout that has moved on since it was shown."""


def _operation(request: HttpRequest, rollout: Rollout, action: str):
    """Run the service behind ``action``; returns the rollout to show afterwards."""
    if action == "start":
        return services.start(rollout)
    if action == "pause":
        return services.pause(rollout)
    if action == "resume":
        return services.resume(rollout)
    if action == "abort":
        return services.abort(rollout, request.POST.get("reason", "")[:500])
    if action == "approve":
        wave = services.approve(rollout, request.user)
        shown = request.POST.get("wave", "")
        if shown.isdigit() and wave.index != int(shown):
            raise Stale(f"the wave waiting for approval is now wave {wave.index + 1} ({wave.name}), "
                        f"not wave {int(shown) + 1}")
        return rollout
    if action == "rollback":
        created = services.rollback(rollout, request.user, scope=request.POST.get("scope", "failed"))
        return services.start(created)
    raise Http404(f"no rollout action {action!r}")


DONE = {"start": "started", "pause": "paused", "resume": "resumed",
        "abort": "is aborting: clusters in flight finish first", "approve": "approved", "rollback": "rolled back"}


@require_POST
@requires()
def rollout_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if action not in DONE:
        raise Http404(f"no rollout action {action!r}")
    refusal = check(request, f"rollout.{action}")
    if refusal is not None:
        return refusal
    rollout = get_object_or_404(Rollout.objects.select_related("release__channel"), pk=pk)
    shown = request.POST.get("state", "")
    try:
        if shown and shown != rollout.state:
            raise Stale(f"it was {shown} on your page and is {rollout.state} now")
        with transaction.atomic():  # a stale approval found afterwards is undone whole
            result = _operation(request, rollout, action)
    except Stale as exc:
        messages.error(request, f"Nothing was done to rollout #{rollout.pk}: it moved on since the page was "
                                f"shown ({exc}). Look at it again and decide.")
    except SERVICE_ERRORS as exc:
        if forbidden(exc):
            return refuse(request, message_of(exc))
        messages.error(request, message_of(exc))
    else:
        if result.pk != rollout.pk:
            messages.success(request, f"Rollback #{result.pk} of rollout #{rollout.pk} started.")
            return redirect("console:rollout", pk=result.pk)
        messages.success(request, f"Rollout #{rollout.pk} {DONE[action]}.")
    return redirect("console:rollout", pk=rollout.pk)
