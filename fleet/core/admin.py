"""Admin building blocks shared by the packages."""

from __future__ import annotations


class ReadOnlyAdminMixin:
    """For records the system writes (audit events, waves, deployments): look, never touch."""

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
