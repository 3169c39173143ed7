"""Health rules per kind, on live objects as the API server returns them."""

import pytest

from fleet.core.objects import ObjectRef
from fleet.kube.health import assess

pytestmark = pytest.mark.embedded


def ref(group, kind):
    return ObjectRef(group, "v1", kind, "ns", "x")


def deployment(**status):
    return {"metadata": {"generation": 2}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, **status}}


@pytest.mark.parametrize("obj, healthy, reason", [
    (deployment(updatedReplicas=3, replicas=3, availableReplicas=3), True, "3 replicas updated and available"),
    (deployment(updatedReplicas=1, replicas=3, availableReplicas=3), False, "1 of 3 replicas updated"),
    (deployment(updatedReplicas=3, replicas=4, availableReplicas=3), False, "1 old replicas pending"),
    (deployment(updatedReplicas=3, replicas=3, availableReplicas=2), False, "2 of 3 updated replicas available"),
    ({"metadata": {"generation": 3}, "spec": {}, "status": {"observedGeneration": 2}}, False,
     "observe generation 3"),
])
def test_deployment(obj, healthy, reason):
    result = assess(ref("apps", "Deployment"), obj)
    assert (result.healthy, result.terminal) == (healthy, False)
    assert reason in result.reason


def test_deployment_past_its_progress_deadline_is_terminal():
    obj = deployment(conditions=[{"type": "Progressing", "status": "False",
                                  "reason": "ProgressDeadlineExceeded", "message": "too slow"}])
    result = assess(ref("apps", "Deployment"), obj)
    assert (result.healthy, result.terminal) == (False, True)


def test_statefulset_ready_and_rolled():
    sts = {"spec": {"replicas": 2}, "status": {"readyReplicas": 2, "currentRevision": "a",
                                               "updateRevision": "a"}}
    assert assess(ref("apps", "StatefulSet"), sts).healthy is True
    sts["status"]["updateRevision"] = "b"
    assert assess(ref("apps", "StatefulSet"), sts).healthy is False
    sts["status"]["readyReplicas"] = 1
    assert "1 of 2 replicas ready" in assess(ref("apps", "StatefulSet"), sts).reason


def test_daemonset_scheduled():
    status = {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "updatedNumberScheduled": 2,
              "numberAvailable": 2}
    assert assess(ref("apps", "DaemonSet"), {"status": status}).healthy is True
    result = assess(ref("apps", "DaemonSet"), {"status": {**status, "currentNumberScheduled": 1}})
    assert (result.healthy, result.reason) == (False, "1 of 2 pods scheduled")


def test_job_complete_or_failed():
    done = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}}
    assert assess(ref("batch", "Job"), done).healthy is True
    result = assess(ref("batch", "Job"), failed)
    assert (result.healthy, result.terminal, result.reason) == (False, True, "failed: BackoffLimitExceeded")
    assert assess(ref("batch", "Job"), {"status": {"active": 1}}).reason == "1 active, 0 succeeded"


def test_crd_pvc_and_generic_conditions():
    crd = {"status": {"conditions": [{"type": "Established", "status": "True"}]}}
    assert assess(ref("apiextensions.k8s.io", "CustomResourceDefinition"), crd).healthy is True
    assert assess(ref("", "PersistentVolumeClaim"), {"status": {"phase": "Bound"}}).healthy is True
    assert assess(ref("", "PersistentVolumeClaim"), {"status": {"phase": "Pending"}}).healthy is False
    assert assess(ref("", "PersistentVolumeClaim"), {"status": {"phase": "Lost"}}).terminal is True
    ready = {"status": {"conditions": [{"type": "Ready", "status": "False", "message": "booting"}]}}
    assert (assess(ref("example.com", "Widget"), ready).healthy,
            assess(ref("example.com", "Widget"), ready).reason) == (False, "Ready is False: booting")
    available = {"status": {"conditions": [{"type": "Available", "status": "True"}]}}
    assert assess(ref("example.com", "Widget"), available).healthy is True
    assert assess(ref("", "ConfigMap"), {"data": {}}).healthy is None


def test_a_deadline_the_previous_generation_missed_is_not_the_new_ones():
    """A spec just applied (to fix a stuck rollout, say) is not failed for the condition
    the controller set about the spec before it: it waits for the controller."""
    stale = {"metadata": {"generation": 3}, "spec": {"replicas": 3}, "status": {
        "observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False",
                                                 "reason": "ProgressDeadlineExceeded"}]}}
    result = assess(ref("apps", "Deployment"), stale)
    assert (result.healthy, result.terminal) == (False, False) and "observe generation 3" in result.reason
