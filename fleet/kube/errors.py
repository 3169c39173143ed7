"""One exception hierarchy for everything that can go wrong talking to a cluster.

Each class carries a ``code`` (domain ``kube``) that callers (rollouts, drift, the
probe) store and branch on, and a message that names the cluster and, where there is
one, the object (``Kind.group namespace/name``). Messages come from the API server's
``Status`` or from the transport, never from the request: tokens and keys cannot leak
into them.
"""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any

import urllib3.exceptions

from fleet.core.errors import FleetError


class KubeError(FleetError):
    """Base class; ``code`` is the stable case, ``str()`` the message with its cluster
    and object, ``message`` the API server's (or transport's) words alone."""

    domain = "kube"
    code = "error"

    def __init__(self, message: str, *, cluster: str = "", obj: object | None = None,
                 status: int | None = None):
        self.cluster = cluster
        self.obj = obj
        self.status = status
        self.failures: list[KubeError] = [self]
        super().__init__(message, detail={"cluster": cluster,
                                          "object": str(obj) if obj is not None else None})

    def where(self) -> str:
        return ", ".join(part for part in (f"cluster {self.cluster}" if self.cluster else "",
                                           str(self.obj) if self.obj is not None else "") if part)


class Unreachable(KubeError):
    code = "unreachable"


class TLSVerificationFailed(KubeError):
    """The server's certificate does not chain to the CA we hold (or TLS failed)."""

    code = "tls"


class Unauthorized(KubeError):
    code = "unauthorized"


class Forbidden(KubeError):
    code = "forbidden"


class FieldConflict(KubeError):
    """Another field manager owns fields we set; re-apply with force to take them."""

    code = "conflict"


class InvalidObject(KubeError):
    """The object is malformed (ours) or rejected by the API server (its message)."""

    code = "invalid"


class UnknownKind(KubeError):
    """The cluster serves no such kind: a missing CRD or a wrong apiVersion."""

    code = "unknown_kind"


class Timeout(KubeError):
    code = "timeout"


class NotFound(KubeError):
    code = "not_found"


class ConfigRefused(KubeError):
    """Credentials or a kubeconfig we refuse to use (exec plugins, foreign files)."""

    code = "config"


def from_response(status: int, body: bytes, *, cluster: str, obj: object | None) -> KubeError:
    """Map an API server error response (a ``Status`` object, usually) to our class."""
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    reason = payload.get("reason", "")
    message = payload.get("message") or body.decode(errors="replace")[:300] or f"HTTP {status}"
    kwargs = {"cluster": cluster, "obj": obj, "status": status}
    if status == 401:
        return Unauthorized("the API server rejected our credentials (401 Unauthorized)", **kwargs)
    if status == 403:
        return Forbidden(message, **kwargs)
    if status == 409 and _is_field_conflict(payload):
        return FieldConflict(message, **kwargs)
    if status == 422 or reason in ("Invalid", "BadRequest") or status == 400:
        return InvalidObject(message, **kwargs)
    if status == 404:
        return NotFound(message, **kwargs)
    if status == 504 or reason == "Timeout":
        return Timeout(message, **kwargs)
    return KubeError(f"HTTP {status}: {message}", **kwargs)


def _is_field_conflict(payload: dict[str, Any]) -> bool:
    """Server-side apply names each contested field as a FieldManagerConflict cause; other
    409s (a failed uid precondition, a stale resourceVersion) are not ours to force."""
    causes = (payload.get("details") or {}).get("causes") or []
    return any(cause.get("reason") == "FieldManagerConflict" for cause in causes)


def from_transport(exc: BaseException, *, cluster: str, server: str,
                   obj: object | None = None) -> KubeError:
    """Map a urllib3/socket failure (no HTTP response at all) to our class."""
    cause: BaseException = exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        cause = exc.reason
    kwargs = {"cluster": cluster, "obj": obj}
    text = str(cause)
    if isinstance(cause, (urllib3.exceptions.SSLError, ssl.SSLError)) or "CERTIFICATE_VERIFY" in text:
        return TLSVerificationFailed(f"TLS verification of {server} failed; the server's "
                                     f"certificate does not match the cluster's CA ({_short(cause)})",
                                     **kwargs)
    if isinstance(cause, (urllib3.exceptions.ReadTimeoutError, socket.timeout, TimeoutError)):
        return Timeout(f"{server} did not answer in time", **kwargs)
    if isinstance(cause, (urllib3.exceptions.NewConnectionError,
                          urllib3.exceptions.ConnectTimeoutError,
                          urllib3.exceptions.ProtocolError, ConnectionError, OSError)):
        return Unreachable(f"cannot connect to {server} ({_short(cause)})", **kwargs)
    return Unreachable(f"request to {server} failed ({_short(cause)})", **kwargs)


def _short(exc: BaseException) -> str:
    """The last, most specific line of a transport error, without object reprs."""
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    if "Errno" in text:
        text = text[text.index("[Errno"):] if "[Errno" in text else text
    return text.rstrip(")'\"")[:200]
