"""The normalised diff: only fields we set count, server additions never do, and
Secret values never show."""

import base64

import pytest

from fleet.core.objects import ObjectRef
from fleet.kube.diff import compare, desired_view

pytestmark = pytest.mark.embedded

DEPLOY = ObjectRef("apps", "v1", "Deployment", "shop", "web")


def desired():
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                         "creationTimestamp": None},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{
                                      "name": "web", "image": "nginx:1.27",
                                      "ports": [{"containerPort": 80}],
                                      "resources": {"limits": {"cpu": "0.5", "memory": "1Gi"}},
                                      "volumeMounts": [{"name": "data", "mountPath": "/d",
                                                        "readOnly": False}],
                                      "args": ["--a", "--b"]}]}}},
            "status": {}}


def live():
    """As the API server returns it: defaults, status, managedFields, other annotations."""
    obj = desired()
    obj["metadata"].update({"uid": "u", "resourceVersion": "7", "generation": 1,
                            "creationTimestamp": "2026-01-01T00:00:00Z",
                            "annotations": {"deployment.kubernetes.io/revision": "1"},
                            "managedFields": [{"manager": "fleet"}]})
    obj["spec"]["strategy"] = {"type": "RollingUpdate"}
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container.update({"terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"})
    container["ports"][0]["protocol"] = "TCP"
    container["resources"]["limits"]["cpu"] = "500m"
    del container["volumeMounts"][0]["readOnly"]
    obj["status"] = {"replicas": 2, "availableReplicas": 2}
    return obj


def test_server_defaults_status_and_metadata_are_ignored():
    assert compare(DEPLOY, desired(), live()).state == "unchanged"


def test_changed_fields_have_paths_through_keyed_lists():
    obj = live()
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "nginx:1.26"
    container["args"] = ["--a"]
    container["resources"]["limits"]["memory"] = "512Mi"
    obj["spec"]["replicas"] = 5
    diff = compare(DEPLOY, desired(), obj)
    assert diff.state == "changed"
    assert sorted(((c.path, c.desired, c.live) for c in diff.changes), key=str) == sorted([
        ("spec.replicas", 2, 5),
        ("spec.template.spec.containers[name=web].image", "nginx:1.27", "nginx:1.26"),
        ("spec.template.spec.containers[name=web].args", ["--a", "--b"], ["--a"]),
        ("spec.template.spec.containers[name=web].resources.limits.memory", "1Gi", "512Mi"),
    ], key=str)


def test_missing_fields_and_list_items_show_as_absent():
    obj = live()
    del obj["metadata"]["labels"]["app"]
    obj["spec"]["template"]["spec"]["containers"] = []
    paths = {(c.path, c.live) for c in compare(DEPLOY, desired(), obj).changes}
    assert paths == {("metadata.labels.app", None), ("spec.template.spec.containers[name=web]", None)}


def test_fields_set_by_others_do_not_count():
    obj = live()
    obj["metadata"]["labels"]["team"] = "someone-else"
    obj["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "envoy"})
    assert compare(DEPLOY, desired(), obj).state == "unchanged"


def test_absent_live_object_is_added():
    assert compare(DEPLOY, desired(), None).state == "added"


def test_secret_values_are_never_shown():
    ref = ObjectRef("", "v1", "Secret", "shop", "db")
    want = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
            "stringData": {"password": "hunter2"}, "data": {"user": base64.b64encode(b"admin").decode()}}
    have = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
            "type": "Opaque", "data": {"password": base64.b64encode(b"hunter2").decode(),
                                       "user": base64.b64encode(b"admin").decode()}}
    assert compare(ref, want, have).state == "unchanged"
    have["data"]["password"] = base64.b64encode(b"letmein").decode()
    diff = compare(ref, want, have)
    (change,) = diff.changes
    assert change.path == "data.password"
    text = repr(diff.as_dict())
    for secret in ("hunter2", "letmein", base64.b64encode(b"hunter2").decode(),
                   base64.b64encode(b"letmein").decode()):
        assert secret not in text
    assert change.desired.startswith("(secret hmac:") and change.desired != change.live
    del have["data"]
    assert "admin" not in repr(compare(ref, want, have).as_dict())


def test_desired_view_drops_server_owned_metadata_and_status():
    view = desired_view(live())
    assert "status" not in view
    assert set(view["metadata"]) == {"name", "namespace", "labels", "annotations"}
    assert not {"status", "apiVersion", "kind"} & set(view)
