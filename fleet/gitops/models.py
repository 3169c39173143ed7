"""Credentials for git remotes. Deployment history is not stored here: the annotated
``deploy/…`` tags in each cluster's internal repo are its source of truth."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from fleet.core import crypto
from fleet.inventory.validators import validate_dns_label, validate_repo_url


class CredentialKind(models.TextChoices):
    HTTPS_TOKEN = "https-token", "HTTPS token"
    SSH_KEY = "ssh-key", "SSH private key"


def validate_url_prefix(value: str) -> None:
    """A prefix of a repository URL (``https://host/``, ``git@host:``), checked as a URL would be."""
    validate_repo_url(value + "x")


class RepositoryCredential(models.Model):
    """An SSH key or HTTPS token used for every remote whose URL starts with ``url_prefix``.

    The longest matching prefix wins, so one credential can cover a whole git host
    and another a single repository. The secret is encrypted at rest and write-only:
    it reaches git through environment variables and a temporary file only
    (``fleet.gitops.askpass``), never through a URL or ``.git/config``.
    """

    SECRET_FIELDS = ("secret_encrypted",)

    name = models.CharField(max_length=63, unique=True, validators=[validate_dns_label])
    url_prefix = models.CharField(max_length=500, unique=True, validators=[validate_url_prefix])
    kind = models.CharField(max_length=16, choices=CredentialKind.choices)
    username = models.CharField(max_length=150, blank=True,
                                help_text="HTTPS user name (many hosts accept any, e.g. 'git')")
    secret_encrypted = models.TextField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        https = self.url_prefix.startswith(("https://", "http://"))
        local = self.url_prefix.startswith(("file://", "/"))
        scheme_ok = https if self.kind == CredentialKind.HTTPS_TOKEN else not (https or local)
        if not scheme_ok:
            raise ValidationError({"kind": f"a {self.get_kind_display()} does not fit {self.url_prefix!r}"})

    def set_secret(self, secret: str) -> None:
        self.secret_encrypted = crypto.encrypt(secret)

    def get_secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted)

    @classmethod
    def for_url(cls, url: str) -> "RepositoryCredential | None":
        matches = [c for c in cls.objects.all() if url.startswith(c.url_prefix)]
        return max(matches, key=lambda c: len(c.url_prefix), default=None)
