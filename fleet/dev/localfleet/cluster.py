"""One local cluster: its files, the command lines of its processes, and its bootstrap.

A cluster is kube-apiserver (TLS, token auth, RBAC) on a loopback port, storing under
its own ``--etcd-prefix`` in the fleet's etcd, plus kube-controller-manager and
kube-scheduler (so workloads get pods, and pods get nodes) and kwok, which plays the
kubelet for fake Nodes so Deployments, StatefulSets, DaemonSets and Jobs become
Ready/Complete without any container runtime.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.core import yaml
from fleet.dev.localfleet import kubehttp, pki
from fleet.dev.localfleet.process import ProcessRecord

ADMIN_USER = "fleet-admin"
VIEWER_USER = "fleet-viewer"  # authenticated, but bound to no role: gets 403 on writes
COMPONENTS_USER = "localfleet-components"  # controller-manager, scheduler and kwok

SERVICE_CIDR = "10.0.0.0/24"  # the first address (10.0.0.1) is in the serving cert
POD_CIDR = "10.244.0.0/16"  # kwok hands out pod IPs from here
NODE_COUNT = 2
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")


@dataclass(frozen=True)
class LocalCluster:
    """What a client needs to reach one local cluster (e.g. to register it in the inventory)."""

    name: str
    server: str
    ca_pem: str
    token: str  # system:masters
    viewer_token: str  # no RBAC bindings
    kubeconfig_path: Path  # talks to the API server directly, never through the network
    direct_server: str = ""  # the API server itself when ``server`` is its Toxiproxy listener


@dataclass(frozen=True)
class AuditSink:
    """Where a cluster's API server sends its audit events (Fleet's ingest endpoint for it),
    with which credential, and which namespaces' writes it records in full.

    Batches leave after ``batch_max_wait`` (kube-apiserver's default is 30 s; tests want 1 s);
    a failed batch is retried 5 times, ``initial_backoff`` × 1.5ⁿ apart, then dropped, so the
    events are also written to ``audit.log`` in the cluster's directory: the copy to import
    (``cluster-audit import``, deduplicated) after an outage longer than the retries.
    """

    url: str  # https: client-go sends a kubeconfig's credentials to https servers only
    token: str
    ca_pem: str = ""  # of the URL's server certificate
    namespaces: tuple[str, ...] = ("default",)
    batch_max_wait: str = "1s"
    initial_backoff: str = "10s"

    def to_json(self) -> dict[str, Any]:
        return {**vars(self), "namespaces": list(self.namespaces)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditSink:
        return cls(**{**data, "namespaces": tuple(data["namespaces"])})


WRITES = ["create", "update", "patch", "delete", "deletecollection"]


def audit_policy(namespaces: tuple[str, ...]) -> dict[str, Any]:
    """Metadata for reads, RequestResponse for writes in ``namespaces``, Metadata for other
    writes, never a Secret's contents (nor tokens, which reviews carry); leases and events,
    which components write every few seconds, not at all. The first matching rule wins."""
    return {
        "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
        # ResponseComplete says all RequestReceived does, and more.
        "omitStages": ["RequestReceived"],
        "rules": [
            {"level": "None", "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]},
                                            {"group": "", "resources": ["events"]},
                                            {"group": "events.k8s.io", "resources": ["events"]}]},
            {"level": "None", "nonResourceURLs": ["/healthz*", "/readyz*", "/livez*", "/version"]},
            {"level": "Metadata", "resources": [
                {"group": "", "resources": ["secrets", "serviceaccounts/token"]},
                {"group": "authentication.k8s.io", "resources": ["tokenreviews", "selfsubjectreviews"]}]},
            {"level": "RequestResponse", "verbs": WRITES, "namespaces": list(namespaces)},
            {"level": "Metadata", "verbs": WRITES},
            {"level": "Metadata"},
        ],
    }


def write_audit_files(files: ClusterFiles, sink: AuditSink) -> None:
    _write_private(files.audit_policy, yaml.dump(audit_policy(sink.namespaces)))
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "fleet", "cluster": {"server": sink.url, **({
            "certificate-authority-data": base64.b64encode(sink.ca_pem.encode()).decode()} if sink.ca_pem else {})}}],
        "users": [{"name": "fleet-audit-ingest", "user": {"token": sink.token}}],
        "contexts": [{"name": "fleet", "context": {"cluster": "fleet", "user": "fleet-audit-ingest"}}],
        "current-context": "fleet",
    }
    _write_private(files.audit_webhook, yaml.dump(config))


def audit_argv(files: ClusterFiles, sink: AuditSink) -> list[str]:
    return [
        f"--audit-policy-file={files.audit_policy}",
        f"--audit-webhook-config-file={files.audit_webhook}",
        "--audit-webhook-mode=batch",
        f"--audit-webhook-batch-max-wait={sink.batch_max_wait}",
        f"--audit-webhook-initial-backoff={sink.initial_backoff}",
        f"--audit-log-path={files.audit_log}",
        "--audit-log-maxsize=100",
        "--audit-log-maxbackup=3",
    ]


@dataclass
class ClusterState:
    """The persisted part of a cluster (one entry of the fleet's state file)."""

    name: str
    port: int
    scheduler_port: int
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    viewer_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    components_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    processes: list[ProcessRecord] = field(default_factory=list)
    audit: AuditSink | None = None  # sends its audit events to Fleet (LocalFleet.enable_audit)
    proxy_port: int = 0  # its Toxiproxy listener, when the fleet has a network (0: none)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def proxied_server(self) -> str:
        return f"https://127.0.0.1:{self.proxy_port}" if self.proxy_port else self.server

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in vars(self).items() if k not in ("processes", "audit")}
        return {**data, "processes": [p.to_json() for p in self.processes],
                "audit": self.audit.to_json() if self.audit else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterState:
        processes = [ProcessRecord.from_json(p) for p in data.get("processes", [])]
        audit = AuditSink.from_json(data["audit"]) if data.get("audit") else None
        return cls(**{**data, "processes": processes, "audit": audit})


@dataclass(frozen=True)
class ClusterFiles:
    """Where a cluster's files live: ``<state dir>/clusters/<name>/``."""

    root: Path

    serving_cert = property(lambda self: self.root / "apiserver.crt")
    serving_key = property(lambda self: self.root / "apiserver.key")
    sa_key = property(lambda self: self.root / "service-account.key")
    sa_pub = property(lambda self: self.root / "service-account.pub")
    tokens = property(lambda self: self.root / "tokens.csv")
    kubeconfig = property(lambda self: self.root / "kubeconfig")
    components_kubeconfig = property(lambda self: self.root / "components.kubeconfig")
    audit_policy = property(lambda self: self.root / "audit-policy.yaml")
    audit_webhook = property(lambda self: self.root / "audit-webhook.kubeconfig")
    audit_log = property(lambda self: self.root / "logs" / "audit.log")

    def log(self, component: str) -> Path:
        return self.root / "logs" / f"{component}.log"


def prepare_files(state: ClusterState, files: ClusterFiles, ca: pki.CertificateAuthority) -> None:
    """Write certs and keys (once: restarts keep them) and token file and kubeconfigs
    (every time: the port may have changed)."""
    files.root.mkdir(parents=True, exist_ok=True)
    if not (files.serving_cert.is_file() and files.serving_key.is_file()):
        pki.issue_serving_cert(ca, f"{state.name}-apiserver", files.serving_cert, files.serving_key)
    if not (files.sa_key.is_file() and files.sa_pub.is_file()):
        pki.write_signing_keypair(files.sa_key, files.sa_pub)
    # token,user,uid,"groups" (kube-apiserver --token-auth-file format)
    _write_private(
        files.tokens,
        f'{state.token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n'
        f"{state.viewer_token},{VIEWER_USER},{VIEWER_USER}\n"
        f'{state.components_token},{COMPONENTS_USER},{COMPONENTS_USER},"system:masters"\n',
    )
    write_kubeconfig(files.kubeconfig, state.name, state.server, ca.cert_pem, ADMIN_USER, state.token)
    write_kubeconfig(
        files.components_kubeconfig,
        state.name,
        state.server,
        ca.cert_pem,
        COMPONENTS_USER,
        state.components_token,
    )


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def write_kubeconfig(path: Path, name: str, server: str, ca_pem: str, user: str, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem.encode()).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
    }
    _write_private(path, yaml.dump(config))


def apiserver_argv(binary: Path, state: ClusterState, files: ClusterFiles, etcd_url: str) -> list[str]:
    return [
        str(binary),
        f"--etcd-servers={etcd_url}",
        f"--etcd-prefix=/{state.name}",
        "--bind-address=127.0.0.1",
        # Without it the apiserver looks for a non-loopback interface with a default route.
        "--advertise-address=127.0.0.1",
        f"--secure-port={state.port}",
        f"--tls-cert-file={files.serving_cert}",
        f"--tls-private-key-file={files.serving_key}",
        f"--token-auth-file={files.tokens}",
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={files.sa_pub}",
        f"--service-account-signing-key-file={files.sa_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # A loopback address is not a valid Endpoints address; the `kubernetes` Service
        # would only produce reconcile errors in the log.
        "--endpoint-reconciler-type=none",
        # Request queuing only costs CPU and memory with one client per cluster.
        "--enable-priority-and-fairness=false",
        "--profiling=false",
        "--allow-privileged=true",
        *(audit_argv(files, state.audit) if state.audit else []),
    ]


def controller_manager_argv(
    binary: Path, state: ClusterState, files: ClusterFiles, ca_path: Path
) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={files.components_kubeconfig}",
        f"--cluster-name={state.name}",
        "--leader-elect=false",
        "--secure-port=0",  # nothing scrapes it; saves a port and a self-signed cert
        # Publishes kube-root-ca.crt to every namespace, as in a real cluster.
        f"--root-ca-file={ca_path}",
        f"--service-account-private-key-file={files.sa_key}",
    ]


def scheduler_argv(binary: Path, state: ClusterState, files: ClusterFiles) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={files.components_kubeconfig}",
        "--leader-elect=false",
        # The scheduler cannot turn its HTTPS endpoint off, so it gets a free loopback port.
        "--bind-address=127.0.0.1",
        f"--secure-port={state.scheduler_port}",
    ]


def kwok_argv(binary: Path, files: ClusterFiles, stages: Path) -> list[str]:
    key, value = KWOK_NODE_ANNOTATION
    return [
        str(binary),
        f"--kubeconfig={files.components_kubeconfig}",
        f"--config={stages}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={key}={value}",
        f"--cidr={POD_CIDR}",
        "--node-ip=10.0.1.1",
        # Without node leases the controller-manager marks every node NotReady after its
        # grace period (~40 s) and pods go unready with it; kwokctl passes 40 too.
        "--node-lease-duration-seconds=40",
    ]


def node_manifest(name: str) -> dict[str, Any]:
    """A fake Node for kwok: no taints, so ordinary workloads schedule onto it."""
    key, value = KWOK_NODE_ANNOTATION
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
    }


def create_nodes(state: ClusterState, ca_pem: str) -> None:
    for index in range(1, NODE_COUNT + 1):
        status, body = kubehttp.request(
            state.server, ca_pem, state.token, "POST", "/api/v1/nodes", node_manifest(f"kwok-node-{index}")
        )
        if status not in (201, 409):  # 409: kept from a previous run
            raise RuntimeError(f"creating kwok-node-{index} on {state.name} failed: HTTP {status} {body}")


def is_ready(state: ClusterState, ca_pem: str) -> bool:
    """The API server answers /readyz."""
    try:
        status, _ = kubehttp.request(state.server, ca_pem, state.token, "GET", "/readyz", timeout=2)
    except OSError:
        return False
    return status == 200


def missing_for_workloads(state: ClusterState, ca_pem: str) -> str | None:
    """Which component has not yet made the cluster able to run a Deployment, or None.

    kwok must report the Nodes Ready, and the controller-manager must have created the
    `default` ServiceAccount (pods are refused without it).
    """
    try:
        status, nodes = kubehttp.request(state.server, ca_pem, state.token, "GET", "/api/v1/nodes")
        if status != 200:
            return "kube-apiserver"
        ready = [
            node
            for node in nodes["items"]
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in node.get("status", {}).get("conditions", [])
            )
        ]
        if len(ready) < NODE_COUNT:
            return "kwok"
        status, _ = kubehttp.request(
            state.server, ca_pem, state.token, "GET", "/api/v1/namespaces/default/serviceaccounts/default"
        )
    except OSError:
        return "kube-apiserver"
    return None if status == 200 else "kube-controller-manager"
