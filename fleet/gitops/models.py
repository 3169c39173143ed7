"""Credentials for git remotes. Deployment history is not stored here: the annotated
``deploy/…`` tags in each cluster's internal repo are its source of truth."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from fleet.core import crypto
from fleet.core.repourl import RepoUrl, RepoUrlError, parse_repo_url
from fleet.inventory.validators import validate_dns_label


class CredentialKind(models.TextChoices):
    HTTPS_TOKEN = "https-token", "HTTPS token"
    SSH_KEY = "ssh-key", "SSH private key"


def validate_url_prefix(value: str) -> None:
    """The start of a repository URL (``https://host/``, ``git@host:``), checked as a URL is."""
    try:
        parse_repo_url(value, prefix=True)
    except RepoUrlError as exc:
        raise ValidationError(exc.message, code=exc.code) from None


class RepositoryCredential(models.Model):
    """An SSH key or HTTPS token used for every remote that ``url_prefix`` covers.

    Covering is decided on the parsed URLs (``fleet.core.repourl.RepoUrl.covers``): the
    same transport, host and port, then the path on whole segments, so
    ``https://git.example.com`` never covers ``git.example.com.attacker.tld``, another port,
    or ``/organisation`` for ``/org``. The most specific prefix wins, so one credential can
    cover a whole git host and another a single repository. The secret is encrypted at rest and write-only:
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
        try:
            transport = parse_repo_url(self.url_prefix, prefix=True).transport
        except RepoUrlError:
            return  # the field's own validator says why
        wanted = "https" if self.kind == CredentialKind.HTTPS_TOKEN else "ssh"
        if transport != wanted:
            raise ValidationError({"kind": f"a {self.get_kind_display()} is for {wanted} URLs, and this "
                                           f"prefix is {transport}"})

    def set_secret(self, secret: str) -> None:
        self.secret_encrypted = crypto.encrypt(secret)

    def get_secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted)

    def prefix(self) -> RepoUrl | None:
        try:
            return parse_repo_url(self.url_prefix, prefix=True)
        except RepoUrlError:
            return None  # stored before the rules were strict: it covers nothing

    @classmethod
    def for_url(cls, url: str) -> RepositoryCredential | None:
        """The credential whose prefix covers ``url`` most specifically, or None."""
        try:
            target = parse_repo_url(url)
        except RepoUrlError:
            return None
        matches = [(prefix, c) for c in cls.objects.all() if (prefix := c.prefix()) and prefix.covers(target)]
        best = max(matches, key=lambda pair: (len(pair[0].segments), bool(pair[0].user)), default=None)
        return best[1] if best else None
