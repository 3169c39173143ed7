"""The console's pages, mounted at ``/`` by ``fleet/urls.py``."""

from django.contrib.auth import views as auth_views
from django.urls import path

from fleet.console.views import (
    audit,
    clusteraudit,
    clusters,
    drift,
    overview,
    policies,
    releases,
    rollout_new,
    rollouts,
)

app_name = "console"

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("login/", auth_views.LoginView.as_view(template_name="console/login.html", redirect_authenticated_user=True),
         name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("clusters/", clusters.cluster_list, name="clusters"),
    path("clusters/<str:name>/", clusters.cluster_detail, name="cluster"),
    path("clusters/<str:name>/history/", clusters.cluster_history, name="cluster-history"),
    path("clusters/<str:name>/pause/", clusters.cluster_pause, name="cluster-pause"),
    path("clusters/<str:name>/pin/", clusters.cluster_pin, name="cluster-pin"),
    path("clusters/<str:name>/drift/", drift.cluster_drift, name="cluster-drift"),
    path("clusters/<str:name>/drift/scan/", drift.cluster_drift_scan, name="cluster-drift-scan"),
    path("clusters/<str:name>/drift/heal/", drift.cluster_drift_heal, name="cluster-drift-heal"),
    path("clusters/<str:name>/drift/acknowledge/", drift.cluster_drift_acknowledge, name="cluster-drift-acknowledge"),
    path("drift/", drift.drift_overview, name="drift"),
    path("drift/scan/", drift.drift_scan_selector, name="drift-scan"),
    path("rollouts/", rollouts.rollout_list, name="rollouts"),
    path("rollouts/new/", rollout_new.rollout_new, name="rollout-new"),
    path("rollouts/<int:pk>/", rollouts.rollout_detail, name="rollout"),
    path("rollouts/<int:pk>/live/", rollouts.rollout_live, name="rollout-live"),
    path("rollouts/<int:pk>/<slug:action>/", rollouts.rollout_action, name="rollout-action"),
    path("policies/", policies.policy_index, name="policies"),
    path("policies/decisions/", policies.decision_list, name="decisions"),
    path("policies/decisions/<int:pk>/", policies.decision_detail, name="decision"),
    path("policies/check/", policies.policy_check, name="policy-check"),
    path("audit/", audit.audit_list, name="audit"),
    path("audit/verify/", audit.audit_verify, name="audit-verify"),
    path("cluster-audit/", clusteraudit.cluster_audit, name="cluster-audit"),
    path("releases/", releases.release_index, name="releases"),
]
