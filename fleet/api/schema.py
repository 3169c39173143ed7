"""The OpenAPI schema and its docs page, readable by any role (deny by default still
holds: they declare the role they need like every other view). What the schema says of
each operation is ``fleet.api.openapi``'s."""

from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from fleet.api.viewsets import READ_ROLES


class SchemaView(SpectacularAPIView):
    required_roles = READ_ROLES


class DocsView(SpectacularSwaggerView):
    required_roles = READ_ROLES
