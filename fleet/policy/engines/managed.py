"""The embedded engine: an OPA server this process starts, supervises and stops.

The embedded default must answer exactly as OPA does, because it *is* OPA: the same
pinned ``opa`` binary the tests and the local fleet use, run as ``opa run --server
--v0-compatible`` on a loopback port, behind the same :class:`OpaEngine` the
production path uses. Measured against OPA's Go engine loaded in process as a shared
library (``tests/benchmarks/policy_bench.py``), a separate process costs one loopback
round trip per decision and nothing in correctness, and it survives what an in-process
Go runtime does not: Celery's and gunicorn's forked workers (a Go runtime does not
survive ``fork``), and a policy that exhausts memory or crashes the engine, which here
kills OPA, not the web or worker process.

Threat model: any local user can connect to a loopback port. OPA therefore runs with
``--authentication=token --authorization=basic`` and a ``system.authz`` policy that
admits only a random token made at each start, written with the policy into a
private (0700) directory, never on the command line; without it nobody can read,
replace or delete the policies this process loaded.

Supervision: one thread per process owns the OPA child (so Linux's parent-death
signal, tied to the thread that forked, fires only when the process ends). When OPA
exits it is started again at once, at most ``MAX_RESTARTS`` times a minute, and the
engine reloads its bundles on the next decision; a decision made while OPA is down
waits for it (up to the start-up timeout) and otherwise fails closed with the reason.
The process stops OPA at exit; a forked child does not inherit it (the child starts
its own on first use), so each web or worker process runs one OPA of its own.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import requests

from fleet.policy.engines.opa_engine import OpaEngine
from fleet.policy.errors import PolicyError
from fleet.toolchain.cache import locate

logger = logging.getLogger(__name__)
STARTUP_TIMEOUT = 30.0
MAX_RESTARTS = 5  # a minute
_PR_SET_PDEATHSIG = 1
AUTHZ = """package system.authz

import rego.v1

default allow := false

allow if input.identity == "{token}"
"""


def opa_binary() -> Path:
    """The pinned ``opa`` binary (or ``FLEET_OPA_BIN``); never builds it (``scripts/run.sh``
    and the tests do): a missing one is a ``toolchain.missing`` error naming the command."""
    return locate("opa")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec: no locks, no allocation
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_prctl = ctypes.CDLL(None, use_errno=True).prctl


class ManagedOpa:
    """One supervised ``opa run --server`` for this process."""

    def __init__(self, binary: Path, *, startup_timeout: float = STARTUP_TIMEOUT):
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.token = secrets.token_urlsafe(32)
        self.owner = os.getpid()
        self._dir = Path(tempfile.mkdtemp(prefix="fleet-opa-"))  # 0700
        (self._dir / "authz.rego").write_text(AUTHZ.format(token=self.token))
        os.chmod(self._dir / "authz.rego", 0o600)
        self.port = _free_port()
        self.starts = 0  # how many times OPA was started (1 + restarts)
        self._process: subprocess.Popen | None = None
        self._ready = threading.Event()
        self._stopping = False
        self._failure = ""
        self._restarts: deque[float] = deque(maxlen=MAX_RESTARTS)
        self._thread = threading.Thread(target=self._supervise, name="fleet-opa", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def alive(self) -> bool:
        return self._ready.is_set() and self._process is not None and self._process.poll() is None

    def wait_ready(self) -> None:
        """Block until OPA answers (a restart included), or raise why it does not."""
        deadline = time.monotonic() + self.startup_timeout
        while not self.alive() and not self._failure and time.monotonic() < deadline:
            self._ready.wait(0.05)
        if not self.alive() or self._failure:
            raise PolicyError(f"the embedded OPA is not running: {self._failure or 'it did not start in time'}",
                              code="engine")

    def _supervise(self) -> None:
        while not self._stopping:
            now = time.monotonic()
            if len(self._restarts) == MAX_RESTARTS and now - self._restarts[0] < 60:
                self._failure = f"it exited {MAX_RESTARTS} times within a minute; see {self._dir / 'opa.log'}"
                self._ready.set()
                return
            self._restarts.append(now)
            process = self._start()
            if process is None:
                continue
            process.wait()
            self._ready.clear()
            if not self._stopping:
                logger.warning("the embedded OPA (pid %s) exited with status %s; restarting it",
                               process.pid, process.returncode)

    def _start(self) -> subprocess.Popen | None:
        env = {**os.environ, "GOGC": os.environ.get("GOGC", "400")}  # see opa_process.py on GOGC
        for _attempt in range(3):
            with (self._dir / "opa.log").open("a") as log:
                process = subprocess.Popen(
                    [str(self.binary), "run", "--server", "--v0-compatible", "--addr", f"127.0.0.1:{self.port}",
                     "--authentication=token", "--authorization=basic", "--log-level", "error",
                     str(self._dir / "authz.rego")],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                    preexec_fn=_die_with_parent)
            self._process = process
            deadline = time.monotonic() + self.startup_timeout
            while process.poll() is None and time.monotonic() < deadline:
                if self._healthy():
                    self.starts += 1
                    self._failure = ""
                    self._ready.set()
                    return process
                time.sleep(0.02)
            if process.poll() is None:
                process.kill()
                process.wait()
            self.port = _free_port()  # most often the port was taken meanwhile
        self._failure = f"opa did not start (exit status {process.returncode}); see {self._dir / 'opa.log'}"
        self._ready.set()
        return None

    def _healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/health", timeout=1,
                                headers={"Authorization": f"Bearer {self.token}"}).status_code == 200
        except requests.RequestException:
            return False

    def recover(self) -> None:
        """After a request OPA did not answer: wait for the restart of an OPA that died;
        kill one that is alive but has not answered for 2 s, so it is restarted."""
        starts, deadline = self.starts, time.monotonic() + 2
        while self._process is not None and self._process.returncode is None and self._process.poll() is None:
            if self._healthy():
                return  # it answers: the failure was not its death
            if time.monotonic() > deadline:
                self.kill()
                break
            time.sleep(0.05)
        deadline = time.monotonic() + self.startup_timeout
        while self.starts == starts and not self._failure and time.monotonic() < deadline:
            time.sleep(0.02)
        self.wait_ready()

    def kill(self) -> None:
        """Kill OPA as a crash would (tests of the supervision)."""
        if self._process is not None:
            self._process.kill()

    def stop(self) -> None:
        if os.getpid() != self.owner:
            return  # a forked child: the process belongs to the parent
        self._stopping = True
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._thread.join(timeout=5)
        shutil.rmtree(self._dir, ignore_errors=True)


class ManagedOpaEngine(OpaEngine):
    """:class:`OpaEngine` on a :class:`ManagedOpa`: the embedded default."""

    name = "embedded"

    def __init__(self, *, timeout: float = 10.0, parallelism: int = 2, binary: Path | None = None):
        self.server = ManagedOpa(binary or opa_binary())
        atexit.register(self.server.stop)
        self._starts_seen = 0
        self.server.wait_ready()
        super().__init__(self.server.url, timeout=timeout, token=self.server.token, parallelism=parallelism)
        self._starts_seen = self.server.starts

    def _supervised(self) -> None:
        """Wait for a running OPA; after a restart, reconnect and forget what it lost."""
        self.server.wait_ready()
        if self.server.starts != self._starts_seen:
            self._starts_seen = self.server.starts
            self.connect(self.server.url, self.server.token)
            self.forget()

    def prepare(self, bundle, slot: str = "") -> None:
        self._supervised()
        super().prepare(bundle, slot)

    def evaluate(self, bundle, data, reviews, matches, *, per_object: bool = True, whole_set: bool = True,
                 slot: str = ""):
        self._supervised()
        try:
            return super().evaluate(bundle, data, reviews, matches, per_object=per_object,
                                    whole_set=whole_set, slot=slot)
        except PolicyError as exc:
            if exc.code != "engine":
                raise  # the policy's own error
        self.server.recover()  # OPA did not answer: once more, on the restarted one
        self._supervised()
        return super().evaluate(bundle, data, reviews, matches, per_object=per_object, whole_set=whole_set,
                                slot=slot)

    def close(self) -> None:
        self.forget()  # the policies go with the process: no need to delete them one by one
        super().close()
        self.server.stop()
