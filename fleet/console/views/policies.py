"""Policies: the sets and their modes, waivers and when they expire, the gate's
decisions with their violations, and a form that asks the gate about pasted
manifests for a cluster (the same ``policy.evaluate`` the CI endpoint calls)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django_filters.filterset import filterset_factory

from fleet.console.access import requires
from fleet.console.errors import SERVICE_ERRORS, message_of
from fleet.console.forms import PolicyCheckForm, filter_errors, form_errors, given, paginate
from fleet.policy import services as policy
from fleet.policy.api import PolicyDecisionViewSet
from fleet.policy.choices import DecisionSource
from fleet.policy.manifests import parse_manifests
from fleet.policy.models import PolicyDecision, PolicySet, Waiver

# The API's own filter of decisions (cluster_name, allowed, release, source, dates).
DecisionFilter = filterset_factory(PolicyDecision, fields=PolicyDecisionViewSet.filterset_fields)


@requires()
def policy_index(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    waivers = list(Waiver.objects.select_related("policy_set").order_by("expires_at", "name"))
    context = {"sets": list(PolicySet.objects.order_by("name").defer("files")),
               "active": [w for w in waivers if w.expires_at > now],
               "expired": [w for w in waivers if w.expires_at <= now]}
    return render(request, "console/policies/index.html", context)


@requires()
def decision_list(request: HttpRequest) -> HttpResponse:
    query = given(request.GET)
    if "cluster" in query:  # the console's short name for the API's cluster_name
        query.setdefault("cluster_name", query.pop("cluster")[0])
    filters = DecisionFilter(query, queryset=PolicyDecision.objects.select_related("release__channel")
                             .defer("policy_sets", "errors").order_by("-created_at", "-pk"))
    errors = filter_errors(filters)
    page = None if errors else paginate(filters.qs, request.GET)
    return render(request, "console/policies/decisions.html",
                  {"page": page, "decisions": page.object_list if page else [], "errors": errors,
                   "cluster": query.get("cluster_name", ""), "allowed": query.get("allowed", "")})


@requires()
def decision_detail(request: HttpRequest, pk: int) -> HttpResponse:
    decision = get_object_or_404(PolicyDecision.objects.select_related("release__channel", "release_from__channel"),
                                 pk=pk)
    return render(request, "console/policies/decision.html", {"decision": decision})


@requires("policy.check")
def policy_check(request: HttpRequest) -> HttpResponse:
    """The gate on pasted manifests: parsed, judged by the cluster's policy sets, and
    recorded as a decision, exactly as ``POST /api/v1/policy/evaluate`` does."""
    form = PolicyCheckForm(request.POST or None, initial={"cluster": request.GET.get("cluster", "")})
    verdict = decision = None
    errors: dict[str, str] = {}
    if request.method == "POST":
        errors = form_errors(form) if not form.is_valid() else {}
        if not errors:
            try:
                objects = parse_manifests(form.cleaned_data["manifests"])
                verdict, decision = policy.evaluate(objects, cluster=form.cleaned_data["cluster"],
                                                    source=DecisionSource.API)
            except SERVICE_ERRORS as exc:
                errors = {"manifests": message_of(exc)}
    return render(request, "console/policies/check.html",
                  {"form": form, "errors": errors, "verdict": verdict.as_dict() if verdict else None,
                   "decision": decision})
