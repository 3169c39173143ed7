"""Routes of /api/v1/: one router, each concern registering its viewsets."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from fleet.api.viewsets import READ_ROLES
from fleet.audit.api import AuditEventViewSet
from fleet.gitops.api import ClusterRepoViewSet, RepositoryCredentialViewSet
from fleet.inventory.api import ChannelViewSet, ClusterViewSet, ReleaseViewSet
from fleet.policy.api import EvaluateView, PolicyDecisionViewSet, PolicySetViewSet, WaiverViewSet
from fleet.rollouts.api import RolloutViewSet, StrategyTemplateViewSet

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
router.APIRootView.required_roles = READ_ROLES


class SchemaView(SpectacularAPIView):
    required_roles = READ_ROLES


class DocsView(SpectacularSwaggerView):
    required_roles = READ_ROLES


urlpatterns = [
    path("policy/evaluate", EvaluateView.as_view(), name="policy-evaluate"),
    path("", include(router.urls)),
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", DocsView.as_view(url_name="schema"), name="docs"),
]
