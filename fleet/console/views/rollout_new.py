"""A new rollout: the form, the preview of exactly what it asks for, then creation.

The preview (``rollouts.preview``: clusters per wave, each one's rebase outcome,
policy verdict and diff counts) is shown before anything is created; the create
buttons carry a fingerprint of the inputs previewed, and inputs changed since are
previewed again instead of created unseen. Planning, validation and the rules
(protected clusters, busy clusters) are the rollout service's.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from fleet.console.access import check, refuse, requires
from fleet.console.errors import SERVICE_ERRORS, field_of, forbidden, message_of
from fleet.console.forms import NON_FIELD, RolloutForm, form_errors
from fleet.rollouts import preview, services

SHOWN_PER_WAVE = 100
EXAMPLE_WAVES = "[\n" + ",\n".join("  " + json.dumps(wave) for wave in [
    {"name": "canary", "selector": "ring=canary", "max_parallel": 1, "max_failures": "0", "bake_seconds": 60},
    {"name": "main", "max_parallel": 5, "max_failures": "10%", "require_approval": True},
]) + "\n]"


def _field_error(exc: Exception) -> dict[str, str]:
    """The error next to its form field: ``waves[1].max_parallel`` goes by ``waves``,
    with its full path in the message."""
    path = field_of(exc)
    name = path.split("[")[0].split(".")[0]
    if name not in RolloutForm.base_fields:
        name = NON_FIELD
    return {name: f"{path}: {message_of(exc)}" if path and path != name else message_of(exc)}


def _request(data: dict[str, Any]) -> services.RolloutRequest:
    template = data.get("template")
    return services.RolloutRequest(release=data["release"], selector=data["selector"], waves=data["waves"],
                                   template=template.name if template else "",
                                   health_timeout_seconds=data["health_timeout_seconds"])


def fingerprint(data: dict[str, Any]) -> str:
    """What was previewed, to tell whether the inputs changed before creating."""
    template = data.get("template")
    canonical = json.dumps([data["release"].pk, data["selector"], template.name if template else "",
                            data["waves"], data["health_timeout_seconds"]], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _worst_first(clusters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Problems at the top: errors, conflicts, denials, busy clusters, then the rest."""
    def rank(outcome: dict[str, Any]) -> int:
        if outcome.get("error"):
            return 0
        if outcome.get("rebase", {}).get("outcome") not in (None, "clean"):
            return 1
        if outcome.get("policy", {}).get("allowed") is False:
            return 2
        return 3 if outcome.get("busy_in_rollout") else 4
    return sorted(clusters, key=rank)


def _shown(result: dict[str, Any]) -> dict[str, Any]:
    waves = []
    for wave in result["waves"]:
        ordered = _worst_first(wave["clusters"])
        waves.append({**wave, "clusters": ordered[:SHOWN_PER_WAVE], "more": max(0, len(ordered) - SHOWN_PER_WAVE)})
    return {**result, "waves": waves}


@requires("rollout.preview")
def rollout_new(request: HttpRequest) -> HttpResponse:
    form = RolloutForm(request.POST or None, initial={"waves": EXAMPLE_WAVES, "health_timeout_seconds": 300,
                                                      "selector": request.GET.get("selector", "")})
    context: dict[str, Any] = {"form": form, "errors": {}, "result": None}
    if request.method == "POST":
        if not form.is_valid():
            context["errors"] = form_errors(form)
        else:
            intent = request.POST.get("intent", "preview")
            data = form.cleaned_data
            current = fingerprint(data)
            if intent in ("create", "start") and request.POST.get("previewed") == current:
                return _create(request, data, start=intent == "start", context=context)
            if intent in ("create", "start"):
                messages.warning(request, "The inputs changed since the preview: here is the preview of what "
                                          "they ask for now. Create it from here if it is what you want.")
            try:
                context["result"] = _shown(preview.preview(_request(data)))
                context["previewed"] = current
            except SERVICE_ERRORS as exc:
                if forbidden(exc):
                    return refuse(request, message_of(exc))
                context["errors"] = _field_error(exc)
    return render(request, "console/rollouts/new.html", context)


def _create(request: HttpRequest, data: dict[str, Any], *, start: bool, context: dict[str, Any]) -> HttpResponse:
    refusal = check(request, "rollout.start" if start else "rollout.create")
    if refusal is not None:
        return refusal
    try:
        with transaction.atomic():  # created and started, or neither
            rollout = services.create_rollout(_request(data), request.user)
            if start:
                services.start(rollout)
    except SERVICE_ERRORS as exc:
        if forbidden(exc):
            return refuse(request, message_of(exc))
        context["errors"] = _field_error(exc)
        return render(request, "console/rollouts/new.html", context)
    messages.success(request, f"Rollout #{rollout.pk} created{' and started' if start else ''}.")
    return redirect("console:rollout", pk=rollout.pk)
