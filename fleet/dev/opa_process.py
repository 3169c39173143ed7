"""A local ``opa run --server`` for tests, benchmarks and the local fleet.

Production points ``FLEET_OPA_URL`` at an OPA it does not manage; this runs one on a
loopback port for as long as the ``with`` block lasts, and always stops it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class OpaServer:
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time the server has used so far (user + system), for load-independent timing."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def opa_server(binary: Path, log_path: Path, *, startup_timeout: float = 30) -> Iterator[OpaServer]:
    """Start OPA on a free loopback port, wait until healthy, yield it, and stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        # A large decision leaves much garbage (the parsed input, a copy per ``with``): at
        # Go's default GOGC the collector took a fifth of OPA's CPU on 1,000 objects.
        env = {**os.environ, "GOGC": os.environ.get("GOGC", "400")}
        # --v0-compatible: Gatekeeper templates are Rego v0 unless they say otherwise.
        process = subprocess.Popen([str(binary), "run", "--server", "--v0-compatible", "--addr",
                                    f"127.0.0.1:{port}", "--log-level", "error"], stdout=log,
                                   stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + startup_timeout
            while not _healthy(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"opa did not start (exit status {process.poll()}); see {log_path}")
                time.sleep(0.05)
            yield OpaServer(url, process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False
