"""Raw records in the admin, read-only: events come from clusters, credentials from
``cluster-audit rotate`` (the secret is never shown again)."""

from django.contrib import admin

from fleet.clusteraudit.models import AuditSource, ClusterAuditEvent, IngestRefusal
from fleet.core.admin import ViewOnlyAdmin


@admin.register(ClusterAuditEvent)
class ClusterAuditEventAdmin(ViewOnlyAdmin):
    list_display = ("request_received_at", "cluster", "username", "verb", "resource", "namespace", "name",
                    "response_code", "actor", "outside_gitops")
    list_filter = ("outside_gitops", "actor", "verb")
    list_select_related = ("cluster",)
    show_full_result_count = False  # no count(*) over millions of rows per page


@admin.register(AuditSource)
class AuditSourceAdmin(ViewOnlyAdmin):
    list_display = ("cluster", "key", "rotated_at", "fleet_username", "last_ingest_at")
    exclude = ("secret_hash", "previous_secret_hash")


@admin.register(IngestRefusal)
class IngestRefusalAdmin(ViewOnlyAdmin):
    list_display = ("key", "window_start", "count")
