"""The raw drift records in the Django admin: reports, resources and scans read-only
(scans write them), rules editable through the same audited, validated services."""

from __future__ import annotations

from django.contrib import admin, messages

from fleet.core.admin import ViewOnlyAdmin
from fleet.drift import services
from fleet.drift.errors import DriftError
from fleet.drift.models import ClusterDrift, DesiredSet, DriftedResource, DriftScan, HealAttempt, IgnoreRule, ModeRule


class ResourceInline(admin.TabularInline):
    model = DriftedResource
    fields = ["kind", "namespace", "name", "state", "manager", "changed_at", "first_observed_at", "resolved_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ClusterDrift)
class ClusterDriftAdmin(ViewOnlyAdmin):
    list_display = ["cluster", "state", "mode", "missing", "modified", "pending_prune", "first_drift_observed_at",
                    "last_scan_at", "contested_by"]
    list_filter = ["state", "mode"]
    search_fields = ["cluster__name"]
    inlines = [ResourceInline]
    actions = ["scan_now", "heal_now"]

    @admin.action(description="Scan now")
    def scan_now(self, request, queryset) -> None:
        for drift in queryset.select_related("cluster"):
            services.request_scan(drift.cluster, user=request.user)
        messages.info(request, f"{queryset.count()} scans requested")

    @admin.action(description="Heal now")
    def heal_now(self, request, queryset) -> None:
        for drift in queryset.select_related("cluster"):
            try:
                services.request_heal(drift.cluster, user=request.user)
            except DriftError as exc:
                messages.warning(request, str(exc))


@admin.register(DriftedResource)
class DriftedResourceAdmin(ViewOnlyAdmin):
    list_display = ["drift", "kind", "namespace", "name", "state", "manager", "changed_at", "resolved_at"]
    list_filter = ["state", "kind"]
    search_fields = ["name", "namespace", "manager"]


@admin.register(DriftScan)
class DriftScanAdmin(ViewOnlyAdmin):
    list_display = ["cluster", "started_at", "trigger", "state", "seconds", "requests", "desired_cached"]
    list_filter = ["state", "trigger"]


@admin.register(HealAttempt)
class HealAttemptAdmin(ViewOnlyAdmin):
    list_display = ["drift", "requested_at", "automatic", "rollout"]


class RuleAdmin(admin.ModelAdmin):
    """Writes go through the services: validated, audited, role-checked."""

    create, update, delete = None, None, None

    def save_model(self, request, obj, form, change) -> None:
        data = {name: form.cleaned_data[name] for name in form.changed_data} if change else form.cleaned_data
        try:
            if change:
                type(self).update(obj, data, user=request.user)
            else:
                saved = type(self).create(dict(data), user=request.user)
                obj.pk = saved.pk
        except DriftError as exc:
            messages.error(request, str(exc))

    def delete_model(self, request, obj) -> None:
        type(self).delete(obj, user=request.user)


@admin.register(IgnoreRule)
class IgnoreRuleAdmin(RuleAdmin):
    list_display = ["name", "group", "kind", "namespace", "object_name", "cluster_selector", "source"]
    readonly_fields = ["source"]
    create, update, delete = (staticmethod(services.create_ignore_rule), staticmethod(services.update_ignore_rule),
                              staticmethod(services.delete_ignore_rule))


@admin.register(ModeRule)
class ModeRuleAdmin(RuleAdmin):
    list_display = ["name", "cluster_selector", "mode", "priority", "heal_windows"]
    create, update, delete = (staticmethod(services.create_mode_rule), staticmethod(services.update_mode_rule),
                              staticmethod(services.delete_mode_rule))


@admin.register(DesiredSet)
class DesiredSetAdmin(ViewOnlyAdmin):
    """The cache, by key; its manifests are never shown (encrypted, and a Secret's values are in them)."""

    list_display = ["key", "commit", "created_at", "used_at"]
    fields = ["key", "commit", "created_at", "used_at"]
