"""A local fleet: N clusters named local-1..local-N sharing one etcd, all on loopback.

Everything lives in a state directory (``${FLEET_LOCALFLEET_DIR:-~/.cache/fleet/localfleet}``
by default): a JSON state file with ports, tokens and PIDs, so ``down`` and ``status``
work from another process than ``up``; the CA; one directory per cluster with its
certs, kubeconfig and process logs; etcd's data.

Why one etcd for the fleet rather than one per cluster: each cluster keeps its objects
under its own ``--etcd-prefix``, which isolates them as well as separate servers would
for our purposes, and the fleet saves a process, a port pair and ~30 MiB per cluster.
The price is that etcd is a shared point of failure, which a test fixture can accept.

With ``up(..., network=True)`` each API server is also put behind its own Toxiproxy
listener (``toxiproxy``) and the clusters' ``server`` is that listener, so tests and
benchmarks can give the link latency, resets or a blackhole. Off by default: the
fleet's own components (controller-manager, scheduler, kwok) always talk to their
API server directly, and so does each cluster's kubeconfig.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.dev.localfleet import cluster as kube
from fleet.dev.localfleet import pki
from fleet.dev.localfleet.cluster import AuditSink, ClusterFiles, ClusterState, LocalCluster
from fleet.dev.localfleet.process import ProcessRecord, is_running, log_tail, rss_bytes, spawn, stop
from fleet.dev.localfleet.toxiproxy import Proxy, Toxiproxy, ToxiproxyError, ToxiproxyServer
from fleet.toolchain.build import ensure_binaries

Progress = Callable[[str], None]

STATE_FILE = "fleet.json"
READY_TIMEOUT = 60.0
# What each component must have done before `up` returns (used in timeout messages).
WAITING_FOR = {
    "kube-apiserver": "become ready",
    "kwok": f"report {kube.NODE_COUNT} Ready nodes",
    "kube-controller-manager": "create the default ServiceAccount",
}
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kwok-stages")
NETWORK_BINARY = "toxiproxy-server"


class LocalFleetError(RuntimeError):
    """A fleet operation failed; the message names the process and its log."""


def default_state_dir() -> Path:
    configured = os.environ.get("FLEET_LOCALFLEET_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "fleet" / "localfleet"


@dataclass
class EtcdState:
    client_port: int
    peer_port: int
    processes: list[ProcessRecord]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"


@dataclass
class NetworkState:
    """The Toxiproxy server in front of the clusters (its proxies live in its memory)."""

    port: int
    processes: list[ProcessRecord]


@dataclass(frozen=True)
class ClusterStatus:
    name: str
    server: str
    ready: bool  # /readyz answers 200
    processes: dict[str, bool]  # component -> running
    rss_bytes: int  # the cluster's processes, etcd excluded
    kubeconfig_path: Path


class LocalFleet:
    """Start, inspect and stop the fleet recorded in ``state_dir``."""

    def __init__(self, state_dir: Path | str | None = None) -> None:
        self.state_dir = Path(state_dir).expanduser() if state_dir else default_state_dir()

    # -- public API ---------------------------------------------------------------

    def up(
        self, count: int, *, network: bool = False, die_with_parent: bool = False, progress: Progress = print
    ) -> list[LocalCluster]:
        """Make local-1..local-``count`` run and be able to run workloads.

        Clusters already running are reported and left alone; dead ones are restarted
        on their previous port (when free) with their data. ``die_with_parent`` ties
        every process to the calling thread (see ``process``), for test sessions.
        With ``network`` every cluster is reached through its Toxiproxy listener
        (:meth:`proxy`), started or re-created as needed.
        """
        if count < 1:
            raise LocalFleetError("a fleet needs at least one cluster")
        paths = ensure_binaries(BINARIES + ((NETWORK_BINARY,) if network else ()), progress=progress)
        with self._locked():
            etcd, clusters = self._load()
            ca = pki.ensure_ca(self.state_dir / "pki")
            if etcd is None or not _all_running(etcd.processes):
                etcd = self._start_etcd(etcd, paths["etcd"], die_with_parent)
                self._save(etcd, clusters)
                self._wait_etcd(etcd)
            started = []
            for index in range(1, count + 1):
                name = f"local-{index}"
                state = clusters.get(name)
                if state is not None and _all_running(state.processes):
                    progress(f"{name}: already running at {state.server}")
                    continue
                clusters[name] = state = self._start_apiserver(state, name, paths, etcd, ca, die_with_parent)
                started.append(state)
                self._save(etcd, clusters)
            self._wait(started, lambda s: None if kube.is_ready(s, ca.cert_pem) else "kube-apiserver")
            for state in started:
                self._start_components(state, paths, ca, die_with_parent)
                kube.create_nodes(state, ca.cert_pem)
            self._save(etcd, clusters)
            self._wait(started, lambda s: kube.missing_for_workloads(s, ca.cert_pem))
            for state in started:
                progress(f"{state.name}: ready at {state.server}")
            if network:
                self._network_up(paths[NETWORK_BINARY], [clusters[f"local-{i}"] for i in range(1, count + 1)],
                                 die_with_parent, progress)
                self._save(etcd, clusters)
            return [self._local_cluster(clusters[f"local-{i}"], ca.cert_pem, network=network)
                    for i in range(1, count + 1)]

    def network(self) -> Toxiproxy:
        """The client of the fleet's Toxiproxy (``up(..., network=True)`` started it)."""
        state = self._load_network()
        if state is None or not _all_running(state.processes):
            raise LocalFleetError(f"the fleet in {self.state_dir} has no network running: up(..., network=True)")
        return Toxiproxy(f"http://127.0.0.1:{state.port}")

    def proxy(self, name: str) -> Proxy:
        """The Toxiproxy link in front of cluster ``name`` (named after it)."""
        try:
            return self.network().proxy(name)
        except ToxiproxyError as error:
            raise LocalFleetError(f"{name} has no proxy: {error}") from None

    def enable_audit(self, name: str, sink: AuditSink | None, *, die_with_parent: bool = False) -> None:
        """Make cluster ``name``'s API server send its audit events to ``sink`` (Fleet's ingest
        endpoint), or stop it (``None``): its kube-apiserver restarts on the same port with
        the audit flags, and keeps them across later restarts. Optional per cluster, so a
        fleet whose clusters never call it runs as before. ``die_with_parent`` as for ``up``."""
        with self._locked():
            etcd, clusters = self._load()
            state = clusters.get(name)
            if state is None or etcd is None or not _all_running(state.processes):
                raise LocalFleetError(f"{name} is not running: `up` it first")
            ca = pki.ensure_ca(self.state_dir / "pki")
            files = self._files(name)
            state.audit = sink
            if sink is not None:
                kube.write_audit_files(files, sink)
            old = next(p for p in state.processes if p.name == "kube-apiserver")
            stop([old])
            paths = ensure_binaries(("kube-apiserver",), progress=lambda _: None)
            argv = kube.apiserver_argv(paths["kube-apiserver"], state, files, etcd.url)
            new = spawn("kube-apiserver", argv, files.log("kube-apiserver"), die_with_parent=die_with_parent)
            state.processes = [new if p is old else p for p in state.processes]
            self._save(etcd, clusters)
            self._wait([state], lambda s: None if kube.is_ready(s, ca.cert_pem) else "kube-apiserver")

    def tls_front(self) -> tuple[Path, Path, str]:
        """A serving certificate and key of the fleet's CA for a TLS front of Fleet
        (``tlsproxy``), and that CA: what an audit webhook needs to reach a plain-HTTP Fleet."""
        ca = pki.ensure_ca(self.state_dir / "pki")
        directory = self.state_dir / "audit-proxy"
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / "proxy.crt", directory / "proxy.key"
        if not (cert.is_file() and key.is_file()):
            pki.issue_serving_cert(ca, "fleet-audit-proxy", cert, key)
        return cert, key, ca.cert_pem

    def start_tls_front(self, target_port: int) -> tuple[str, str]:
        """Run a TLS proxy to the Fleet serving plain HTTP on ``target_port`` (the demo's),
        as a process ``down`` stops; its https URL and the CA of its certificate."""
        cert, key, ca_pem = self.tls_front()
        record_file = self.state_dir / "audit-proxy" / "process.json"
        if record_file.is_file():
            data = json.loads(record_file.read_text())
            if is_running(ProcessRecord.from_json(data["process"])) and data["target"] == target_port:
                return f"https://127.0.0.1:{data['port']}", ca_pem
            stop([ProcessRecord.from_json(data["process"])])
        [port] = _free_ports(1)
        argv = [sys.executable, "-m", "fleet.dev.localfleet.tlsproxy", f"--port={port}",
                f"--to=127.0.0.1:{target_port}", f"--cert={cert}", f"--key={key}"]
        record = spawn("audit-proxy", argv, self.state_dir / "logs" / "audit-proxy.log", die_with_parent=False)
        record_file.write_text(json.dumps({"port": port, "target": target_port, "process": record.to_json()}))
        return f"https://127.0.0.1:{port}", ca_pem

    def audit_log(self, name: str) -> Path:
        """The API server's own copy of the audit events it sends (``--audit-log-path``)."""
        return self._files(name).audit_log

    def clusters(self) -> list[LocalCluster]:
        """The recorded clusters, running or not, in name order."""
        _, clusters = self._load()
        if not clusters:
            return []
        ca_pem = (self.state_dir / "pki" / "ca.crt").read_text()
        network = self._load_network()
        proxied = network is not None and _all_running(network.processes)
        return [self._local_cluster(state, ca_pem, network=proxied) for state in clusters.values()]

    def status(self) -> list[ClusterStatus]:
        _, clusters = self._load()
        ca_path = self.state_dir / "pki" / "ca.crt"
        result = []
        for state in clusters.values():
            running = {p.name: is_running(p) for p in state.processes}
            result.append(
                ClusterStatus(
                    name=state.name,
                    server=state.server,
                    ready=_all_running(state.processes) and kube.is_ready(state, ca_path.read_text()),
                    processes=running,
                    rss_bytes=sum(rss_bytes(p) for p in state.processes),
                    kubeconfig_path=self._files(state.name).kubeconfig,
                )
            )
        return result

    def etcd_running(self) -> bool:
        etcd, _ = self._load()
        return etcd is not None and _all_running(etcd.processes)

    def down(self, *, purge: bool = False) -> None:
        """Stop every process of the fleet (clusters first, etcd last) and wait for them.

        With ``purge`` the state directory is deleted too, so the next ``up`` starts empty.
        """
        with self._locked():
            etcd, clusters = self._load()
            network = self._load_network()
            if network is not None:
                stop(network.processes)
            stop([p for state in clusters.values() for p in state.processes])
            proxy = self.state_dir / "audit-proxy" / "process.json"
            if proxy.is_file():
                stop([ProcessRecord.from_json(json.loads(proxy.read_text())["process"])])
                proxy.unlink()
            if etcd is not None:
                stop(etcd.processes)
            for state in clusters.values():
                state.processes = []
            if etcd is not None:
                etcd.processes = []
            self._save(etcd, clusters, network=NetworkState(network.port, []) if network else None)
        if purge:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- starting processes ---------------------------------------------------------

    def _start_etcd(self, previous: EtcdState | None, binary: Path, die_with_parent: bool) -> EtcdState:
        if previous is not None:
            stop(previous.processes)
        client_port, peer_port = _free_ports(
            2, prefer=(previous.client_port, previous.peer_port) if previous else ()
        )
        peer_url = f"http://127.0.0.1:{peer_port}"
        client_url = f"http://127.0.0.1:{client_port}"
        argv = [
            str(binary),
            "--name=localfleet",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=localfleet={peer_url}",
            # Test data is disposable: skipping fsync makes every write far cheaper.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
        record = spawn("etcd", argv, self.state_dir / "logs" / "etcd.log", die_with_parent=die_with_parent)
        return EtcdState(client_port, peer_port, [record])

    def _wait_etcd(self, etcd: EtcdState) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        record = etcd.processes[0]
        while time.monotonic() < deadline:
            if not is_running(record):
                raise LocalFleetError(f"etcd exited during start-up; see {record.log}:\n{log_tail(record.log)}")
            try:
                with urllib.request.urlopen(f"{etcd.url}/health", timeout=1) as response:
                    if json.load(response).get("health") == "true":
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise LocalFleetError(
            f"etcd did not become healthy in {READY_TIMEOUT:.0f}s; see {record.log}:\n{log_tail(record.log)}"
        )

    def _start_apiserver(
        self,
        previous: ClusterState | None,
        name: str,
        paths: dict[str, Path],
        etcd: EtcdState,
        ca: pki.CertificateAuthority,
        die_with_parent: bool,
    ) -> ClusterState:
        if previous is not None:
            stop(previous.processes)  # a partly dead cluster is restarted whole
            state = previous
            state.port, state.scheduler_port = _free_ports(2, prefer=(previous.port, previous.scheduler_port))
        else:
            port, scheduler_port = _free_ports(2)
            state = ClusterState(name=name, port=port, scheduler_port=scheduler_port)
        files = self._files(name)
        kube.prepare_files(state, files, ca)
        argv = kube.apiserver_argv(paths["kube-apiserver"], state, files, etcd.url)
        state.processes = [
            spawn("kube-apiserver", argv, files.log("kube-apiserver"), die_with_parent=die_with_parent)
        ]
        return state

    def _start_components(
        self, state: ClusterState, paths: dict[str, Path], ca: pki.CertificateAuthority, die_with_parent: bool
    ) -> None:
        files = self._files(state.name)
        commands = {
            "kube-controller-manager": kube.controller_manager_argv(
                paths["kube-controller-manager"], state, files, ca.cert_path
            ),
            "kube-scheduler": kube.scheduler_argv(paths["kube-scheduler"], state, files),
            "kwok": kube.kwok_argv(paths["kwok"], files, paths["kwok-stages"]),
        }
        for component, argv in commands.items():
            state.processes.append(
                spawn(component, argv, files.log(component), die_with_parent=die_with_parent)
            )

    def _wait(self, states: list[ClusterState], blame: Callable[[ClusterState], str | None]) -> None:
        """Poll all clusters together until ``blame`` (which names the component that has
        not done its part yet, or None) is satisfied; fail fast if a process died."""
        pending = list(states)
        deadline = time.monotonic() + READY_TIMEOUT
        while pending:
            for state in pending:
                dead = [p for p in state.processes if not is_running(p)]
                if dead:
                    raise LocalFleetError(
                        f"{dead[0].name} for {state.name} exited during start-up; "
                        f"see {dead[0].log}:\n{log_tail(dead[0].log)}"
                    )
            blamed = {state.name: blame(state) for state in pending}
            pending = [state for state in pending if blamed[state.name]]
            if pending and time.monotonic() > deadline:
                state = pending[0]
                component = blamed[state.name] or ""
                log = next(p.log for p in state.processes if p.name == component)
                raise LocalFleetError(
                    f"{component} for {state.name} did not {WAITING_FOR[component]} in {READY_TIMEOUT:.0f}s; "
                    f"see {log}:\n{log_tail(log)}"
                )
            if pending:
                time.sleep(0.2)

    def _network_up(self, binary: Path, states: list[ClusterState], die_with_parent: bool,
                    progress: Progress) -> None:
        """Start Toxiproxy if it is not running, and give each cluster its proxy: on its
        recorded port when that is free (a restarted Toxiproxy forgot its proxies)."""
        network = self._load_network()
        if network is None or not _all_running(network.processes):
            if network is not None:
                stop(network.processes)
            port = _free_ports(1, prefer=(network.port,) if network else ())[0]
            server = ToxiproxyServer.start(binary, port, self.state_dir / "logs" / "toxiproxy.log",
                                           die_with_parent=die_with_parent)
            network = NetworkState(port, [server.record])
            self._write_network(network)
        api = Toxiproxy(f"http://127.0.0.1:{network.port}")
        existing = api.proxies()
        for state in states:
            proxy = existing.get(state.name)
            upstream = f"127.0.0.1:{state.port}"
            if proxy is not None and proxy.upstream == upstream and proxy.port == state.proxy_port:
                continue
            if proxy is not None:
                api.delete_proxy(state.name)
            port = _free_ports(1, prefer=(state.proxy_port,) if state.proxy_port else ())[0]
            state.proxy_port = api.create_proxy(state.name, upstream=upstream, listen=f"127.0.0.1:{port}").port
            progress(f"{state.name}: behind toxiproxy at {state.proxied_server}")

    # -- state --------------------------------------------------------------------

    def _files(self, name: str) -> ClusterFiles:
        return ClusterFiles(self.state_dir / "clusters" / name)

    def _local_cluster(self, state: ClusterState, ca_pem: str, *, network: bool = False) -> LocalCluster:
        return LocalCluster(
            name=state.name,
            server=state.proxied_server if network else state.server,
            direct_server=state.server,
            ca_pem=ca_pem,
            token=state.token,
            viewer_token=state.viewer_token,
            kubeconfig_path=self._files(state.name).kubeconfig,
        )

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One ``up``/``down`` at a time per state directory, across processes."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            lock = stack.enter_context(open(self.state_dir / ".lock", "w"))
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _load(self) -> tuple[EtcdState | None, dict[str, ClusterState]]:
        path = self.state_dir / STATE_FILE
        if not path.is_file():
            return None, {}
        data: dict[str, Any] = json.loads(path.read_text())
        etcd = None
        if data.get("etcd"):
            raw = data["etcd"]
            etcd = EtcdState(
                raw["client_port"], raw["peer_port"], [ProcessRecord.from_json(p) for p in raw["processes"]]
            )
        clusters = {c["name"]: ClusterState.from_json(c) for c in data.get("clusters", [])}
        return etcd, dict(sorted(clusters.items(), key=lambda item: int(item[0].rsplit("-", 1)[1])))

    def _load_network(self) -> NetworkState | None:
        path = self.state_dir / STATE_FILE
        raw = json.loads(path.read_text()).get("network") if path.is_file() else None
        if not raw:
            return None
        return NetworkState(raw["port"], [ProcessRecord.from_json(p) for p in raw["processes"]])

    def _write_network(self, network: NetworkState) -> None:
        etcd, clusters = self._load()
        self._save(etcd, clusters, network=network)

    _KEEP = object()

    def _save(self, etcd: EtcdState | None, clusters: dict[str, ClusterState],
              network: NetworkState | None | object = _KEEP) -> None:
        """Write the state file; the network entry is kept as it is unless given."""
        if network is LocalFleet._KEEP:
            network = self._load_network()
        data = {
            "network": None if network is None else {
                "port": network.port, "processes": [p.to_json() for p in network.processes]},
            "etcd": None
            if etcd is None
            else {
                "client_port": etcd.client_port,
                "peer_port": etcd.peer_port,
                "processes": [p.to_json() for p in etcd.processes],
            },
            "clusters": [state.to_json() for state in clusters.values()],
        }
        path = self.state_dir / STATE_FILE
        staging = path.with_suffix(".tmp")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds tokens
        with os.fdopen(fd, "w") as file:
            json.dump(data, file, indent=2)
        os.replace(staging, path)


def _all_running(records: list[ProcessRecord]) -> bool:
    """Recorded and all alive (an empty list, as after `down`, is not running)."""
    return bool(records) and all(is_running(record) for record in records)


def _free_ports(count: int, prefer: tuple[int, ...] = ()) -> list[int]:
    """Loopback ports free right now: the preferred ones if all are, else fresh ones
    (held open together so they are distinct)."""
    if prefer and all(_is_free(port) for port in prefer):
        return list(prefer)
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
