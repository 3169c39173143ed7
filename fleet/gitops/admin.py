"""Admin for repository credentials: the secret is write-only (entered, never shown)."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from fleet.audit.admin import AuditedAdminMixin
from fleet.core.admin import WriteOnlyTextarea
from fleet.gitops.models import RepositoryCredential


class RepositoryCredentialForm(forms.ModelForm):
    new_secret = forms.CharField(
        required=False, strip=False, widget=WriteOnlyTextarea(attrs={"rows": 4, "autocomplete": "off"}),
        help_text="The HTTPS token or SSH private key. Leave empty to keep the stored one.")

    class Meta:
        model = RepositoryCredential
        fields = ["name", "url_prefix", "kind", "username"]

    def clean(self):
        cleaned = super().clean()
        if not self.instance.pk and not cleaned.get("new_secret"):
            self.add_error("new_secret", "a new credential needs its secret")
        return cleaned


@admin.register(RepositoryCredential)
class RepositoryCredentialAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = RepositoryCredentialForm
    list_display = ["name", "url_prefix", "kind", "username", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["name", "url_prefix"]
    readonly_fields = ["created_at", "updated_at"]

    def save_model(self, request, obj, form, change) -> None:
        secret = form.cleaned_data.get("new_secret")
        if secret and (not change or secret != obj.get_secret()):
            obj.set_secret(secret)
        super().save_model(request, obj, form, change)
