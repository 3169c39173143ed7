"""The render cache's shared layer (``fleet.render.cache``)."""

from __future__ import annotations

from django.db import models

from fleet.core import crypto


class RenderedSet(models.Model):
    """A render's validated objects, by the content it read (``fleet.render.cache.key``).

    Shared by every worker, so a fleet whose clusters share a release and a handful of
    overlays runs kustomize a handful of times. The objects are encrypted at rest
    (``fleet.core.crypto``, the credentials' keys): a release's Secrets are in them,
    and a database dump must not hand them out."""

    key = models.CharField(max_length=64, unique=True)
    renderer = models.CharField(max_length=16)
    content_hash = models.CharField(max_length=100)
    objects_encrypted = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"rendered set {self.key[:12]} ({self.renderer})"

    @staticmethod
    def seal(serialized: bytes) -> str:
        return crypto.encrypt(serialized.decode())

    @staticmethod
    def unseal(token: str) -> bytes:
        return crypto.decrypt(token).encode()
