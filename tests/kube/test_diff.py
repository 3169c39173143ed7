"""The normalised live diff against a real API server (defaults, status and all)."""

from __future__ import annotations

import base64

import pytest

from fleet.kube.apply import apply_set
from fleet.kube.diff import diff_set
from tests.kube.manifests import configmap, deployment, namespace, secret, service

pytestmark = pytest.mark.cluster
EDIT = {"fieldManager": "kubectl-edit"}  # as a person editing by hand


def states(report) -> dict[str, str]:
    return {diff.ref.kind + "/" + diff.ref.name: diff.state for diff in report.objects}


def test_freshly_applied_set_is_in_sync_despite_server_defaults(kube, ns, applyset):
    objects = [namespace(ns), configmap(ns, "app"), secret(ns, "db", password="hunter2"),
               service(ns, "web"), deployment(ns, "web", replicas=2)]
    assert states(diff_set(kube, objects, applyset=applyset)) == {
        "Namespace/" + ns: "added", "ConfigMap/app": "added", "Secret/db": "added",
        "Service/web": "added", "Deployment/web": "added"}
    apply_set(kube, objects, applyset=applyset)
    report = diff_set(kube, objects, applyset=applyset)
    assert report.in_sync, report.as_dict()


def test_drift_is_reported_per_field_and_secret_values_never_show(kube, ns, applyset):
    objects = [namespace(ns), configmap(ns, "app", mode="fast"), secret(ns, "db", password="hunter2"),
               deployment(ns, "web", replicas=2), configmap(ns, "gone")]
    apply_set(kube, objects, applyset=applyset)
    # Someone edits the cluster by hand.
    kube.request("PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/web",
                 body={"spec": {"replicas": 5}}, content_type="application/merge-patch+json", query=EDIT)
    kube.request("PATCH", f"/api/v1/namespaces/{ns}/configmaps/app",
                 body={"data": {"mode": "slow"}}, content_type="application/merge-patch+json", query=EDIT)
    kube.request("PATCH", f"/api/v1/namespaces/{ns}/secrets/db", content_type="application/merge-patch+json",
                 body={"data": {"password": base64.b64encode(b"letmein").decode()}}, query=EDIT)
    kube.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/gone")
    # ... and the desired set moves on: "new" is not applied yet.
    report = diff_set(kube, [*objects, configmap(ns, "new")], applyset=applyset)
    by_name = {diff.ref.kind + "/" + diff.ref.name: diff for diff in report.objects}
    assert by_name["Deployment/web"].state == "changed"
    assert [(c.path, c.desired, c.live) for c in by_name["Deployment/web"].changes] == [
        ("spec.replicas", 2, 5)]
    assert [(c.path, c.desired, c.live) for c in by_name["ConfigMap/app"].changes] == [
        ("data.mode", "fast", "slow")]
    assert [c.path for c in by_name["Secret/db"].changes] == ["data.password"]
    assert by_name["ConfigMap/gone"].state == "added"
    assert by_name["ConfigMap/new"].state == "added"
    text = repr(report.as_dict())
    for leaked in ("hunter2", "letmein", base64.b64encode(b"hunter2").decode(),
                   base64.b64encode(b"letmein").decode()):
        assert leaked not in text


def test_members_no_longer_desired_show_as_removed(kube, ns, applyset):
    apply_set(kube, [namespace(ns), configmap(ns, "a"), configmap(ns, "b")], applyset=applyset)
    report = diff_set(kube, [namespace(ns), configmap(ns, "a")], applyset=applyset)
    assert states(report) == {"Namespace/" + ns: "unchanged", "ConfigMap/a": "unchanged",
                              "ConfigMap/b": "removed"}


def test_nothing_is_read_in_a_namespace_the_set_creates(kube, ns, applyset):
    """A Namespace of the set that is not there holds nothing: its objects are not read one
    by one (the lists by label are all that is read besides the parent and the Namespace)."""
    objects = [namespace(ns), configmap(ns, "app"), secret(ns, "db", password="x"), service(ns, "web")]
    kube.counts.reset()
    report = diff_set(kube, objects, applyset=applyset)
    assert set(states(report).values()) == {"added"}
    # The parent and the Namespace: one GET each. Lists: Namespaces, and 3 kinds in the set's
    # namespace and in the parent's.
    assert kube.counts.reset() == {"get": 2, "list": 1 + 3 * 2, "discovery": 1}


def test_the_diff_keeps_what_it_read_for_the_apply(kube, ns, applyset):
    apply_set(kube, [namespace(ns), configmap(ns, "same"), configmap(ns, "edited"), configmap(ns, "dropped")],
              applyset=applyset)
    report = diff_set(kube, [namespace(ns), configmap(ns, "same"), configmap(ns, "edited", key="new"),
                             configmap(ns, "new")], applyset=applyset)
    observed = report.observed
    assert observed.parent.group_kinds == {("", "ConfigMap"), ("", "Namespace")}
    assert {key[3] for key in observed.unchanged} == {ns, "same"}
    assert {key[3] for key in observed.absent} == {"new"}
    assert [member.ref.name for member in observed.prunable] == ["dropped"]
