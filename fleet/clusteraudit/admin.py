"""Raw records in the admin, read-only: events come from clusters, credentials from
``cluster-audit rotate`` (the secret is never shown again)."""

from django.contrib import admin

from fleet.clusteraudit.models import AuditSource, ClusterAuditEvent, IngestRefusal


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ClusterAuditEvent)
class ClusterAuditEventAdmin(ReadOnly):
    list_display = ("request_received_at", "cluster", "username", "verb", "resource", "namespace", "name",
                    "response_code", "actor", "outside_gitops")
    list_filter = ("outside_gitops", "actor", "verb")
    list_select_related = ("cluster",)
    show_full_result_count = False  # no count(*) over millions of rows per page


@admin.register(AuditSource)
class AuditSourceAdmin(ReadOnly):
    list_display = ("cluster", "key", "rotated_at", "fleet_username", "last_ingest_at")
    exclude = ("secret_hash", "previous_secret_hash")


@admin.register(IngestRefusal)
class IngestRefusalAdmin(ReadOnly):
    list_display = ("key", "window_start", "count")
