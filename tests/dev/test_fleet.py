"""The local fleet against real processes: TLS and tokens as a client sees them,
workloads that become Ready/Complete on kwok nodes, and no processes left after `down`."""

from __future__ import annotations

import io
import json
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from fleet.dev.localfleet.cluster import LocalCluster
from fleet.dev.localfleet.fleet import LocalFleet
from fleet.dev.management.commands.localfleet import Command as LocalFleetCommand
from fleet.toolchain.build import ensure_binaries
from fleet.toolchain.constants import KUBERNETES_VERSION
from tests.dev.fixtures import RunningFleet

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]


def https(cluster: LocalCluster, path: str, token: str, method: str = "GET", body: dict | None = None):
    """Plain HTTPS with the fleet CA: what any client outside this package would do."""
    request = urllib.request.Request(
        cluster.server + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    context = ssl.create_default_context(cadata=cluster.ca_pem)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def eventually(check, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not met in {timeout:.0f}s")
        time.sleep(0.5)


def test_three_clusters_named_local_n(local_fleet: RunningFleet):
    assert [c.name for c in local_fleet.clusters] == ["local-1", "local-2", "local-3"]
    assert len({c.server for c in local_fleet.clusters}) == 3


def test_apiservers_are_ready_and_report_the_pinned_version(local_fleet: RunningFleet):
    for cluster in local_fleet.clusters:
        assert https(cluster, "/readyz", cluster.token) == (200, "ok")
        status, body = https(cluster, "/version", cluster.token)
        assert status == 200
        assert json.loads(body)["gitVersion"] == KUBERNETES_VERSION


def test_clusters_do_not_share_objects(local_fleet: RunningFleet):
    first, second = local_fleet.clusters[:2]
    name = f"only-on-{first.name}-{uuid.uuid4().hex[:6]}"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
    assert https(first, "/api/v1/namespaces/default/configmaps", first.token, "POST", body)[0] == 201
    assert https(second, f"/api/v1/namespaces/default/configmaps/{name}", second.token)[0] == 404


def test_viewer_token_is_authenticated_but_forbidden_to_write(local_fleet: RunningFleet):
    cluster = local_fleet.clusters[0]
    assert https(cluster, "/version", cluster.viewer_token)[0] == 200
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "viewer-was-here"}}
    status, text = https(cluster, "/api/v1/namespaces", cluster.viewer_token, "POST", body)
    assert status == 403
    assert "fleet-viewer" in text


def test_deployment_becomes_available_on_kwok_nodes(local_fleet: RunningFleet):
    """Through the kubernetes client and the written kubeconfig: scheduler binds the pods
    to kwok nodes, kwok makes them Running and Ready, the controller marks it Available."""
    cluster = local_fleet.clusters[0]
    api = k8s.AppsV1Api(k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig_path)))
    name = f"web-{uuid.uuid4().hex[:6]}"
    labels = {"app": name}
    api.create_namespaced_deployment(
        "default",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
        },
    )
    eventually(
        lambda: (api.read_namespaced_deployment_status(name, "default").status.available_replicas or 0) == 2,
        what=f"deployment {name} with 2 available replicas",
    )


def test_jobs_daemonsets_and_statefulsets_complete_with_kubectl(local_fleet: RunningFleet):
    cluster = local_fleet.clusters[1]
    kubectl = [str(ensure_binaries(["kubectl"])["kubectl"]), f"--kubeconfig={cluster.kubeconfig_path}"]
    pod = {"containers": [{"name": "main", "image": "busybox:1.36"}]}
    objects = [
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
         "spec": {"template": {"spec": {**pod, "restartPolicy": "Never"}}}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
         "spec": {"selector": {"matchLabels": {"app": "agent"}},
                  "template": {"metadata": {"labels": {"app": "agent"}}, "spec": pod}}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
         "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                  "template": {"metadata": {"labels": {"app": "db"}}, "spec": pod}}},
    ]  # fmt: skip
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    subprocess.run([*kubectl, "apply", "-f", "-"], input=manifest, text=True, check=True, capture_output=True)
    for command in (
        ["wait", "--for=condition=complete", "job/once", "--timeout=60s"],
        ["rollout", "status", "daemonset/agent", "--timeout=60s"],
        ["rollout", "status", "statefulset/db", "--timeout=60s"],
    ):
        result = subprocess.run([*kubectl, *command], capture_output=True, text=True)
        assert result.returncode == 0, f"kubectl {' '.join(command)}: {result.stdout}{result.stderr}"


def test_up_again_keeps_the_running_clusters(local_fleet: RunningFleet):
    before = {c.name: c for c in local_fleet.fleet.clusters()}
    started = time.monotonic()
    again = local_fleet.fleet.up(3, die_with_parent=True, progress=lambda message: None)
    assert time.monotonic() - started < 5
    assert {c.name: c for c in again} == before


def test_status_command_reports_every_cluster_ready(local_fleet: RunningFleet):
    out = io.StringIO()
    call_command(LocalFleetCommand(), "status", "--dir", str(local_fleet.fleet.state_dir), stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "etcd: running"
    for cluster in local_fleet.clusters:
        assert any(line.startswith(f"{cluster.name}: {cluster.server} ready") for line in lines), lines


@pytest.mark.slow
def test_down_from_another_process_leaves_no_processes(tmp_path):
    """`up` in one process (which then exits: the fleet must outlive it), `down` in
    another: every recorded process, and anything else using the state dir, is gone."""
    state_dir = tmp_path / "fleet"
    script = "import sys; from fleet.dev.localfleet.fleet import LocalFleet; LocalFleet(sys.argv[1]).up(1)"
    fleet = LocalFleet(state_dir)
    try:
        subprocess.run(
            [sys.executable, "-c", script, str(state_dir)], cwd=REPO, check=True, capture_output=True
        )
        [status] = fleet.status()
        assert status.ready and len(status.processes) == 4
        records = json.loads((state_dir / "fleet.json").read_text())
        pids = [p["pid"] for c in records["clusters"] for p in c["processes"]]
        pids += [p["pid"] for p in records["etcd"]["processes"]]
    finally:
        fleet.down()
    assert not fleet.etcd_running()
    assert [s.processes for s in fleet.status()] == [{}]
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists() and _not_zombie(pid)]
    assert not _processes_mentioning(str(state_dir))


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if text in args and _not_zombie(int(cmdline.parent.name)):
            found.append(args)
    return found


def test_every_component_runs(local_fleet: RunningFleet):
    for status in local_fleet.fleet.status():
        assert status.processes == {
            "kube-apiserver": True,
            "kube-controller-manager": True,
            "kube-scheduler": True,
            "kwok": True,
        }
