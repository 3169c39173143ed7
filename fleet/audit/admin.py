"""Admin: the audit log read-only, and the mixin that audits every admin write."""

from __future__ import annotations

from django.contrib import admin

from fleet.audit import services as audit
from fleet.audit.models import AuditArchive, AuditCheckpoint, AuditEvent, ChainVerification
from fleet.core.admin import ReadOnlyAdminMixin


class AuditedAdminMixin:
    """Route admin saves and deletes through the audited services."""

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            audit.create(obj)
            return
        original = type(obj)._default_manager.get(pk=obj.pk)
        secret_fields = getattr(obj, "SECRET_FIELDS", ())
        changes = {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields
                   if (f.editable or f.name in secret_fields) and not f.primary_key}
        # Secrets are re-encrypted only when they really change, so a different
        # ciphertext means a changed secret.
        secrets_changed = [name for name in secret_fields
                           if getattr(original, name) != getattr(obj, name)]
        audit.update(original, changes, secrets_changed=secrets_changed)
        obj.refresh_from_db()

    def delete_model(self, request, obj) -> None:
        audit.delete(obj)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            audit.delete(obj)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["sequence", "timestamp", "actor", "source", "action", "target_repr", "cluster"]
    list_filter = ["source", "action", "cluster"]
    search_fields = ["actor", "action", "target_repr", "cluster", "request_id"]
    date_hierarchy = "timestamp"


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["sequence", "created_at", "key_id", "every", "hash"]
    date_hierarchy = "created_at"


@admin.register(AuditArchive)
class AuditArchiveAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["first_sequence", "last_sequence", "count", "until", "path", "created_at"]


@admin.register(ChainVerification)
class ChainVerificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["ran_at", "ok", "checked", "first_broken_sequence", "seconds", "source"]
    list_filter = ["ok", "source"]
