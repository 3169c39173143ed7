"""Encryption at rest for secrets (cluster credentials), with Fernet.

``FLEET_CREDENTIALS_KEYS`` lists keys: the first encrypts, every one decrypts, so a
key is rotated by prepending a new one and re-saving. Errors never carry plaintext.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from fleet.core.errors import FleetError


class DecryptionError(FleetError):
    """The stored secret cannot be read with any configured key."""

    domain = "crypto"
    code = "undecryptable"


@lru_cache(maxsize=4)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def cipher() -> MultiFernet:
    return _cipher(tuple(settings.FLEET_CREDENTIALS_KEYS))


def encrypt(plaintext: str) -> str:
    return cipher().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return cipher().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "stored secret cannot be decrypted with FLEET_CREDENTIALS_KEYS (was the key rotated away?)"
        ) from None
