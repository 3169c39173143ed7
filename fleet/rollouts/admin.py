"""Admin for rollouts: progress at a glance and actions that call the same services as the API."""

from __future__ import annotations

from django.contrib import admin, messages

from fleet.audit.admin import AuditedAdminMixin
from fleet.core.admin import ReadOnlyAdminMixin
from fleet.rollouts import services
from fleet.rollouts.errors import RolloutError
from fleet.rollouts.models import ClusterDeployment, Rollout, StrategyTemplate, Wave
from fleet.rollouts.progress import rollout_progress, with_progress


class WaveInline(admin.TabularInline):
    model = Wave
    fields = ["index", "name", "state", "max_parallel", "max_failures", "bake_seconds",
              "require_approval", "approved_by", "reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class DeploymentInline(admin.TabularInline):
    model = ClusterDeployment
    fields = ["cluster", "wave", "state", "step", "tag", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _run(request, queryset, operation, verb: str) -> None:
    for rollout in queryset:
        try:
            operation(rollout)
            messages.success(request, f"rollout #{rollout.pk}: {verb}")
        except RolloutError as exc:
            messages.error(request, f"rollout #{rollout.pk}: {exc}")


@admin.register(Rollout)
class RolloutAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "release", "state", "progress", "author", "created_at"]
    list_filter = ["state", "kind"]
    list_select_related = ["release__channel", "author"]
    readonly_fields = [f.name for f in Rollout._meta.fields]
    inlines = [WaveInline, DeploymentInline]
    actions = ["start", "pause", "resume", "abort", "approve", "rollback_failed", "rollback_all"]

    def get_queryset(self, request):
        return with_progress(super().get_queryset(request))

    @admin.display(description="progress")
    def progress(self, obj: Rollout) -> str:
        p = rollout_progress(obj)
        return f"{p['percent']}% ({p['succeeded']} ok, {p['failed']} failed, {p['running']} running)"

    def has_add_permission(self, request) -> bool:
        return False  # created through the API or CLI, which validate and plan

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Start")
    def start(self, request, queryset) -> None:
        _run(request, queryset, services.start, "started")

    @admin.action(description="Pause")
    def pause(self, request, queryset) -> None:
        _run(request, queryset, services.pause, "paused")

    @admin.action(description="Resume")
    def resume(self, request, queryset) -> None:
        _run(request, queryset, services.resume, "resumed")

    @admin.action(description="Abort")
    def abort(self, request, queryset) -> None:
        _run(request, queryset, services.abort, "aborting")

    @admin.action(description="Approve the waiting wave")
    def approve(self, request, queryset) -> None:
        _run(request, queryset, lambda r: services.approve(r, request.user), "approved")

    @admin.action(description="Roll back failed clusters")
    def rollback_failed(self, request, queryset) -> None:
        _run(request, queryset, lambda r: services.start(services.rollback(r, request.user)), "rollback started")

    @admin.action(description="Roll back all clusters")
    def rollback_all(self, request, queryset) -> None:
        _run(request, queryset, lambda r: services.start(services.rollback(r, request.user, scope="all")),
             "rollback started")


@admin.register(StrategyTemplate)
class StrategyTemplateAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "description"]


@admin.register(Wave)
class WaveAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["rollout", "index", "name", "state", "max_parallel", "max_failures", "approved_by"]
    list_filter = ["state"]
    list_select_related = ["approved_by"]


@admin.register(ClusterDeployment)
class ClusterDeploymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["rollout", "cluster", "state", "step", "tag", "finished_at"]
    list_filter = ["state"]
    list_select_related = ["cluster"]
    search_fields = ["cluster__name", "tag"]
