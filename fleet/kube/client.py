"""A client for one cluster: urllib3 (TLS, pooling) driven with raw JSON requests, plus
rate limiting and error mapping.

We do not use the ``kubernetes`` package's generated typed APIs or ``DynamicClient``:
both deserialise every response into model objects and the latter discovers every API
group up front. A rollout only needs JSON in and out, and discovery of the groups it
touches. Nor its ApiClient: it builds a new TLS context for every connection (the CA
parsed, the client key read from disk again), which at a thousand clusters of eight
connections each is a visible share of a rollout's CPU. One context per client is built
here, once, and the client key is on disk only while it loads.

Clients are cached per cluster and credentials (:func:`client_for`), so the pool's
kept-alive connections and the discovery cache outlive a single apply.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import urllib3
from urllib3.util.ssl_ import create_urllib3_context

from fleet.inventory.kubeconfig import ConnectionSpec
from fleet.kube import constants
from fleet.kube.connection import spec_for_cluster
from fleet.kube.discovery import Discovery
from fleet.kube.errors import from_response, from_transport

JSON = "application/json"
APPLY_PATCH = "application/apply-patch+yaml"


class RateLimiter:
    """A token bucket: ``qps`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, qps: float, burst: int):
        self.qps, self.burst = qps, burst
        self._tokens, self._last = float(burst), time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if wait:
            time.sleep(wait)


_WRITE_VERBS = {"PATCH": "patch", "POST": "create", "PUT": "update", "DELETE": "delete"}


def verb_of(method: str, path: str, query: Mapping[str, Any] | None = None) -> str:
    """What a request is to the API server, as its audit log names the verb: ``get`` (one
    object), ``list`` (a collection), ``watch``, ``patch``, ``create``, ``update``,
    ``delete``; ``discovery`` for reads outside the resources (API groups, /version);
    `` dry-run`` appended to a write the server only validates. The path's shape tells
    an object from a collection, as the server's own request parser does:
    ``/api/v1[/namespaces/<ns>]/<plural>[/<name>[/<subresource>]]`` (``/apis/<group>/<version>/…``).
    """
    query = query or {}
    if method != "GET":
        verb = _WRITE_VERBS.get(method, method.lower())
        return f"{verb} dry-run" if query.get("dryRun") else verb
    if query.get("watch"):
        return "watch"
    parts = path.strip("/").split("/")
    rest = parts[2:] if parts[0] == "api" else parts[3:] if parts[0] == "apis" else []
    if not rest:
        return "discovery"
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]  # a namespaced resource: what follows is <plural>[/<name>…]
    return "list" if len(rest) == 1 else "get"


class RequestCounts:
    """Requests sent to one API server, by :func:`verb_of`, retries included: what a
    deployment costs the server, for tests and benchmarks to read (``snapshot``) or
    start again from zero (``reset``). ``total`` counts every request since the client
    was made and never resets, so concurrent readers can each measure a difference."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self.total = 0

    def add(self, verb: str) -> None:
        with self._lock:
            self._counts[verb] += 1
            self.total += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> dict[str, int]:
        """The counts so far; counting starts again from zero."""
        with self._lock:
            counts, self._counts = dict(self._counts), Counter()
            return counts


class KubeClient:
    """Raw JSON requests to one API server; raises :class:`~fleet.kube.errors.KubeError`."""

    def __init__(self, spec: ConnectionSpec):
        self.cluster = spec.name
        self.server = spec.server.rstrip("/")
        self.fingerprint = spec.fingerprint()
        try:
            context = tls_context(spec)
        except (ssl.SSLError, ValueError) as exc:  # a stored CA or key ssl cannot load: the cluster's error
            raise from_transport(exc, cluster=self.cluster, server=self.server) from None
        self._pool = urllib3.PoolManager(
            ssl_context=context, cert_reqs=ssl.CERT_REQUIRED,
            server_hostname=spec.tls_server_name or None, maxsize=constants.CONCURRENCY,
            retries=urllib3.Retry(total=constants.CONNECT_RETRIES, connect=constants.CONNECT_RETRIES,
                                  read=0, status=0, other=0, redirect=0,
                                  backoff_factor=0.2, raise_on_status=False))
        self._headers = {"Accept": JSON, "User-Agent": "fleet/1 (kube adapter)"}
        if spec.token:
            self._headers["Authorization"] = f"Bearer {spec.token}"
        self._limiter = RateLimiter(constants.QPS, constants.BURST)
        self.counts = RequestCounts()
        self.discovery = Discovery(self)

    @property
    def requests_sent(self) -> int:
        """Requests sent so far (retries included): what a caller measures its cost in."""
        return self.counts.total

    @property
    def connections_opened(self) -> int:
        """TCP (and TLS) connections made so far: each is a handshake the server pays for."""
        pools = self._pool.pools
        return sum(pools[key].num_connections for key in pools.keys())

    def close(self) -> None:
        self._pool.clear()

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KubeClient(cluster={self.cluster!r}, server={self.server!r})"

    def request(self, method: str, path: str, *, query: Mapping[str, Any] | None = None,
                body: Any = None, content_type: str = JSON, obj: object | None = None,
                timeout: float | tuple[float, float] | None = None) -> Any:
        """Send one request and return the decoded JSON body; errors name ``obj``.

        Every request we make is idempotent (server-side apply, reads, deletes with a
        uid precondition), so a kept-alive connection the server dropped, or a 429
        from API priority and fairness, is retried a few times.
        """
        url = self.server + path + (f"?{urlencode(query, doseq=True)}" if query else "")
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = content_type
            body = body if isinstance(body, (str, bytes)) else json.dumps(body)
        verb = verb_of(method, path, query)
        attempt = 0
        while True:
            attempt += 1
            self._limiter.acquire()
            self.counts.add(verb)
            try:
                response = self._pool.request(method, url, body=body, headers=headers,
                                              timeout=_timeout(timeout or (constants.CONNECT_TIMEOUT,
                                                                           constants.READ_TIMEOUT)))
            except urllib3.exceptions.ProtocolError as exc:
                if attempt <= constants.IDEMPOTENT_RETRIES:
                    continue
                raise from_transport(exc, cluster=self.cluster, server=self.server, obj=obj) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise from_transport(exc, cluster=self.cluster, server=self.server, obj=obj) from None
            data = response.data
            if response.status == 429 and attempt <= constants.IDEMPOTENT_RETRIES:
                time.sleep(min(float(response.headers.get("Retry-After") or 1), 5.0))
                continue
            if not 200 <= response.status < 300:
                raise from_response(response.status, data, cluster=self.cluster, obj=obj)
            return json.loads(data) if data else {}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def stream(self, path: str, *, query: Mapping[str, Any] | None = None,
               timeout: float | tuple[float, float] | None = None, until: float | None = None) -> Iterator[Any]:
        """GET ``path`` and yield each line of the body as JSON as it arrives: a watch
        (``?watch=1``), whose events come one per line until the server ends it.

        ``until`` (a :func:`time.monotonic` time): the stream ends then, quietly, whether or
        not the server has more to say; no read of the body waits past it (the answer's
        headers wait as ``timeout`` says, and not getting them is an error as ever). A
        stream left before its end closes its connection there and then, which ends the
        watch on the server too (not whenever the response is garbage-collected).
        """
        url = self.server + path + (f"?{urlencode(query, doseq=True)}" if query else "")
        self._limiter.acquire()
        self.counts.add(verb_of("GET", path, query))
        try:
            raw = self._pool.request("GET", url, headers=self._headers, preload_content=False,
                                     timeout=_timeout(timeout or (constants.CONNECT_TIMEOUT, None)))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise from_transport(exc, cluster=self.cluster, server=self.server) from None
        finished = False
        try:
            if not 200 <= raw.status < 300:
                raise from_response(raw.status, raw.read(), cluster=self.cluster)
            for line in _lines(raw, until):
                if line.strip():
                    yield json.loads(line)
            finished = until is None or time.monotonic() < until
        except urllib3.exceptions.ReadTimeoutError as exc:
            if until is None or time.monotonic() < until:
                raise from_transport(exc, cluster=self.cluster, server=self.server) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise from_transport(exc, cluster=self.cluster, server=self.server) from None
        finally:
            if not finished:
                raw.close()
            raw.release_conn()


def tls_context(spec: ConnectionSpec) -> ssl.SSLContext:
    """The TLS context of every connection to ``spec``'s server: its CA (the system's
    trust store when it names none), and its client certificate when it has one. The
    ``ssl`` module loads a key only from a file: it is written 0600 into a 0700
    directory of our own, loaded, and removed at once."""
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    if spec.ca_pem:
        context.load_verify_locations(cadata=spec.ca_pem)
    else:
        context.load_default_certs()
    if spec.client_cert_pem:
        scratch = tempfile.mkdtemp(prefix="fleet-kube-")
        try:
            cert, key = (os.path.join(scratch, name) for name in ("client.crt", "client.key"))
            for path, content in ((cert, spec.client_cert_pem), (key, spec.client_key_pem)):
                with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
                    handle.write(content)
            context.load_cert_chain(cert, key)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return context


def _timeout(timeout: float | tuple[float, float | None]) -> urllib3.Timeout:
    """A total for one number, else (connect, read), as the callers give it."""
    if isinstance(timeout, tuple):
        return urllib3.Timeout(connect=timeout[0], read=timeout[1])
    return urllib3.Timeout(total=timeout)


def _lines(raw: urllib3.BaseHTTPResponse, until: float | None) -> Iterator[bytes]:
    """The body's lines; with ``until``, none after it, and each read of the socket waits
    only for what is left of it (a read that waits longer raises ReadTimeoutError)."""
    def bound() -> bool:
        if until is None:
            return True
        left = until - time.monotonic()
        connection = raw.connection
        if left > 0 and connection is not None and connection.sock is not None:
            connection.sock.settimeout(left)
        return left > 0

    if not bound():
        return
    for line in raw:
        yield line
        if not bound():
            return


_cache: dict[int, KubeClient] = {}
_cache_lock = threading.Lock()


def client_for(cluster: Any) -> KubeClient:
    """The cached client of an inventory cluster, rebuilt when its credentials or URL
    change (the old one is closed, its temporary key files removed)."""
    spec = spec_for_cluster(cluster)
    fingerprint = spec.fingerprint()
    with _cache_lock:
        client = _cache.get(cluster.pk)
        if client is not None and client.fingerprint == fingerprint:
            return client
        if client is not None:
            client.close()
        client = _cache[cluster.pk] = KubeClient(spec)
        return client


def forget_clients() -> None:
    """Close every cached client (tests; a worker shutting down)."""
    with _cache_lock:
        for client in _cache.values():
            client.close()
        _cache.clear()


