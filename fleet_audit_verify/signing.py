"""Ed25519 statements: checkpoints of the chain and bundle manifests.

A statement is a JSON object; its signature is Ed25519 over the statement's
canonical encoding (``canonical.encode``) without its ``signature`` member, carried
base64-encoded in that member. A key is named by its id: the first 16 hex digits of
the SHA-256 of its raw 32-byte public key, so a reader can tell "signed by another
key" from "altered".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fleet_audit_verify.canonical import encode

CHECKPOINT_FORMAT = "fleet-audit-checkpoint/1"


class BadKey(ValueError):
    """A key that cannot be read; the message says what was expected."""


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_bytes(key)).hexdigest()[:16]


def public_key_text(key: Ed25519PublicKey) -> str:
    """The PEM form auditors are handed (``SubjectPublicKeyInfo``)."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _raw32(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadKey(f"{what} must be PEM or the base64 of 32 raw bytes") from None
    if len(raw) != 32:
        raise BadKey(f"{what} must be 32 bytes, base64-encoded; this one is {len(raw)} bytes")
    return raw


def private_key_from_seed(seed_b64: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_raw32(seed_b64, "the signing key"))


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key as PEM, or as the base64 of its raw 32 bytes (``#`` lines are comments)."""
    text = "\n".join(line for line in text.splitlines() if not line.startswith("#")).strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError as exc:
            raise BadKey(f"not a PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise BadKey("the PEM key is not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(_raw32(text, "a public key"))


def unsigned(statement: Mapping[str, Any]) -> bytes:
    return encode({k: v for k, v in statement.items() if k != "signature"})


def sign(key: Ed25519PrivateKey, statement: Mapping[str, Any]) -> str:
    return base64.b64encode(key.sign(unsigned(statement))).decode()


def check(keys: Mapping[str, Ed25519PublicKey], statement: Mapping[str, Any]) -> str:
    """Why ``statement``'s signature does not hold with ``keys`` (by id), or ``""``."""
    signer = statement.get("key_id")
    key = keys.get(signer) if isinstance(signer, str) else None
    if key is None:
        known = ", ".join(sorted(keys)) or "none"
        return f"signed by key {signer!r}, which is not the given public key ({known})"
    try:
        key.verify(base64.b64decode(str(statement.get("signature", "")), validate=True), unsigned(statement))
    except (InvalidSignature, binascii.Error, ValueError):
        return f"its signature does not verify with key {signer}: it was altered after signing"
    return ""


def checkpoint_statement(*, sequence: int, hash: str, time: str, every: int, key_id: str) -> dict[str, Any]:
    """What a checkpoint asserts: the chain had ``sequence`` events ending in ``hash`` at ``time``."""
    return {"format": CHECKPOINT_FORMAT, "sequence": sequence, "hash": hash, "time": time, "every": every,
            "key_id": key_id}
