"""Clusters: the filtered, sorted, paginated table, one cluster's page, and its actions.

The table takes the API's own filter (``ClusterFilter``: label selector, channel,
status, flags), plus free text, sorting and the release a cluster runs, all in the URL
so a filtered view can be shared. Pause and pin go through the inventory's audited
update, as a PATCH of the API does.
"""

from __future__ import annotations

from django.contrib import messages
from django.db.models import CharField, Q
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from fleet.audit.models import AuditEvent
from fleet.console.access import requires
from fleet.console.errors import SERVICE_ERRORS, message_of
from fleet.console.forms import ClusterQuery, filter_errors, form_errors, given, paginate
from fleet.console.views.overview import quiet_clusters
from fleet.drift.models import ClusterDrift
from fleet.gitops import services as gitops
from fleet.inventory import services as inventory
from fleet.inventory.api import ClusterFilter
from fleet.inventory.choices import ClusterStatus
from fleet.inventory.models import Channel, Cluster
from fleet.policy.models import PolicyDecision
from fleet.rollouts.deployed import deployed_on, running
from fleet.rollouts.models import ClusterDeployment

RECENT = 10
TRAIL = 25
HISTORY_WAIT = 5.0  # seconds a page waits for a workspace a deployment holds


def _search(queryset, text: str):
    """Free text over name, channel, API server, status message and labels (keys and values)."""
    return queryset.annotate(labels_text=Cast("labels", CharField())).filter(
        Q(name__icontains=text) | Q(channel__name__icontains=text) | Q(api_server_url__icontains=text)
        | Q(status_message__icontains=text) | Q(labels_text__icontains=text))


def _filtered(request: HttpRequest) -> tuple[object, dict[str, str], ClusterQuery]:
    """The clusters the URL asks for, or None with the errors when it cannot be answered."""
    data = given(request.GET)
    filters = ClusterFilter(data, queryset=Cluster.objects.select_related("channel"))
    query = ClusterQuery(data)
    errors = {**filter_errors(filters), **form_errors(query)}
    if errors:
        return None, errors, query
    clusters = filters.qs
    options = query.cleaned_data
    if options["q"]:
        clusters = _search(clusters, options["q"])
    if options["contact"] == "quiet":
        clusters = clusters.filter(pk__in=quiet_clusters().values("pk"))
    if options["release"] != "":
        clusters = running(clusters, None if options["release"] == "none" else options["release"])
    return clusters.order_by(*query.ordering("name")), errors, query


@requires()
def cluster_list(request: HttpRequest) -> HttpResponse:
    clusters, errors, query = _filtered(request)
    page = deployed = None
    if clusters is not None:
        page = paginate(clusters, request.GET, query.cleaned_data["per_page"])
        deployed = deployed_on(cluster.pk for cluster in page.object_list)
        for cluster in page.object_list:
            cluster.deployed = deployed.get(cluster.pk)
    context = {"page": page, "errors": errors, "default_sort": "name",
               "channels": Channel.objects.order_by("name").values_list("name", flat=True),
               "statuses": ClusterStatus.choices, "per_page_choices": (25, 50, 100),
               "status_values": request.GET.getlist("status")}
    return render(request, "console/clusters/list.html", context)


@requires()
def cluster_detail(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_object_or_404(Cluster.objects.select_related("channel"), name=name)
    context = {
        "cluster": cluster,
        "deployed": deployed_on([cluster.pk]).get(cluster.pk),
        "deployments": list(ClusterDeployment.objects.filter(cluster=cluster)
                            .select_related("rollout__release__channel", "wave").order_by("-pk")[:RECENT]),
        "decisions": list(PolicyDecision.objects.filter(cluster_name=cluster.name)
                          .select_related("release__channel").order_by("-created_at", "-pk")[:RECENT]),
        "events": list(AuditEvent.objects.filter(cluster=cluster.name).order_by("-sequence")[:TRAIL]),
        "drift": ClusterDrift.objects.filter(cluster=cluster).first(),
    }
    return render(request, "console/clusters/detail.html", context)


@requires()
def cluster_history(request: HttpRequest, name: str) -> HttpResponse:
    """The deployment history from the cluster's deploy tags: a git fetch, so the page
    loads it separately and the rest of the cluster's page never waits for git."""
    cluster = get_object_or_404(Cluster.objects.select_related("channel"), name=name)
    try:
        records, error = gitops.history(cluster, wait=HISTORY_WAIT), ""
    except SERVICE_ERRORS as exc:
        records, error = [], message_of(exc)
    template = "_history.html" if request.headers.get("X-Fragment") else "history.html"
    return render(request, f"console/clusters/{template}", {"cluster": cluster, "records": records, "error": error})


def _toggle(request: HttpRequest, name: str, field: str, words: tuple[str, str]) -> HttpResponse:
    cluster = get_object_or_404(Cluster.objects.select_related("channel"), name=name)
    value = request.POST.get("value") == "true"
    try:
        inventory.update_cluster(cluster, {field: value})
    except SERVICE_ERRORS as exc:
        messages.error(request, f"{cluster.name}: {message_of(exc)}")
    else:
        messages.success(request, f"{cluster.name} is {words[0] if value else words[1]}.")
    return redirect("console:cluster", name=cluster.name)


@require_POST
@requires("cluster.pause")
def cluster_pause(request: HttpRequest, name: str) -> HttpResponse:
    return _toggle(request, name, "paused", ("paused: no rollout starts on it", "no longer paused"))


@require_POST
@requires("cluster.pin")
def cluster_pin(request: HttpRequest, name: str) -> HttpResponse:
    return _toggle(request, name, "pinned", ("pinned to its current release", "no longer pinned"))
