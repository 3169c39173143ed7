"""Admin for users (audited, including role changes) and API tokens (shown once)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from fleet.accounts import services
from fleet.accounts.models import ApiToken
from fleet.audit import services as audit
from fleet.audit.admin import AuditedAdminMixin

User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class FleetUserAdmin(AuditedAdminMixin, UserAdmin):
    def save_related(self, request, form, formsets, change) -> None:
        before = set(form.instance.groups.values_list("name", flat=True)) if change else set()
        super().save_related(request, form, formsets, change)
        after = set(form.instance.groups.values_list("name", flat=True))
        if before != after:
            audit.record("user.roles", target=form.instance,
                         before={"groups": sorted(before)}, after={"groups": sorted(after)})


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "user", "key", "created_at", "expires_at", "last_used_at", "revoked"]
    list_filter = ["revoked"]
    fields = ["user", "name", "expires_at", "revoked", "key", "created_at", "last_used_at"]
    readonly_fields = ["key", "created_at", "last_used_at"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token, plaintext = services.issue_token(obj.user, obj.name, obj.expires_at)
        obj.pk, obj.key = token.pk, token.key
        messages.warning(request, f"Copy this token now, it will not be shown again: {plaintext}")

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset) -> None:
        for token in queryset.filter(revoked=False):
            services.revoke_token(token)
