"""The project's routes: each package's API registered on one router (as NetBox's
project urls include every app's), the admin at ``/admin/``, and the console at ``/``.

This module sits at the top of the layers: it imports the packages' ``api`` modules,
and no package imports it.
"""

from django.contrib import admin
from django.urls import include, path, re_path
from rest_framework.routers import DefaultRouter

from fleet.api.schema import DocsView, SchemaView
from fleet.api.viewsets import READ_ROLES
from fleet.audit.api import AuditEventViewSet
from fleet.clusteraudit.api import (
    AuditSourceViewSet,
    EventListView,
    IngestView,
    OutsideGitOpsView,
    TopActorsView,
    WritesView,
)
from fleet.drift.api import ClusterDriftViewSet, IgnoreRuleViewSet, ModeRuleViewSet, SelectorScanView, SummaryView
from fleet.gitops.api import ClusterRepoViewSet, RepositoryCredentialViewSet
from fleet.inventory.api import ChannelViewSet, ClusterViewSet, ReleaseViewSet
from fleet.policy.api import EvaluateView, PolicyDecisionViewSet, PolicySetViewSet, WaiverViewSet
from fleet.reports.api import ReportView
from fleet.rollouts.api import RolloutViewSet, StrategyTemplateViewSet

admin.site.site_header = "Fleet control plane"
admin.site.site_title = "Fleet"

router = DefaultRouter()
router.register("clusters", ClusterViewSet)
router.register("channels", ChannelViewSet)
router.register("releases", ReleaseViewSet)
router.register("audit", AuditEventViewSet)
router.register("rollouts", RolloutViewSet, basename="rollout")
router.register("strategy-templates", StrategyTemplateViewSet)
router.register("policy/sets", PolicySetViewSet)
router.register("policy/waivers", WaiverViewSet)
router.register("policy/decisions", PolicyDecisionViewSet)
router.register("gitops", ClusterRepoViewSet, basename="gitops")
router.register("repository-credentials", RepositoryCredentialViewSet)
router.register("drift/clusters", ClusterDriftViewSet, basename="drift-cluster")
router.register("drift/ignore-rules", IgnoreRuleViewSet)
router.register("drift/mode-rules", ModeRuleViewSet)
router.register("cluster-audit/sources", AuditSourceViewSet)
router.APIRootView.required_roles = READ_ROLES

api_urls = [
    path("policy/evaluate", EvaluateView.as_view(), name="policy-evaluate"),
    path("reports/<str:kind>/", ReportView.as_view(), name="report"),
    path("drift/", SummaryView.as_view(), name="drift-summary"),
    path("drift/scan/", SelectorScanView.as_view(), name="drift-scan"),
    # kube-apiserver's audit webhook: the cluster's ingest credential, not a user's (fleet/clusteraudit/api.py)
    # client-go drops the trailing slash of a kubeconfig's server URL, and a redirect would turn its POST into a GET
    re_path(r"^cluster-audit/ingest/(?P<cluster>[^/]+)/?$", IngestView.as_view(), name="cluster-audit-ingest"),
    path("cluster-audit/events/", EventListView.as_view(), name="cluster-audit-events"),
    path("cluster-audit/outside-gitops/", OutsideGitOpsView.as_view(), name="cluster-audit-outside-gitops"),
    path("cluster-audit/top-actors/", TopActorsView.as_view(), name="cluster-audit-top-actors"),
    path("cluster-audit/writes/", WritesView.as_view(), name="cluster-audit-writes"),
    path("", include(router.urls)),
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", DocsView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    path("api/v1/", include(api_urls)),
    path("admin/", admin.site.urls),
    path("", include("fleet.console.urls")),
]
