"""Fleet's audit signing key and the public keys its signatures are checked with.

The private key comes from ``FLEET_AUDIT_SIGNING_KEY`` (or is generated into the
data directory on first start, as the embedded default's other keys are). Keep it
out of the database's reach: whoever holds both could re-sign a rewritten chain, and
only the anchors in the internal repos would still tell.
"""

from __future__ import annotations

import functools

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from fleet.core.errors import FleetError
from fleet_audit_verify.signing import BadKey, key_id, load_public_key, private_key_from_seed


class KeyProblem(FleetError):
    domain = "audit"
    code = "key"


@functools.cache
def _private(seed: str) -> Ed25519PrivateKey:
    return private_key_from_seed(seed)


def signing_key() -> Ed25519PrivateKey:
    return _private(settings.FLEET_AUDIT_SIGNING_KEY)


def public_key() -> Ed25519PublicKey:
    return signing_key().public_key()


def signing_key_id() -> str:
    return key_id(public_key())


def trusted_keys() -> dict[str, Ed25519PublicKey]:
    """The current public key and those in ``FLEET_AUDIT_PREVIOUS_KEYS`` (rotation), by id."""
    keys = {signing_key_id(): public_key()}
    for index, text in enumerate(settings.FLEET_AUDIT_PREVIOUS_KEYS):
        try:
            key = load_public_key(text)
        except BadKey as exc:
            raise KeyProblem(f"FLEET_AUDIT_PREVIOUS_KEYS[{index}]: {exc}") from None
        keys[key_id(key)] = key
    return keys
