"""A client for one cluster: the ``kubernetes`` package's ApiClient (TLS, pooling,
proxies) driven with raw JSON requests, plus rate limiting and error mapping.

We do not use the generated typed APIs or ``DynamicClient``: both deserialise every
response into model objects and the latter discovers every API group up front. A
rollout only needs JSON in and out, and discovery of the groups it touches.

Clients are cached per cluster and credentials (:func:`client_for`), so the pool's
kept-alive connections and the discovery cache outlive a single apply.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

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
        self._tmpdir = tempfile.mkdtemp(prefix="fleet-kube-") if spec.client_cert_pem else ""
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._tmpdir, True) if self._tmpdir else None
        self._api = ApiClient(self._configuration(spec))
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

    def _configuration(self, spec: ConnectionSpec) -> Configuration:
        config = Configuration(host=self.server)
        config.verify_ssl = True
        config.ca_cert_data = spec.ca_pem or None  # None: the system's trust store
        if spec.client_cert_pem:
            config.cert_file = self._private_file("client.crt", spec.client_cert_pem)
            config.key_file = self._private_file("client.key", spec.client_key_pem)
        config.tls_server_name = spec.tls_server_name or None
        config.connection_pool_maxsize = constants.CONCURRENCY
        config.retries = urllib3.Retry(total=constants.CONNECT_RETRIES, connect=constants.CONNECT_RETRIES,
                                       read=0, status=0, other=0, redirect=0,
                                       backoff_factor=0.2, raise_on_status=False)
        return config

    def _private_file(self, name: str, content: str) -> str:
        """urllib3 loads client certificates only from files: keep them 0600 in a 0700
        directory of our own, removed when the client closes (or is collected)."""
        path = os.path.join(self._tmpdir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        return path

    def close(self) -> None:
        self._api.close()
        if self._cleanup is not None:
            self._cleanup()

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
        verb = verb_of(method, path, query)
        attempt = 0
        while True:
            attempt += 1
            self._limiter.acquire()
            self.counts.add(verb)
            try:
                response = self._api.call_api(method, url, header_params=dict(headers), body=body,
                                              _request_timeout=timeout or (constants.CONNECT_TIMEOUT,
                                                                           constants.READ_TIMEOUT))
                data = response.read()
            except ApiException as exc:  # the REST layer wraps TLS failures, status 0
                raise from_transport(urllib3.exceptions.SSLError(exc.reason or ""), cluster=self.cluster,
                                     server=self.server, obj=obj) from None
            except urllib3.exceptions.ProtocolError as exc:
                if attempt <= constants.IDEMPOTENT_RETRIES:
                    continue
                raise from_transport(exc, cluster=self.cluster, server=self.server, obj=obj) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise from_transport(exc, cluster=self.cluster, server=self.server, obj=obj) from None
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
            response = self._api.call_api("GET", url, header_params=dict(self._headers),
                                          _request_timeout=timeout or (constants.CONNECT_TIMEOUT, None))
        except ApiException as exc:
            raise from_transport(urllib3.exceptions.SSLError(exc.reason or ""), cluster=self.cluster,
                                 server=self.server) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise from_transport(exc, cluster=self.cluster, server=self.server) from None
        raw, finished = response.response, False
        try:
            if not 200 <= response.status < 300:
                raise from_response(response.status, raw.read(), cluster=self.cluster)
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


