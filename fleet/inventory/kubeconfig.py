"""Stored kubeconfigs: the one validator, used when one is stored and when it is used.

A kubeconfig can make a client run programs (``exec`` plugins, ``auth-provider``),
read the control plane's files (``tokenFile``, ``client-key``, ``certificate-authority``…),
skip TLS verification or go through a proxy. Fleet refuses all of these, and basic
authentication (which Kubernetes removed): a stored credential must be self-contained
and verifiable. We parse kubeconfigs ourselves instead of handing them to
``kubernetes.config``, which would honour those mechanisms. Errors name the entry and
the key at fault, never a value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import astuple, dataclass
from typing import Any

from fleet.core import yaml
from fleet.inventory.errors import CredentialError

# Keys naming local files, with what to embed instead.
_FILE_KEYS = {"certificate-authority": "certificate-authority-data", "client-certificate": "client-certificate-data",
              "client-key": "client-key-data", "tokenFile": "token"}
_REFUSED_USER_KEYS = {"exec": "an exec plugin, which would run a command on the control plane",
                      "auth-provider": "an auth-provider, which is not supported",
                      "username": "basic authentication, which Kubernetes removed"}
_REFUSED_CLUSTER_KEYS = ("insecure-skip-tls-verify", "proxy-url")
# A stored credential is at most 64 KiB (``credentials.MAX_CREDENTIAL_BYTES``); a
# kubeconfig of a few users and clusters has some hundred nodes and no need of aliases.
_LIMITS = yaml.YamlLimits(max_bytes=64 * 1024, max_depth=16, max_aliases=16, max_nodes=10_000)


@dataclass(frozen=True, repr=False)
class ConnectionSpec:
    """Everything a client needs to reach one API server (from token or certificate
    credentials, or a kubeconfig's current context). Never shows its secrets in repr."""

    name: str
    server: str
    token: str = ""
    ca_pem: str = ""
    client_cert_pem: str = ""
    client_key_pem: str = ""
    tls_server_name: str = ""

    def __repr__(self) -> str:
        return f"ConnectionSpec(name={self.name!r}, server={self.server!r})"

    def fingerprint(self) -> str:
        """Identifies the credentials (for a client cache) without revealing them."""
        return hashlib.sha256("\0".join(astuple(self)).encode()).hexdigest()


def _fail(message: str) -> CredentialError:
    return CredentialError("kubeconfig", message)


def _entries(config: Mapping[str, Any], section: str, inner: str) -> dict[str, Mapping[str, Any]]:
    """``section`` (a list of ``{name, <inner>: {…}}``) by name."""
    entries = config.get(section) or []
    if not isinstance(entries, list):
        raise _fail(f"kubeconfig {section} must be a list")
    named: dict[str, Mapping[str, Any]] = {}
    for position, entry in enumerate(entries):
        body = entry.get(inner) if isinstance(entry, Mapping) else None
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or not isinstance(body, Mapping):
            raise _fail(f"kubeconfig {section}[{position}] must be a mapping with a name and a {inner} mapping")
        named[entry["name"]] = body
    return named


def _check(kind: str, name: str, body: Mapping[str, Any]) -> None:
    refused = _REFUSED_USER_KEYS if kind == "user" else dict.fromkeys(_REFUSED_CLUSTER_KEYS, "")
    for key, why in refused.items():
        if body.get(key):
            raise _fail(f"kubeconfig {kind} {name!r} uses {why}" if why
                        else f"kubeconfig {kind} {name!r} sets {key}, which Fleet refuses")
    for key, embedded in _FILE_KEYS.items():
        if key in body:
            raise _fail(f"kubeconfig {kind} {name!r} refers to a local file ({key}); a stored "
                        f"kubeconfig must embed it as {embedded}")


def _decode(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not value:
        return ""
    try:
        return base64.b64decode(str(value), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _fail(f"kubeconfig {key} is not base64 PEM") from None


def parse_kubeconfig(text: str, *, name: str = "", server: str = "") -> ConnectionSpec:
    """Validate every user and cluster of a kubeconfig and return its current context's
    connection, named ``name``; ``server`` (the inventory's URL), when given, wins over
    the kubeconfig's own: the URL is what operators see and audit."""
    try:
        config = yaml.load(text, _LIMITS)
    except yaml.YamlError as exc:
        # The loader's message names the problem and line, never a value.
        raise _fail(f"kubeconfig: {exc}") from None
    if not isinstance(config, Mapping) or config.get("kind", "Config") != "Config":
        raise _fail("kubeconfig must be a mapping of kind Config")
    users, clusters = _entries(config, "users", "user"), _entries(config, "clusters", "cluster")
    contexts = _entries(config, "contexts", "context")
    for kind, entries in (("user", users), ("cluster", clusters)):
        for name, body in entries.items():
            _check(kind, name, body)
    current = config.get("current-context") or (next(iter(contexts)) if len(contexts) == 1 else "")
    if not isinstance(current, str):
        raise _fail("kubeconfig current-context must be a string")
    if not current:
        raise _fail("kubeconfig needs a current-context (or exactly one context)")
    context = contexts.get(current)
    if context is None:
        raise _fail(f"kubeconfig has no context named {current!r}")
    for key in ("cluster", "user"):
        if not isinstance(context.get(key), str):
            raise _fail(f"kubeconfig context {current!r} must name its {key} as a string")
    cluster, user = clusters.get(context["cluster"]), users.get(context["user"])
    if cluster is None or user is None:
        missing = "cluster" if cluster is None else "user"
        raise _fail(f"kubeconfig has no {missing} named {context.get(missing)!r}")
    return ConnectionSpec(name=name, server=server or str(cluster.get("server") or ""),
                          token=str(user.get("token") or ""),
                          ca_pem=_decode(cluster, "certificate-authority-data"),
                          client_cert_pem=_decode(user, "client-certificate-data"),
                          client_key_pem=_decode(user, "client-key-data"),
                          tls_server_name=str(cluster.get("tls-server-name") or ""))
