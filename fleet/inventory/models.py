"""The fleet's inventory: release channels, releases, and clusters."""

from __future__ import annotations

from django.db import models

from fleet.inventory.choices import ClusterOrigin, ClusterStatus
from fleet.inventory.credentials import ClusterCredentials
from fleet.inventory.validators import (
    validate_api_server_url,
    validate_dns_label,
    validate_git_ref_name,
    validate_label_map,
    validate_release_branch,
    validate_repo_url,
    validate_sha,
)


class Channel(models.Model):
    """A release channel: one ``release-X.Y`` branch of the vendor's primary repo."""

    name = models.CharField(max_length=63, unique=True, validators=[validate_dns_label])
    repo_url = models.CharField("primary repo URL", max_length=500, validators=[validate_repo_url])
    branch = models.CharField(max_length=100, validators=[validate_release_branch])
    description = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Release(models.Model):
    """One upstream commit of a channel, named with a version."""

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="releases")
    version = models.CharField(max_length=64)
    upstream_sha = models.CharField(max_length=40, validators=[validate_sha])
    notes = models.TextField(blank=True, max_length=10_000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "version"], name="release_unique_version"),
            models.UniqueConstraint(fields=["channel", "upstream_sha"], name="release_unique_sha"),
        ]

    def __str__(self) -> str:
        return f"{self.channel.name} {self.version}"


class Cluster(models.Model):
    """A managed Kubernetes cluster, its internal git repo and its release channel.

    ``paused`` keeps rollouts from starting on it; ``pinned`` keeps it on its current
    release; ``protected`` makes rollouts to it need an admin and an approval.
    """

    SECRET_FIELDS = ("credentials_encrypted",)

    name = models.CharField(max_length=63, unique=True, validators=[validate_dns_label])
    labels = models.JSONField(default=dict, blank=True, validators=[validate_label_map])
    api_server_url = models.CharField("API server URL", max_length=500,
                                      validators=[validate_api_server_url])
    credentials_encrypted = models.TextField(blank=True, editable=False)
    internal_repo_url = models.CharField(max_length=500, validators=[validate_repo_url])
    internal_branch = models.CharField(max_length=255, default="main",
                                       validators=[validate_git_ref_name])
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="clusters")
    paused = models.BooleanField(default=False)
    pinned = models.BooleanField(default=False)
    protected = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=ClusterStatus.choices,
                              default=ClusterStatus.UNKNOWN, db_index=True)
    status_message = models.CharField(max_length=500, blank=True)
    last_contact_at = models.DateTimeField(null=True, blank=True)
    origin = models.CharField(max_length=8, choices=ClusterOrigin.choices,
                              default=ClusterOrigin.API)
    source_file = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def audit_cluster_name(self) -> str:
        return self.name

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_encrypted)

    def get_credentials(self) -> ClusterCredentials | None:
        if not self.credentials_encrypted:
            return None
        return ClusterCredentials.decrypt(self.credentials_encrypted)

    def set_credentials(self, credentials: ClusterCredentials | None) -> None:
        self.credentials_encrypted = credentials.encrypt() if credentials else ""
