"""Each error class, provoked for real, with a message naming cluster and object."""

from __future__ import annotations

import socket

import pytest

from fleet.kube.apply import apply_set
from fleet.kube.errors import (
    FieldConflict,
    Forbidden,
    InvalidObject,
    NotFound,
    Timeout,
    TLSVerificationFailed,
    Unauthorized,
    UnknownKind,
    Unreachable,
)
from tests.certs import self_signed
from tests.kube.manifests import configmap, namespace
from tests.kube.support import connect

pytestmark = pytest.mark.cluster


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable(local_cluster):
    with connect(local_cluster, server=f"https://127.0.0.1:{closed_port()}") as client:
        with pytest.raises(Unreachable, match=f"cluster {local_cluster.name}: cannot connect") as info:
            client.get("/version")
    assert info.value.code == "unreachable"


def test_a_server_that_never_answers_is_a_timeout(local_cluster):
    with socket.socket() as silent:  # accepts connections (the backlog), never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with connect(local_cluster, server=f"https://127.0.0.1:{silent.getsockname()[1]}") as client:
            with pytest.raises(Timeout, match="did not answer in time") as info:
                client.get("/version", timeout=(0.5, 0.5))
    assert info.value.code == "timeout"


def test_wrong_ca_is_a_tls_error(local_cluster):
    with connect(local_cluster, ca_pem=self_signed()[0]) as client:  # some other CA
        with pytest.raises(TLSVerificationFailed, match="does not match the cluster's CA") as info:
            client.get("/version")
    assert info.value.code == "tls"


def test_bad_token_is_unauthorized_and_never_echoed(local_cluster, ns):
    with connect(local_cluster, token="not-a-real-token") as client:
        with pytest.raises(Unauthorized) as info:
            apply_set(client, [namespace(ns)])
    assert info.value.code == "unauthorized"
    assert "not-a-real-token" not in str(info.value)


def test_viewer_without_rbac_is_forbidden(local_cluster, ns):
    with connect(local_cluster, token=local_cluster.viewer_token) as client:
        with pytest.raises(Forbidden) as info:
            apply_set(client, [namespace(ns)])
    assert info.value.code == "forbidden"
    assert f"cluster {local_cluster.name}" in str(info.value)


def test_field_conflict_with_another_manager_unless_forced(kube, ns, applyset):
    apply_set(kube, [namespace(ns)], applyset=applyset)
    theirs = configmap(ns, "shared", mode="theirs")
    kube.request("PATCH", f"/api/v1/namespaces/{ns}/configmaps/shared", body=theirs,
                 content_type="application/apply-patch+yaml", query={"fieldManager": "helm"})
    ours = [namespace(ns), configmap(ns, "shared", mode="ours")]
    with pytest.raises(FieldConflict, match=rf"ConfigMap {ns}/shared: .*conflict.*helm") as info:
        apply_set(kube, ours, applyset=applyset)
    assert info.value.code == "conflict"
    assert kube.get(f"/api/v1/namespaces/{ns}/configmaps/shared")["data"] == {"mode": "theirs"}
    apply_set(kube, ours, applyset=applyset, force=True)
    assert kube.get(f"/api/v1/namespaces/{ns}/configmaps/shared")["data"] == {"mode": "ours"}


def test_invalid_object_carries_the_api_servers_message(kube, ns, applyset):
    bad = configmap(ns, "Not_A_DNS_Name")
    with pytest.raises(InvalidObject) as info:
        apply_set(kube, [namespace(ns), configmap(ns, "fine"), bad], applyset=applyset)
    assert f"ConfigMap {ns}/Not_A_DNS_Name" in str(info.value)
    assert "a lowercase RFC 1123 subdomain" in str(info.value)
    # The namespace is new, so its objects could only be dry-run once it existed: it
    # was created, then the dry-run failed, and none of them was applied.
    with pytest.raises(NotFound):
        kube.get(f"/api/v1/namespaces/{ns}/configmaps/fine")


def test_unknown_kind_names_the_object(kube, ns, applyset):
    widget = {"apiVersion": "nowhere.example.com/v1", "kind": "Widget",
              "metadata": {"name": "w", "namespace": ns}}
    with pytest.raises(UnknownKind, match=rf"Widget.nowhere.example.com {ns}/w: .*CustomResourceDefinition") as info:
        apply_set(kube, [namespace(ns), widget], applyset=applyset)
    assert info.value.code == "unknown_kind"
    core = {"apiVersion": "v1", "kind": "Gizmo", "metadata": {"name": "g"}}
    with pytest.raises(UnknownKind, match="serves no kind Gizmo in v1"):
        apply_set(kube, [core], applyset=applyset)
