"""Routes of /api/v1/: one router, each concern registering its viewsets."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from fleet.api.viewsets import READ_ROLES
from fleet.audit.api import AuditEventViewSet
from fleet.inventory.api import ChannelViewSet, ClusterViewSet, ReleaseViewSet

router = DefaultRouter()
router.register("clusters", ClusterViewSet)
router.register("channels", ChannelViewSet)
router.register("releases", ReleaseViewSet)
router.register("audit", AuditEventViewSet)
router.APIRootView.required_roles = READ_ROLES


class SchemaView(SpectacularAPIView):
    required_roles = READ_ROLES


class DocsView(SpectacularSwaggerView):
    required_roles = READ_ROLES


urlpatterns = [
    path("", include(router.urls)),
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", DocsView.as_view(url_name="schema"), name="docs"),
]
