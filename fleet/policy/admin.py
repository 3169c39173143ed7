"""Admin for the policy gate: sets and waivers audited like every write, decisions read-only."""

from __future__ import annotations

from django.contrib import admin

from fleet.audit.admin import AuditedAdminMixin
from fleet.core.admin import ReadOnlyAdminMixin, ViewOnlyAdmin
from fleet.policy.models import MemoEntry, PolicyDecision, PolicySet, Waiver


@admin.register(PolicySet)
class PolicySetAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "mode", "selector", "fail_open", "review_deletes", "bundle_hash", "updated_at"]
    list_filter = ["mode", "fail_open"]
    search_fields = ["name", "description"]
    readonly_fields = ["bundle_hash", "created_at", "updated_at"]


@admin.register(Waiver)
class WaiverAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "policy_set", "rule", "object_pattern", "cluster_selector", "author", "expires_at"]
    list_filter = ["policy_set"]
    search_fields = ["name", "rule", "reason", "author"]
    list_select_related = ["policy_set"]
    readonly_fields = ["author", "created_at"]

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.author = request.user.get_username()[:150]
        super().save_model(request, obj, form, change)


@admin.register(PolicyDecision)
class PolicyDecisionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "cluster_name", "allowed", "engine", "object_count", "elapsed_ms", "source"]
    list_filter = ["allowed", "engine", "source"]
    search_fields = ["cluster_name", "bundle_hash"]
    date_hierarchy = "created_at"


@admin.register(MemoEntry)
class MemoEntryAdmin(ViewOnlyAdmin):
    """The shared memo of findings, by key: a cache the gate fills; findings name rules and objects."""

    list_display = ["key", "created_at"]
    show_full_result_count = False
