"""Admin for the inventory. Credentials are write-only: shown as set or unset, entered
as JSON, validated like the API's, and replaced or cleared, never displayed."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from fleet.audit.admin import AuditedAdminMixin
from fleet.core import jsonload
from fleet.core.admin import WriteOnlyTextarea
from fleet.inventory import services
from fleet.inventory.credentials import parse_credentials
from fleet.inventory.errors import CredentialError
from fleet.inventory.models import Channel, Cluster, Release


class ClusterAdminForm(forms.ModelForm):
    new_credentials = forms.CharField(
        required=False, widget=WriteOnlyTextarea(attrs={"rows": 4, "autocomplete": "off"}),
        help_text='Replaces the stored credentials. JSON, e.g. {"token": "…", "ca_pem": "…"} '
                  'or {"kubeconfig": "…"}. Leave empty to keep them.')
    clear_credentials = forms.BooleanField(required=False, help_text="Remove the stored credentials.")

    class Meta:
        model = Cluster
        fields = "__all__"

    def clean_new_credentials(self):
        raw = self.cleaned_data.get("new_credentials", "").strip()
        if not raw:
            return None
        try:
            return parse_credentials(jsonload.loads(raw))
        except (jsonload.JsonError, CredentialError) as exc:  # neither echoes a value
            raise forms.ValidationError(str(exc)) from None


@admin.register(Cluster)
class ClusterAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = ClusterAdminForm
    list_display = ["name", "channel", "status", "credentials", "paused", "pinned", "protected",
                    "last_contact_at"]
    list_filter = ["status", "channel", "paused", "pinned", "protected", "origin"]
    search_fields = ["name"]
    list_select_related = ["channel"]
    readonly_fields = ["credentials", "status", "status_message", "last_contact_at", "origin",
                       "source_file", "created_at", "updated_at"]

    @admin.display(description="credentials")
    def credentials(self, obj: Cluster) -> str:
        return "set" if obj.has_credentials else "unset"

    def save_model(self, request, obj, form, change) -> None:
        """Through the inventory's services, as the API goes: the same role rules (a
        protected cluster is an admin's) and the same audit."""
        new = form.cleaned_data.get("new_credentials")
        credentials = None if form.cleaned_data.get("clear_credentials") else \
            new if new is not None else services.UNCHANGED
        fields = {f.name: getattr(obj, f.name) for f in Cluster._meta.concrete_fields
                  if f.editable and not f.primary_key and f.name in form.cleaned_data}
        if change:
            saved = services.update_cluster(Cluster.objects.get(pk=obj.pk), fields, credentials)
        else:
            saved = services.create_cluster(fields, None if credentials is services.UNCHANGED else credentials)
        obj.pk, obj.credentials_encrypted = saved.pk, saved.credentials_encrypted

    def delete_model(self, request, obj) -> None:
        services.delete_cluster(obj)

    def delete_queryset(self, request, queryset) -> None:
        for cluster in queryset:
            services.delete_cluster(cluster)


@admin.register(Channel)
class ChannelAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "branch", "repo_url"]
    search_fields = ["name", "branch"]


@admin.register(Release)
class ReleaseAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["version", "channel", "upstream_sha", "created_at"]
    list_filter = ["channel"]
    list_select_related = ["channel"]
