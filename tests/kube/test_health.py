"""Health with a deadline, per object, on workloads run by kwok's simulated nodes: the
apply's answers assessed first, what is pending watched."""

from __future__ import annotations

import pytest

from fleet.core.objects import ObjectRef
from fleet.kube.apply import apply_set
from fleet.kube.errors import Timeout
from fleet.kube.health import wait_healthy
from tests.kube.manifests import configmap, crd, deployment, namespace, service

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def volume_pair(ns: str) -> list[dict]:
    """A static PersistentVolume and a claim the PV controller binds to it."""
    storage_class = f"manual-{ns}"
    return [
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"pv-{ns}"},
         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                  "storageClassName": storage_class, "hostPath": {"path": f"/tmp/{ns}"}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": ns},
         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                  "resources": {"requests": {"storage": "1Gi"}}}},
    ]


def job(ns: str) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": ns},
            "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "migrate", "image": "registry.local/migrate:1"}],
                "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists"}]}}}}


def statefulset(ns: str) -> dict:
    sts = deployment(ns, "db", replicas=2)
    sts["kind"] = "StatefulSet"
    sts["spec"]["serviceName"] = "db"
    return sts


def daemonset(ns: str) -> dict:
    ds = deployment(ns, "agent")
    ds["kind"] = "DaemonSet"
    del ds["spec"]["replicas"]
    return ds


def test_workloads_become_healthy_within_the_deadline(kube, ns, applyset):
    group = f"{ns}.example.com"
    objects = [namespace(ns), configmap(ns, "app"), deployment(ns, "web", replicas=2),
               statefulset(ns), daemonset(ns), job(ns), crd(group, "Gadget", "gadgets"),
               *volume_pair(ns)]
    try:
        result = apply_set(kube, objects, applyset=applyset)
        report = wait_healthy(kube, result.applied, timeout=120)
        verdicts = {str(h.ref): (h.healthy, h.reason) for h in report.results}
        assert report.ok and not report.timed_out, verdicts
        assert verdicts[f"Deployment.apps {ns}/web"] == (True, "2 replicas updated and available")
        assert verdicts[f"StatefulSet.apps {ns}/db"] == (True, "2 replicas ready")
        assert verdicts[f"Job.batch {ns}/migrate"] == (True, "complete")
        assert verdicts[f"PersistentVolumeClaim {ns}/data"] == (True, "bound")
        assert verdicts[f"CustomResourceDefinition.apiextensions.k8s.io gadgets.{group}"] == (True, "established")
        assert verdicts[f"DaemonSet.apps {ns}/agent"][0] is True
        assert verdicts[f"ConfigMap {ns}/app"] == (None, "no health to assess")
    finally:
        kube.request("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{group}")
        kube.request("DELETE", f"/api/v1/persistentvolumes/pv-{ns}")


def test_unhealthy_objects_are_reported_at_the_deadline(kube, ns, applyset):
    stuck = deployment(ns, "stuck", node_selector={"fleet.test/no-such-node": "true"})
    result = apply_set(kube, [namespace(ns), stuck], applyset=applyset)
    report = wait_healthy(kube, result.applied, timeout=3)
    assert report.timed_out and not report.ok
    (unhealthy,) = report.unhealthy
    assert unhealthy.ref == ObjectRef("apps", "v1", "Deployment", ns, "stuck")
    assert "of 1" in unhealthy.reason
    with pytest.raises(Timeout, match=rf"Deployment.apps {ns}/stuck: not healthy after 3s") as info:
        report.raise_for_health()
    assert info.value.code == "timeout"


def test_the_applys_answers_are_assessed_first_and_only_what_is_pending_is_watched(kube, ns, applyset):
    """A ConfigMap or a Service has no health: its answer is all there is, nothing is read.
    A Deployment just created is not available yet: it is watched (one request for its
    kind and namespace), never polled, until it is."""
    objects = [namespace(ns), configmap(ns, "app"), service(ns, "web"), deployment(ns, "web"), deployment(ns, "api")]
    result = apply_set(kube, objects, applyset=applyset)
    kube.counts.reset()
    report = wait_healthy(kube, result.applied, timeout=60, live=result.live)
    assert report.ok and not report.timed_out, [h.as_dict() for h in report.results]
    assert kube.counts.reset() == {"watch": 1}
    # Applied again, nothing changes: every answer says healthy already.
    again = apply_set(kube, objects, applyset=applyset)
    kube.counts.reset()
    assert wait_healthy(kube, again.applied, timeout=60, live=again.live).ok
    assert kube.counts.reset() == {}


def test_a_quiet_watch_ends_at_the_deadline(kube, ns, applyset):
    stuck = deployment(ns, "stuck", node_selector={"fleet.test/no-such-node": "true"})
    result = apply_set(kube, [namespace(ns), stuck], applyset=applyset)
    kube.counts.reset()
    report = wait_healthy(kube, result.applied, timeout=2, live=result.live)
    assert report.timed_out and not report.ok and 2 <= report.elapsed < 3
    assert kube.counts.reset() == {"watch": 1}
