"""A network between Fleet and its local clusters: Toxiproxy, a TCP proxy whose links
can be given latency, jitter, bandwidth limits, timeouts and resets at run time.

On loopback an API call is almost free; real fleets are tens of milliseconds away and
their clusters slow down, reset connections or vanish. Putting each API server behind
a Toxiproxy listener (TCP: TLS passes through untouched, the serving certificate's
127.0.0.1 still matches) lets tests and benchmarks give each cluster the network they
want, and change it mid-rollout, through Toxiproxy's HTTP API.

``ToxiproxyServer`` runs the server (``toxiproxy-server``, built from its Go module by
``fleet.toolchain``); :class:`Toxiproxy` is a small client for its API and
:class:`Proxy` one proxied link. Plain ``urllib``, like the rest of this package.

Toxics act on the links that exist when they are added, kept-alive connections
included, so a fault injected mid-apply hits the requests in flight.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.dev.localfleet.process import ProcessRecord, is_running, log_tail, spawn, stop

READY_TIMEOUT = 15.0
DOWNSTREAM, UPSTREAM = "downstream", "upstream"  # server->client, client->server


class ToxiproxyError(RuntimeError):
    """The Toxiproxy server refused a request or could not be reached; names the call."""


class Toxiproxy:
    """A client for one Toxiproxy server's HTTP API (``http://127.0.0.1:<port>``)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise ToxiproxyError(f"toxiproxy {method} {path}: {error.code} {error.read().decode(errors='replace')}"
                                 ) from None
        except OSError as error:
            raise ToxiproxyError(f"toxiproxy at {self.url} unreachable ({method} {path}): {error}") from None
        return json.loads(raw) if raw.strip() else None

    def version(self) -> str:
        request = urllib.request.Request(self.url + "/version")
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.read().decode().strip()

    def create_proxy(self, name: str, *, upstream: str, listen: str = "127.0.0.1:0") -> Proxy:
        """A new listener forwarding to ``upstream`` (``host:port``); port 0 lets the
        server pick a free one, which :attr:`Proxy.listen` then reports."""
        data = self.call("POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream,
                                              "enabled": True})
        return Proxy(self, data["name"], data["listen"], data["upstream"])

    def proxy(self, name: str) -> Proxy:
        data = self.call("GET", f"/proxies/{name}")
        return Proxy(self, data["name"], data["listen"], data["upstream"])

    def proxies(self) -> dict[str, Proxy]:
        return {name: Proxy(self, name, data["listen"], data["upstream"])
                for name, data in (self.call("GET", "/proxies") or {}).items()}

    def delete_proxy(self, name: str) -> None:
        self.call("DELETE", f"/proxies/{name}")

    def reset(self) -> None:
        """Every proxy enabled again and every toxic removed: the network as created."""
        self.call("POST", "/reset")


@dataclass(frozen=True)
class Proxy:
    """One proxied link: clients connect to ``listen``, the proxy to ``upstream``."""

    api: Toxiproxy
    name: str
    listen: str  # host:port
    upstream: str

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    def add_toxic(self, kind: str, attributes: dict[str, Any], *, stream: str = DOWNSTREAM,
                  toxicity: float = 1.0, name: str = "") -> str:
        """Add a toxic (Toxiproxy's ``type``) and return its name, for :meth:`remove_toxic`."""
        name = name or f"{kind}_{stream}"
        self.api.call("POST", f"/proxies/{self.name}/toxics", {
            "name": name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes})
        return name

    def remove_toxic(self, name: str) -> None:
        self.api.call("DELETE", f"/proxies/{self.name}/toxics/{name}")

    def toxics(self) -> list[dict[str, Any]]:
        return self.api.call("GET", f"/proxies/{self.name}/toxics") or []

    def clear(self) -> None:
        """Remove every toxic of this proxy (others are left alone) and enable it."""
        for toxic in self.toxics():
            self.remove_toxic(toxic["name"])
        self.enable()

    # -- the faults the tests and benchmarks use -----------------------------------

    def latency(self, ms: int, jitter_ms: int = 0) -> list[str]:
        """Delay each direction by ``ms`` ± ``jitter_ms``/2: a round trip costs 2×``ms``
        on average; set ``ms`` to half the round trip wanted."""
        return [self.add_toxic("latency", {"latency": ms, "jitter": jitter_ms}, stream=stream)
                for stream in (UPSTREAM, DOWNSTREAM)]

    def bandwidth(self, kilobytes_per_second: int) -> str:
        """Cap what the server sends back (responses are what is large)."""
        return self.add_toxic("bandwidth", {"rate": kilobytes_per_second})

    def timeout(self, ms: int) -> str:
        """Stop all data and close the connection after ``ms``; 0 never closes it."""
        return self.add_toxic("timeout", {"timeout": ms}, stream=UPSTREAM)

    def blackhole(self) -> str:
        """The cluster vanishes: connections (new and open) are accepted and kept, and
        nothing comes back, ever. What a client sees of a partitioned network."""
        return self.timeout(0)

    def reset_peer(self, after_ms: int = 0) -> str:
        """Reset connections (TCP RST) ``after_ms`` after data arrives."""
        return self.add_toxic("reset_peer", {"timeout": after_ms}, stream=UPSTREAM)

    def disable(self) -> None:
        """Close every connection and stop listening: connections are refused."""
        self.api.call("POST", f"/proxies/{self.name}", {"enabled": False})

    def enable(self) -> None:
        self.api.call("POST", f"/proxies/{self.name}", {"enabled": True})

    @contextmanager
    def fault(self, kind: str, attributes: dict[str, Any], *, stream: str = DOWNSTREAM) -> Iterator[str]:
        """A toxic for the duration of a ``with`` block."""
        name = self.add_toxic(kind, attributes, stream=stream)
        try:
            yield name
        finally:
            self.remove_toxic(name)


class ToxiproxyServer:
    """One ``toxiproxy-server`` process on a loopback port, logged to ``log_path``."""

    def __init__(self, record: ProcessRecord, port: int) -> None:
        self.record, self.port = record, port
        self.api = Toxiproxy(f"http://127.0.0.1:{port}")

    @classmethod
    def start(cls, binary: Path, port: int, log_path: Path, *, die_with_parent: bool) -> ToxiproxyServer:
        argv = [str(binary), "-host", "127.0.0.1", "-port", str(port)]
        server = cls(spawn("toxiproxy", argv, log_path, die_with_parent=die_with_parent), port)
        server.wait_ready()
        return server

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if not is_running(self.record):
                raise ToxiproxyError(f"toxiproxy-server exited during start-up; see {self.record.log}:\n"
                                     f"{log_tail(self.record.log)}")
            try:
                self.api.version()
                return
            except OSError:
                time.sleep(0.05)
        raise ToxiproxyError(f"toxiproxy-server did not answer in {READY_TIMEOUT:.0f}s; see {self.record.log}")

    def running(self) -> bool:
        return is_running(self.record)

    def stop(self) -> None:
        stop([self.record])
