"""Admin building blocks shared by the packages."""

from __future__ import annotations

from django import forms
from django.contrib import admin


class WriteOnlyTextarea(forms.Textarea):
    """A textarea for a secret: what was typed is never rendered back, not even when the
    form is shown again with an error (as a password input with ``render_value=False``)."""

    def format_value(self, value) -> None:
        return None


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


class ViewOnlyAdmin(admin.ModelAdmin):
    """Records the system writes, shown as Django shows what one may view but not change:
    the admin's ``exclude`` and ``fields`` still decide what appears (unlike
    :class:`ReadOnlyAdminMixin`, which lists every field), so a hash can stay hidden."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
