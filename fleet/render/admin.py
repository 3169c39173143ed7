"""The render cache in the Django admin, view-only: renders write it."""

from __future__ import annotations

from django.contrib import admin

from fleet.core.admin import ViewOnlyAdmin
from fleet.render.models import RenderedSet


@admin.register(RenderedSet)
class RenderedSetAdmin(ViewOnlyAdmin):
    """The cache, by key; its objects are never shown (encrypted, and a Secret's values are in them)."""

    list_display = ["key", "renderer", "content_hash", "created_at", "used_at"]
    fields = ["key", "renderer", "content_hash", "created_at", "used_at"]
