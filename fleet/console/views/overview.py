"""The fleet at a glance: clusters by status, channel and release (the version spread),
rollouts in flight, policy denials and waivers running out, clusters gone quiet.

Every figure is an aggregate the database computes, so the page costs the same
handful of queries at ten clusters or ten thousand.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, F, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from fleet.console.access import requires
from fleet.console.charts import bars
from fleet.drift.choices import DriftState
from fleet.drift.models import ClusterDrift
from fleet.inventory.choices import ClusterStatus
from fleet.inventory.models import Cluster
from fleet.policy.models import PolicyDecision, Waiver
from fleet.rollouts.deployed import release_spread
from fleet.rollouts.models import Rollout
from fleet.rollouts.progress import with_progress
from fleet.rollouts.states import ROLLOUT_ACTIVE

# A cluster is probed every minute; ten minutes without an answer is worth a look.
QUIET_AFTER = timedelta(minutes=10)
DENIALS_WITHIN = timedelta(hours=24)
WAIVERS_WITHIN = timedelta(days=7)
LISTED = 8


def quiet_clusters():
    """Clusters that have not answered a probe for :data:`QUIET_AFTER` (or ever)."""
    cutoff = timezone.now() - QUIET_AFTER
    return Cluster.objects.filter(Q(last_contact_at__lt=cutoff) | Q(last_contact_at__isnull=True))


@requires()
def overview(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    statuses = dict(Cluster.objects.order_by().values_list("status").annotate(n=Count("pk")))
    by_status = [(value, label, statuses.get(value, 0)) for value, label in ClusterStatus.choices]
    by_channel = list(Cluster.objects.order_by().values_list("channel__name").annotate(n=Count("pk"))
                      .order_by("-n", "channel__name"))
    spread = release_spread()
    denials = PolicyDecision.objects.filter(allowed=False, created_at__gte=now - DENIALS_WITHIN)
    quiet = quiet_clusters()
    drift_rows = list(ClusterDrift.objects.order_by().values_list("state").annotate(
        n=Count("pk"), contested=Count("pk", filter=Q(contested_at__isnull=False))))
    drift_states = {state: n for state, n, _ in drift_rows}
    unscanned = sum(statuses.values()) - sum(drift_states.values())  # no drift row yet: unknown
    drift_states[DriftState.UNKNOWN] = drift_states.get(DriftState.UNKNOWN, 0) + unscanned
    context = {
        "total": sum(statuses.values()),
        "by_status": by_status,
        "by_channel": by_channel,
        "spread": bars([(str(release) if release else "not deployed yet", count,
                         release.pk if release else "none") for release, count in spread]),
        "rollouts": list(with_progress(Rollout.objects.filter(state__in=ROLLOUT_ACTIVE)
                                       .select_related("release__channel", "author")).order_by("-created_at")[:LISTED]),
        "denial_count": denials.count(),
        "denials": list(denials.order_by("-created_at")[:LISTED]),
        "waivers": list(Waiver.objects.filter(expires_at__gt=now, expires_at__lte=now + WAIVERS_WITHIN)
                        .select_related("policy_set").order_by("expires_at")[:LISTED]),
        "quiet_count": quiet.count(),
        "quiet": list(quiet.select_related("channel")
                      .order_by(F("last_contact_at").asc(nulls_first=True), "name")[:LISTED]),
        "quiet_minutes": int(QUIET_AFTER.total_seconds() // 60),
        "drift_states": [(state, drift_states.get(state, 0)) for state in DriftState.values],
        "drift_contested": sum(contested for _, _, contested in drift_rows),
        "drift_oldest": (ClusterDrift.objects.filter(state=DriftState.DRIFTED).select_related("cluster")
                         .order_by("first_drift_observed_at").first()),
    }
    return render(request, "console/overview.html", context)
