"""Drift on the real local fleet: made with the real kubectl, found by a scan, explained
(which field, desired and live, which field manager), with ignore rules and faults."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from fleet.audit.models import AuditEvent
from fleet.drift import desired as desired_state
from fleet.drift import scan, services
from fleet.drift.choices import DriftState as S
from fleet.drift.models import DesiredSet, DriftedResource, DriftScan
from fleet.inventory.models import Cluster
from fleet.kube import constants
from fleet.kube.client import client_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def by_object(drift) -> dict[str, DriftedResource]:
    return {f"{r.kind}/{r.name}": r for r in drift.resources.filter(resolved_at=None)}


def test_a_deployed_cluster_is_in_sync_and_its_scans_run_no_git_no_render(drift_world, monkeypatch):
    deployment = drift_world.deploy()
    assert deployment.state == "succeeded", deployment.error
    # The pipeline asked for a scan of the cluster right after it was deployed.
    assert (drift_world.cluster.pk, "deployment") in drift_world.queued.scans
    # And kept what it rendered as that commit's desired set: the first scan renders nothing either.
    monkeypatch.setattr("fleet.gitops.services.render_deployed",
                        lambda *a, **k: pytest.fail("rendered again what the pipeline had rendered"))
    first = scan.scan_cluster(drift_world.cluster)
    assert first.state == S.IN_SYNC, first.reason  # server defaults (strategy, dnsPolicy…) are not drift
    assert first.deployed_tag == deployment.tag and first.counts == {
        "missing": 0, "modified": 0, "pending_prune": 0, "ignored": 0}
    assert DriftScan.objects.filter(cluster=drift_world.cluster).first().desired_cached
    # Another worker, with nothing in its process: from the database.
    desired_state.MEMORY.clear()
    scan.scan_cluster(drift_world.cluster)
    last = DriftScan.objects.filter(cluster=drift_world.cluster).first()
    assert last.desired_cached and last.state == S.IN_SYNC
    # One GET of the ApplySet parent, then one list per kind and namespace of the set: the
    # Namespaces (cluster-scoped), and 4 namespaced kinds in the app's namespace and in the
    # parent's own (fleet-system, always a member namespace in KEP-3659). Nothing per object.
    assert last.requests == 1 + 1 + 4 * 2, last.requests


def test_drift_made_with_kubectl_is_explained_field_by_field(drift_world):
    drift_world.deploy()
    kubectl = drift_world.kubectl
    kubectl("set", "image", "deployment/web", "web=registry.local/web:2")
    kubectl("scale", "deployment/web", "--replicas=5")
    kubectl("delete", "configmap", "app-config")
    kubectl("label", "service", "web", "team=night-shift")
    kubectl("patch", "secret", "db", "--type=merge", "-p", '{"stringData":{"password":"letmein"}}',
            "--field-manager=ops-script")
    drift = scan.scan_cluster(drift_world.cluster)
    assert drift.state == S.DRIFTED and drift.first_drift_observed_at is not None
    found = by_object(drift)
    assert {name: r.state for name, r in found.items()} == {
        "Deployment/web": "modified", "ConfigMap/app-config": "missing", "Service/web": "modified",
        "Secret/db": "modified"}
    web = {c["path"]: c for c in found["Deployment/web"].changes}
    assert web["spec.replicas"]["desired"] == 2 and web["spec.replicas"]["live"] == 5
    assert web["spec.replicas"]["manager"].startswith("kubectl")
    image = web["spec.template.spec.containers[name=web].image"]
    assert (image["desired"], image["live"], image["manager"]) == ("registry.local/web:1", "registry.local/web:2",
                                                                  "kubectl-set")
    assert image["pointer"] == "/spec/template/spec/containers/web/image"
    label = found["Service/web"].changes[0]
    assert (label["path"], label["live"], label["manager"]) == ("metadata.labels.team", "night-shift",
                                                                "kubectl-label")
    secret = found["Secret/db"]
    assert secret.manager == "ops-script" and secret.changed_at is not None
    stored = repr([r.changes for r in found.values()]) + repr(list(AuditEvent.objects.values_list("metadata"))) \
        + repr(list(DesiredSet.objects.values_list("manifests_encrypted", flat=True)))  # the cache, at rest
    assert DesiredSet.objects.exists()
    for leaked in ("hunter2", "letmein", "aHVudGVyMg==", "bGV0bWVpbg=="):
        assert leaked not in stored
    assert drift.counts == {"missing": 1, "modified": 3, "pending_prune": 0, "ignored": 0}


def test_an_edit_by_a_second_field_manager_names_it_and_only_state_changes_are_audited(drift_world):
    drift_world.deploy()
    assert scan.scan_cluster(drift_world.cluster).state == S.IN_SYNC
    drift_world.kubectl("edit", "configmap", "app-config", env_editor="sed -i s/info/debug/")
    for _ in range(3):
        drift = scan.scan_cluster(drift_world.cluster)
    change = by_object(drift)["ConfigMap/app-config"].changes[0]
    assert (change["path"], change["desired"], change["live"], change["manager"]) == (
        "data.LOG_LEVEL", "info", "debug", "kubectl-edit")
    # The unified diff, as `drift show` prints it.
    text = services.unified_diff(drift_world.cluster)
    assert '-data.LOG_LEVEL: "info"' in text and '+data.LOG_LEVEL: "debug"  # kubectl-edit' in text
    drift_world.kubectl("patch", "configmap", "app-config", "--type=merge", "-p", '{"data":{"LOG_LEVEL":"info"}}')
    back = scan.scan_cluster(drift_world.cluster)
    assert back.state == S.IN_SYNC and back.first_drift_observed_at is None
    resolved = DriftedResource.objects.get(drift=back, name="app-config")
    assert resolved.resolved_at is not None and resolved.first_observed_at <= resolved.resolved_at
    actions = list(AuditEvent.objects.filter(action__startswith="drift.").order_by("sequence")
                   .values_list("action", flat=True))
    assert actions == ["drift.in_sync", "drift.drifted", "drift.in_sync"]  # five scans, three changes
    assert DriftScan.objects.filter(cluster=drift_world.cluster).count() == 5


def test_an_hpa_style_managers_field_is_ignored_by_a_rule_in_the_diff_and_the_apply(drift_world):
    drift_world.deploy()
    drift_world.kubectl("patch", "deployment", "web", "--subresource=scale", "--type=merge",
                        "-p", '{"spec":{"replicas":4}}', "--field-manager=hpa-controller")
    drift = scan.scan_cluster(drift_world.cluster)
    assert by_object(drift)["Deployment/web"].changes[0]["manager"] == "hpa-controller"
    services.create_ignore_rule({"name": "hpa-owns-replicas", "group": "apps", "kind": "Deployment",
                                 "managers": ["hpa-controller"]})
    drift = scan.scan_cluster(drift_world.cluster)
    assert drift.state == S.IN_SYNC and drift.ignored == 1
    # A redeployment does not take the field back: the rule keeps it out of the apply.
    redeployed = drift_world.deploy()
    assert redeployed.state == "succeeded", redeployed.error
    live = client_for(drift_world.cluster).get(f"/apis/apps/v1/namespaces/{drift_world.ns}/deployments/web")
    assert live["spec"]["replicas"] == 4
    assert scan.scan_cluster(drift_world.cluster).state == S.IN_SYNC


def test_a_json_pointer_rule_ignores_a_field_for_clusters_its_selector_matches(drift_world):
    drift_world.deploy()
    drift_world.kubectl("set", "image", "deployment/web", "web=registry.local/web:9")
    services.create_ignore_rule({"name": "image-elsewhere", "kind": "Deployment",
                                 "json_pointers": ["/spec/template/spec/containers/*/image"],
                                 "cluster_selector": "drift-test=someone-else"})
    assert scan.scan_cluster(drift_world.cluster).state == S.DRIFTED
    services.create_ignore_rule({"name": "image-here", "kind": "Deploy*", "namespace": "drift-*",
                                 "json_pointers": ["/spec/template/spec/containers/web/image"],
                                 "cluster_selector": f"drift-test={drift_world.cluster.labels['drift-test']}"})
    drift = scan.scan_cluster(drift_world.cluster)
    assert drift.state == S.IN_SYNC and drift.ignored == 1


class _Silent:
    """A TCP server that accepts and never answers: a cluster that hangs mid-request."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_unreachable_and_hanging_clusters_are_unknown_and_the_others_are_not_delayed(drift_world, monkeypatch):
    drift_world.deploy()
    monkeypatch.setattr(constants, "READ_TIMEOUT", 6.0)  # well above a loaded machine's scan time
    silent = _Silent()
    try:
        source = drift_world.cluster
        drift_world.twin("gone-1", "https://127.0.0.1:1")
        drift_world.twin("hangs-1", f"https://127.0.0.1:{silent.port}")
        started = time.perf_counter()
        timings = {}
        scan.scan_clusters(list(Cluster.objects.filter(name__in=["gone-1", "hangs-1", source.name])),
                           progress=lambda d: timings.setdefault(d.cluster.name, time.perf_counter() - started))
    finally:
        silent.close()
    states = {d.cluster.name: d for d in services.drift_rows()}
    assert states[source.name].state == S.IN_SYNC
    assert states["gone-1"].state == S.UNKNOWN and "did not answer" in states["gone-1"].reason
    assert states["hangs-1"].state == S.UNKNOWN and "did not answer" in states["hangs-1"].reason
    assert timings[source.name] < 4.0 < timings["hangs-1"], timings  # the good one did not wait


def test_a_deploy_tag_gone_and_a_render_that_now_fails_are_error_states_of_that_cluster(drift_world, settings):
    deployment = drift_world.deploy()
    desired_state.MEMORY.clear()
    DesiredSet.objects.all().delete()
    settings.FLEET_RENDER_MAX_OBJECTS = 2  # new render inputs: a new key, and the render fails
    drift = scan.scan_cluster(drift_world.cluster)
    assert drift.state == S.ERROR and "fails now" in drift.reason, drift.reason
    settings.FLEET_RENDER_MAX_OBJECTS = 5000
    from fleet.gitops.git import Git

    Git(drift_world.internal).run("tag", "-d", deployment.tag)
    drift = scan.scan_cluster(drift_world.cluster)
    assert drift.state == S.ERROR and f"deploy tag {deployment.tag}" in drift.reason
    assert "cannot be read from the internal repo" in drift.reason
