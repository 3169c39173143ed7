"""The gate reading a real cluster (``live=True``, as the pipeline calls it): reviews as
the API server would send them for Fleet's apply, Namespaces from the cluster,
``data.inventory`` from the cluster's synced kinds with the release applied over them,
and a synced kind the cluster cannot serve failing only the sets that need it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from fleet.inventory.credentials import ClusterCredentials
from fleet.kube.client import client_for, forget_clients
from fleet.kube.errors import NotFound
from fleet.policy import services
from fleet.policy.choices import DecisionSource
from fleet.policy.models import PolicySet
from tests.factories import ClusterFactory

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]
SUITES = Path(__file__).parent / "gatekeeper"

PROBE = """apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8sreviewprobe}
spec:
  crd: {spec: {names: {kind: K8sReviewProbe}}}
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sreviewprobe

        violation[{"msg": msg}] {
          r := input.review
          old := object.get(r, "oldObject", null)
          msg := sprintf("%v %v/%v old=%v same=%v user=%v env=%v plural=%v dry=%v", [r.operation, r.kind.kind,
            r.name, old != null, r.object == old, r.userInfo.username,
            object.get(object.get(r, "namespaceObject", {}), ["metadata", "labels", "env"], "-"),
            r.resource.resource, r.dryRun])
        }
"""


def constraint(kind: str, name: str, match: str) -> str:
    return (f"apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: {kind}\nmetadata: {{name: {name}}}\n"
            f"spec:\n  match: {match}\n")


@pytest.fixture
def cluster(local_fleet):
    local = local_fleet.clusters[0]
    record = ClusterFactory(name=f"live-{uuid.uuid4().hex[:6]}", api_server_url=local.server, labels={"env": "prod"})
    record.set_credentials(ClusterCredentials(token=local.token, ca_pem=local.ca_pem))
    record.save()
    yield record
    forget_clients()


@pytest.fixture
def namespace(cluster):
    """A live namespace labelled env=prod, with a Service and a ConfigMap in it."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    client = client_for(cluster)
    client.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                      "metadata": {"name": name, "labels": {"env": "prod"}}})
    client.request("POST", f"/api/v1/namespaces/{name}/services", body=service("web", name, {"app": "web"}))
    client.request("POST", f"/api/v1/namespaces/{name}/configmaps", body=configmap("old", name, "1"))
    yield name
    try:
        client.request("DELETE", f"/api/v1/namespaces/{name}")
    except NotFound:
        pass


def service(name: str, namespace: str, selector: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": selector, "ports": [{"port": 80}]}}


def configmap(name: str, namespace: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"v": value}}


def policy_set(name: str, files: dict[str, str], **fields) -> PolicySet:
    return PolicySet.objects.create(name=name, files=files, **fields)


def gate(cluster, objects, deployed=(), **kwargs):
    verdict, _ = services.evaluate(objects, cluster=cluster, deployed=list(deployed), live=True,
                                   source=DecisionSource.PIPELINE, record=False, **kwargs)
    return verdict


def test_reviews_are_what_the_api_server_would_send(cluster, namespace):
    sets = [policy_set("probe", {"probe.yaml": PROBE + "---\n" + constraint(
        "K8sReviewProbe", "everything", '{namespaceSelector: {matchLabels: {env: prod}}}')}, review_deletes=True)]
    changed, new = configmap("old", namespace, "2"), configmap("new", namespace, "1")
    stub = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gone", "namespace": namespace}}
    client_for(cluster).request("POST", f"/api/v1/namespaces/{namespace}/configmaps",
                                body=configmap("gone", namespace, "x"))
    identity = client_for(cluster).request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body={
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})["status"]["userInfo"]["username"]
    verdict = gate(cluster, [changed, new], deployed=[changed, stub], policy_sets=sets)
    assert not verdict.errors, verdict.errors
    messages = sorted(v.message for v in verdict.violations)
    user = f"user={identity} env=prod plural=configmaps dry=false"
    assert messages == [f"CREATE ConfigMap/new old=false same=false {user}",
                        f"DELETE ConfigMap/gone old=true same=true {user}",
                        f"UPDATE ConfigMap/old old=true same=false {user}"]
    assert identity != "fleet"
    preview = gate(cluster, [changed], policy_sets=sets, dry_run=True)
    assert [v.message.endswith("dry=true") for v in preview.violations] == [True]


def test_deletes_are_reviewed_only_when_the_set_says_so(cluster, namespace):
    sets = [policy_set("probe", {"probe.yaml": PROBE + "---\n" + constraint(
        "K8sReviewProbe", "everything", '{kinds: [{apiGroups: [""], kinds: [ConfigMap]}]}')})]
    stub = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old", "namespace": namespace}}
    verdict = gate(cluster, [configmap("new", namespace, "1")], deployed=[stub], policy_sets=sets)
    assert [v.message.split(" ")[0] for v in verdict.violations] == ["CREATE"]


def test_the_inventory_is_the_cluster_with_the_release_applied(cluster, namespace):
    template = (SUITES / "uniqueserviceselector" / "template.yaml").read_text()
    sets = [policy_set("unique", {"t.yaml": template + "---\n" + constraint(
        "K8sUniqueServiceSelectorSuite", "unique", '{kinds: [{apiGroups: [""], kinds: [Service]}]}')})]
    clash = service("web-2", namespace, {"app": "web"})
    verdict = gate(cluster, [clash], policy_sets=sets)
    assert [(v.object, v.message) for v in verdict.violations] == [
        (f"Service/{namespace}/web-2", f"same selector as service <web> in namespace <{namespace}>")]
    moved = service("web", namespace, {"app": "web-v1"})  # the release changes the live one: no clash left
    assert gate(cluster, [clash, moved], policy_sets=sets).allowed


def test_a_kind_the_cluster_cannot_sync_fails_only_the_sets_that_sync_it(cluster, namespace):
    syncset = ("apiVersion: syncset.gatekeeper.sh/v1alpha1\nkind: SyncSet\nmetadata: {name: widgets}\n"
               "spec:\n  gvks: [{group: example.com, version: v1, kind: Widget}]\n")
    sets = [policy_set("widgets", {"probe.yaml": PROBE + "---\n" + constraint(
        "K8sReviewProbe", "none", "{kinds: [{apiGroups: [nothing], kinds: [Nothing]}]}"), "sync.yaml": syncset}),
            policy_set("open", {"probe.yaml": PROBE + "---\n" + constraint(
                "K8sReviewProbe", "none", "{kinds: [{apiGroups: [nothing], kinds: [Nothing]}]}"), "sync.yaml": syncset},
                fail_open=True),
            policy_set("other", {"ok.rego": "package ok\n\ndeny contains 1 if false\n"})]
    verdict = gate(cluster, [configmap("new", namespace, "1")], policy_sets=sets)
    assert {e["policy_set"]: (e["code"], e["failed_open"]) for e in verdict.errors} == {
        "widgets": ("policy.input", False), "open": ("policy.input", True)}
    assert "cannot sync example.com/v1/Widget into data.inventory" in verdict.errors[0]["message"]
    assert not verdict.allowed


def test_the_pipelines_reading_gives_the_same_reviews_without_listing_the_cluster(cluster, namespace):
    """The pipeline hands the gate its diff's reading of the release (``known``): the same
    reviews as from the gate's own reading, and no kind listed across the cluster."""
    from fleet.kube import services as kube
    from fleet.rollouts.steps import deployed_objects, live_objects

    sets = [policy_set("probe", {"probe.yaml": PROBE + "---\n" + constraint(
        "K8sReviewProbe", "everything", '{namespaceSelector: {matchLabels: {env: prod}}}')}, review_deletes=True)]
    release = [configmap("old", namespace, "2"), configmap("new", namespace, "1"), service("web", namespace, {})]
    own = sorted(v.message for v in gate(cluster, release, policy_sets=sets).violations)
    report = kube.diff(cluster, release)
    client = client_for(cluster)
    client.counts.reset()
    verdict = gate(cluster, release, deployed=deployed_objects(report, release), policy_sets=sets,
                   known=live_objects(report))
    assert sorted(v.message for v in verdict.violations) == own and len(own) == 3
    assert "UPDATE ConfigMap/old old=true" in " ".join(own) and "CREATE ConfigMap/new old=false" in " ".join(own)
    assert "list" not in client.counts.snapshot(), client.counts.snapshot()
