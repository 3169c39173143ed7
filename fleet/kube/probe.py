"""Is a cluster there, and may we work on it? Server version, latency, authorisation.

``/version`` is readable by anyone (even unauthenticated), so it proves reachability
and TLS only; a one-item namespace list then proves our credentials are accepted
(401 otherwise) and authorised (403 otherwise).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fleet.kube.client import KubeClient
from fleet.kube.errors import KubeError


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    version: str
    latency_ms: float | None
    outcome: str  # "ok" or a KubeError outcome
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "version": self.version, "latency_ms": self.latency_ms,
                "outcome": self.outcome, "message": self.message}


def probe(client: KubeClient) -> ProbeResult:
    version, latency = "", None
    try:
        start = time.perf_counter()
        version = client.get("/version").get("gitVersion", "")
        latency = round((time.perf_counter() - start) * 1000, 1)
        client.get("/api/v1/namespaces", query={"limit": 1})
    except KubeError as exc:
        return ProbeResult(False, version, latency, exc.code, str(exc))
    return ProbeResult(True, version, latency, "ok", "")
