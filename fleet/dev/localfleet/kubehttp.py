"""Minimal HTTPS calls to a local API server: readiness probes and bootstrapping Nodes.

Plain ``urllib`` rather than the ``kubernetes`` client keeps this package usable
before the project's dependencies are installed and keeps probes cheap.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=32)
def tls_context(ca_pem: str) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca_pem)


def request(
    server: str,
    ca_pem: str,
    token: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    timeout: float = 5.0,
) -> tuple[int, Any]:
    """Return (status, decoded body). HTTP errors are returned, not raised, because
    callers branch on them (409 already exists, 403 forbidden); connection errors raise."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, context=tls_context(ca_pem), timeout=timeout) as response:
            return response.status, _decode(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _decode(error.read())


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
