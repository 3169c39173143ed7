"""Cluster credentials: what may be stored, and its validation.

Accepted: a bearer token, a client certificate and key, each with an optional CA
bundle; or a kubeconfig that ``fleet.inventory.kubeconfig`` accepts (no exec plugin,
auth-provider or file reference: a stored credential must be self-contained). The
object never shows its values in repr, errors or logs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from fleet.core import crypto
from fleet.inventory.errors import CredentialError
from fleet.inventory.kubeconfig import parse_kubeconfig

MAX_CREDENTIAL_BYTES = 64 * 1024


@dataclass(frozen=True, repr=False)
class ClusterCredentials:
    token: str = ""
    ca_pem: str = ""
    client_cert_pem: str = ""
    client_key_pem: str = ""
    kubeconfig: str = ""

    def __repr__(self) -> str:
        present = [f.name for f in fields(self) if getattr(self, f.name)]
        return f"ClusterCredentials(set={present})"

    __str__ = __repr__

    @property
    def kind(self) -> str:
        if self.kubeconfig:
            return "kubeconfig"
        if self.client_cert_pem:
            return "client-certificate"
        return "token"

    def describe(self) -> dict[str, Any]:
        """What may be shown about them: the kind and which parts are set."""
        return {"kind": self.kind, "set": [f.name for f in fields(self) if getattr(self, f.name)]}

    def encrypt(self) -> str:
        return crypto.encrypt(json.dumps({k: v for k, v in asdict(self).items() if v}))

    @classmethod
    def decrypt(cls, ciphertext: str) -> ClusterCredentials:
        return cls(**json.loads(crypto.decrypt(ciphertext)))


def parse_credentials(data: object) -> ClusterCredentials:
    """Validate a credentials mapping from the API or a clusters-as-code file."""
    if not isinstance(data, dict):
        raise CredentialError("credentials", "credentials must be an object")
    allowed = {f.name for f in fields(ClusterCredentials)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise CredentialError(unknown[0], f"unknown credential field {unknown[0]!r}; "
                              f"expected some of {', '.join(sorted(allowed))}")
    for key, value in data.items():
        if not isinstance(value, str):
            raise CredentialError(key, f"{key} must be a string")
        if len(value.encode()) > MAX_CREDENTIAL_BYTES:
            raise CredentialError(key, f"{key} is larger than {MAX_CREDENTIAL_BYTES} bytes")
    creds = ClusterCredentials(**{k: v.strip() for k, v in data.items()})
    if creds.kubeconfig:
        if creds.token or creds.client_cert_pem or creds.client_key_pem or creds.ca_pem:
            raise CredentialError("kubeconfig", "give either a kubeconfig or token/certificate "
                                  "fields, not both")
        parse_kubeconfig(creds.kubeconfig)
        return creds
    if creds.token and any(ch.isspace() for ch in creds.token):
        raise CredentialError("token", "token must not contain whitespace")
    if bool(creds.client_cert_pem) != bool(creds.client_key_pem):
        raise CredentialError("client_key_pem" if creds.client_cert_pem else "client_cert_pem",
                              "client_cert_pem and client_key_pem go together")
    if not (creds.token or creds.client_cert_pem):
        raise CredentialError("credentials", "credentials need a token, a client certificate "
                              "and key, or a kubeconfig")
    if creds.ca_pem:
        _check_certificates("ca_pem", creds.ca_pem)
    if creds.client_cert_pem:
        _check_certificates("client_cert_pem", creds.client_cert_pem)
        try:
            load_pem_private_key(creds.client_key_pem.encode(), password=None)
        except (ValueError, TypeError):
            raise CredentialError("client_key_pem", "client_key_pem is not an unencrypted PEM "
                                  "private key") from None
    return creds


def _check_certificates(field: str, pem: str) -> None:
    try:
        x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise CredentialError(field, f"{field} is not a PEM certificate bundle") from None
