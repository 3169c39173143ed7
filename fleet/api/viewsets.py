"""The base viewset every endpoint builds on.

It fixes the role each action needs, and routes writes through the audited
services (``fleet.audit.services``), so no endpoint can write without an audit
event or with a weaker permission than intended.
"""

from __future__ import annotations

from typing import Any

from rest_framework import viewsets

from fleet.accounts.roles import Role
from fleet.audit import services as audit

READ_ROLES = {"read": Role.VIEWER}
WRITE_ROLES = {"read": Role.VIEWER, "write": Role.OPERATOR}


class BaseReadOnlyViewSet(viewsets.ReadOnlyModelViewSet):
    required_roles: dict[str, Role] = READ_ROLES


class BaseModelViewSet(viewsets.ModelViewSet):
    """CRUD with audit; subclasses override the ``save_*`` hooks for domain rules."""

    required_roles: dict[str, Role] = WRITE_ROLES
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def perform_create(self, serializer) -> None:
        serializer.instance = self._as_listed(self.create_object(dict(serializer.validated_data)))

    def perform_update(self, serializer) -> None:
        serializer.instance = self._as_listed(self.update_object(serializer.instance, dict(serializer.validated_data)))

    def _as_listed(self, instance):
        """The object as the queryset gives it (with its annotations, e.g. a channel's
        ``cluster_count``), so a write answers with every field the schema promises."""
        return self.get_queryset().get(pk=instance.pk)

    def perform_destroy(self, instance) -> None:
        audit.delete(instance)

    def create_object(self, data: dict[str, Any]):
        return audit.create(self.get_queryset().model(**data))

    def update_object(self, instance, data: dict[str, Any]):
        return audit.update(instance, data)
