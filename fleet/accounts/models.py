"""API tokens, stored as hashes: a leaked database does not leak working tokens."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "flt"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token ``flt_<key>_<secret>``; only ``key`` and the secret's hash are kept."""

    SECRET_FIELDS = ("secret_hash",)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="api_tokens")
    name = models.CharField(max_length=100)
    key = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({TOKEN_PREFIX}_{self.key}_…) of {self.user}"

    @classmethod
    def issue(cls, user, name: str, expires_at=None) -> tuple[ApiToken, str]:
        """Make a token; the plaintext is returned once and never stored."""
        key, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        token = cls(user=user, name=name, key=key, secret_hash=digest(secret), expires_at=expires_at)
        return token, f"{TOKEN_PREFIX}_{key}_{secret}"

    def is_usable(self) -> bool:
        return not self.revoked and (self.expires_at is None or self.expires_at > timezone.now())
