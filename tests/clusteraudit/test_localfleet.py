"""A real kube-apiserver's audit webhook, in batch mode, posting to a live Fleet.

Its own one-cluster fleet (the session's shared fleet runs without audit, as every other
cluster test expects): Fleet applies objects as itself, a second user edits one with
``kubectl edit`` and their own token, and the API server's events say who did which.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import time
import urllib.request

import pytest
from django.core.management import call_command
from django.utils import timezone

from fleet.clusteraudit import queries
from fleet.clusteraudit.models import AuditSource, ClusterAuditEvent
from fleet.core.objects import ObjectRef
from fleet.dev.localfleet import tlsproxy
from fleet.dev.localfleet.cluster import VIEWER_USER, write_kubeconfig
from fleet.dev.localfleet.fleet import LocalFleet
from fleet.dev.localfleet.register import register, send_audit_to
from fleet.kube import services as kube
from fleet.toolchain.build import ensure_binaries
from tests.factories import ChannelFactory

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SECRET_VALUE = "c3VwZXItc2VjcmV0LXZhbHVl"  # base64 of a value that must never be stored
OBJECTS = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
     "metadata": {"name": "viewer-edits", "namespace": "team"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
     "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": VIEWER_USER}]},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "team"},
     "data": {"password": SECRET_VALUE}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "team"},
     "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
              "template": {"metadata": {"labels": {"app": "web"}},
                           "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}},
]


@pytest.fixture(scope="module")
def audit_fleet(tmp_path_factory):
    fleet = LocalFleet(tmp_path_factory.mktemp("auditfleet"))
    try:
        yield fleet, fleet.up(1, die_with_parent=True)[0]
    finally:
        fleet.down()


def wait_for(query, what: str, timeout: float = 45.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = query()
        if found:
            return found
        time.sleep(0.5)
    from fleet.audit.models import AuditEvent

    refusals = list(AuditEvent.objects.filter(action="clusteraudit.ingest.refused").values_list("metadata", flat=True))
    raise AssertionError(f"no {what} after {timeout:.0f}s; ingest refusals: {refusals}")


def post(url: str, token: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_who_edited_what_through_the_real_webhook(audit_fleet, live_server, tmp_path, request):
    fleet, local = audit_fleet
    [cluster] = register([local], channel=ChannelFactory(), repo_url=lambda name: f"https://git.example.com/{name}.git")
    cert, key, ca_pem = fleet.tls_front()  # client-go sends credentials to https servers only
    front = tlsproxy.start(("127.0.0.1", int(live_server.url.rsplit(":", 1)[1])), cert, key)
    request.addfinalizer(front.shutdown)
    base = f"https://127.0.0.1:{front.port}"
    issued = send_audit_to(fleet, [cluster], base, ca_pem=ca_pem, namespaces=("team",), batch_max_wait="1s",
                           initial_backoff="1s", die_with_parent=True)
    assert AuditSource.objects.get(cluster=cluster).fleet_username == "fleet-admin"  # asked of the cluster
    started = timezone.now() - datetime.timedelta(seconds=5)

    kube.apply(cluster, OBJECTS)  # Fleet, as itself (server-side apply, field manager "fleet")
    viewer_config = tmp_path / "viewer.kubeconfig"
    write_kubeconfig(viewer_config, local.name, local.server, local.ca_pem, VIEWER_USER, local.viewer_token)
    kubectl = str(ensure_binaries(["kubectl"])["kubectl"])
    edit = subprocess.run([kubectl, f"--kubeconfig={viewer_config}", "-n", "team", "edit", "deployment", "web"],
                          env={**os.environ, "KUBE_EDITOR": "sed -i s/replicas:\\ 1/replicas:\\ 3/"},
                          capture_output=True, text=True, timeout=60)
    assert edit.returncode == 0, edit.stderr

    by_viewer = wait_for(lambda: list(ClusterAuditEvent.objects.filter(
        cluster=cluster, username=VIEWER_USER, verb="patch", resource="deployments", name="web")),
        "event of the edit")
    [edited] = by_viewer
    assert edited.field_manager == "kubectl-edit" and queries.tool_of(edited.user_agent) == "kubectl"
    assert edited.source_ips == ["127.0.0.1"] and edited.response_code == 200 and edited.outside_gitops
    assert edited.level == "RequestResponse" and edited.request_object  # a write in a managed namespace

    fleet_writes = ClusterAuditEvent.objects.filter(cluster=cluster, username="fleet-admin", verb="patch")
    assert fleet_writes.filter(field_manager="fleet", name="web").exists()
    assert not fleet_writes.filter(outside_gitops=True).exists()
    outside = queries.outside_gitops(None, queries.EventFilter(since=started, until=timezone.now(),
                                                               clusters=(cluster.name,)))
    assert edited in outside and not outside.filter(username="fleet-admin").exists()

    writes = queries.writes_to(cluster, ObjectRef("apps", "v1", "Deployment", "team", "web"), started,
                               timezone.now(), "kubectl-edit")
    assert [w.event for w in writes] == [edited] and writes[0].match == "exact"
    assert writes[0].describe().startswith(f"{VIEWER_USER} via kubectl from 127.0.0.1 at ")

    # Secrets: metadata only, in the database and in the API server's own log.
    secret_events = ClusterAuditEvent.objects.filter(cluster=cluster, resource="secrets", name="db")
    assert secret_events.exists() and all(e.level == "Metadata" for e in secret_events)
    assert SECRET_VALUE not in json.dumps(list(ClusterAuditEvent.objects.filter(cluster=cluster).values(
        "request_object", "request_uri")))
    log = fleet.audit_log(local.name)
    assert SECRET_VALUE not in log.read_text()

    # A replayed batch (the API server's own events, from its log) is stored once.
    cut = edited.request_received_at
    subprocess.run([kubectl, f"--kubeconfig={local.kubeconfig_path}", "get", "namespaces"], check=True,
                   capture_output=True)  # one more event, after the cut
    wait_for(lambda: ClusterAuditEvent.objects.filter(cluster=cluster, request_received_at__gt=cut,
                                                      resource="namespaces", verb="list").exists(),
             "events after the edit")
    sent = [e for e in map(json.loads, log.read_text().splitlines())
            if datetime.datetime.fromisoformat(e["requestReceivedTimestamp"]) <= cut]
    url = f"{live_server.url}/api/v1/cluster-audit/ingest/{cluster.name}/"
    batch = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": sent}
    assert post(url, issued[cluster.name], batch) == {"received": len(sent), "stored": 0, "duplicates": len(sent)}

    # Events lost while Fleet was down come back from the same log, once.
    lost = ClusterAuditEvent.objects.filter(cluster=cluster, request_received_at__lte=cut)
    count = lost.count()
    lost.delete()
    call_command("cluster-audit", "import", str(log), "--cluster", cluster.name)
    assert ClusterAuditEvent.objects.filter(cluster=cluster, request_received_at__lte=cut).count() == count
    assert ClusterAuditEvent.objects.filter(cluster=cluster, username=VIEWER_USER, verb="patch").count() == 1
