"""Client tuning and the names Fleet writes into clusters, chosen deliberately.

A rollout applies to hundreds of clusters from a few workers, so the limits are per
cluster. Each API server sees at most ``QPS`` requests a second from one client,
bursting to ``BURST``: the burst covers one apply of a large set (a 100-object set
is ~250 requests: namespace checks, dry-run, apply, ApplySet lists) at full speed,
and the sustained rate keeps a control plane stuck in a loop from flooding a small
cluster. These are kubectl's own values (50/300); client-go's defaults (5/10) would
make a 20-object apply take ten seconds.
"""

from __future__ import annotations

from typing import Final

FIELD_MANAGER: Final = "fleet"
TOOLING: Final = "fleet/v1"

QPS: Final = 50.0
BURST: Final = 300
# Concurrent requests to one cluster while applying, reading or polling; also the
# urllib3 pool size, so every worker thread reuses a kept-alive connection.
CONCURRENCY: Final = 8
# (connect, read) seconds. Connecting to a live API server takes milliseconds: 5s
# tells "unreachable" apart quickly. Reads wait on etcd and admission webhooks: 30s
# is the API server's own default request timeout (--request-timeout=1m0s halved).
CONNECT_TIMEOUT: Final = 5.0
READ_TIMEOUT: Final = 30.0
# Retries only for connections that never carried a request: safe for every verb.
CONNECT_RETRIES: Final = 2
# Retries of a request whose connection dropped, or that got 429 Too Many Requests.
IDEMPOTENT_RETRIES: Final = 2

# How long discovery (kind -> URL) is trusted before it is read again.
DISCOVERY_TTL: Final = 300.0

# Where ApplySet parents live, and how long to wait for a CRD to be served.
SYSTEM_NAMESPACE: Final = "fleet-system"
CRD_ESTABLISHED_TIMEOUT: Final = 60.0
# Health: a watch the server ended before the deadline is opened again after this.
HEALTH_REWATCH_DELAY: Final = 1.0
