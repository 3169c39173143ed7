"""Server-side apply, dry-run and ApplySet prune against a real API server."""

from __future__ import annotations

import pytest

from fleet.kube.apply import apply_set
from fleet.kube.applyset import GROUP_KINDS, ID_LABEL, NAMESPACES, PART_OF, TOOLING
from fleet.kube.diff import diff_set
from fleet.kube.errors import InvalidObject, NotFound
from tests.kube.manifests import configmap, crd, deployment, namespace

pytestmark = pytest.mark.cluster


def exists(kube, path: str) -> bool:
    try:
        kube.get(path)
    except NotFound:
        return False
    return True


def cm_path(ns: str, name: str) -> str:
    return f"/api/v1/namespaces/{ns}/configmaps/{name}"


def configmap_key(ns: str, name: str) -> tuple[str, str, str, str]:
    return ("", "ConfigMap", ns, name)


def test_apply_orders_crds_and_namespaces_first_and_records_the_applyset(kube, ns, applyset):
    group = f"{ns}.example.com"
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget",
              "metadata": {"name": "w1", "namespace": ns}, "spec": {"size": 3}}
    # Deliberately listed backwards: the custom resource before its CRD and namespace.
    objects = [widget, configmap(ns, "app"), crd(group, "Widget", "widgets"), namespace(ns)]
    try:
        result = apply_set(kube, objects, applyset=applyset)
        assert {str(ref) for ref in result.applied} == {
            f"Widget.{group} {ns}/w1", f"ConfigMap {ns}/app",
            f"CustomResourceDefinition.apiextensions.k8s.io widgets.{group}", f"Namespace {ns}"}
        live = kube.get(f"/apis/{group}/v1/namespaces/{ns}/widgets/w1")
        assert live["spec"] == {"size": 3}
        assert live["metadata"]["labels"][PART_OF] == applyset.id
        assert any(m["manager"] == "fleet" for m in live["metadata"]["managedFields"])
        parent = kube.get(f"/api/v1/namespaces/fleet-system/secrets/applyset-{ns}")["metadata"]
        assert parent["labels"][ID_LABEL] == applyset.id
        assert parent["annotations"][TOOLING] == "fleet/v1"
        assert parent["annotations"][GROUP_KINDS] == (
            f"ConfigMap,CustomResourceDefinition.apiextensions.k8s.io,Namespace,Widget.{group}")
        assert parent["annotations"][NAMESPACES] == ns
    finally:
        kube.request("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{group}")


def test_reapply_changes_nothing(kube, ns, applyset):
    objects = [namespace(ns), configmap(ns, "app"), deployment(ns, "web")]
    apply_set(kube, objects, applyset=applyset)
    # A ConfigMap has no controller writing to it: any write would change its version.
    # A Deployment's status moves on its own, so its spec generation tells instead.
    paths = (cm_path(ns, "app"), f"/apis/apps/v1/namespaces/{ns}/deployments/web")
    before = [kube.get(path)["metadata"] for path in paths]
    apply_set(kube, objects, applyset=applyset)
    after = [kube.get(path)["metadata"] for path in paths]
    assert after[0]["resourceVersion"] == before[0]["resourceVersion"]
    assert after[1]["generation"] == before[1]["generation"] == 1


def test_prune_deletes_only_dropped_members_we_applied(kube, ns, applyset):
    apply_set(kube, [namespace(ns), configmap(ns, "keep"), configmap(ns, "drop")], applyset=applyset)
    # Labelled as a member by someone else, and an unlabelled neighbour: neither is ours.
    foreign = configmap(ns, "foreign")
    foreign["metadata"]["labels"] = {PART_OF: applyset.id}
    kube.request("POST", f"/api/v1/namespaces/{ns}/configmaps", body=foreign,
                 query={"fieldManager": "someone-else"})
    kube.request("POST", f"/api/v1/namespaces/{ns}/configmaps", body=configmap(ns, "unlabelled"))

    preview = apply_set(kube, [namespace(ns), configmap(ns, "keep")], applyset=applyset, dry_run=True)
    assert [str(ref) for ref in preview.pruned] == [f"ConfigMap {ns}/drop"]
    unlisted = apply_set(kube, [namespace(ns), configmap(ns, "keep")], applyset=applyset, dry_run=True,
                         prune_missing=False)  # the rollout's dry-run step: the apply lists for itself
    assert unlisted.pruned == [] and len(unlisted.applied) == 2
    assert exists(kube, cm_path(ns, "drop"))

    result = apply_set(kube, [namespace(ns), configmap(ns, "keep")], applyset=applyset)
    assert [str(ref) for ref in result.pruned] == [f"ConfigMap {ns}/drop"]
    assert not exists(kube, cm_path(ns, "drop"))
    for name in ("keep", "foreign", "unlabelled"):
        assert exists(kube, cm_path(ns, name))


def test_prune_follows_kinds_and_namespaces_dropped_from_the_set(kube, ns, applyset):
    other = f"{ns}-b"
    try:
        apply_set(kube, [namespace(ns), namespace(other), configmap(other, "old"),
                         deployment(ns, "web")], applyset=applyset)
        result = apply_set(kube, [namespace(ns), configmap(ns, "new")], applyset=applyset)
        assert {str(ref) for ref in result.pruned} == {
            f"ConfigMap {other}/old", f"Deployment.apps {ns}/web", f"Namespace {other}"}
        parent = kube.get(f"/api/v1/namespaces/fleet-system/secrets/applyset-{ns}")["metadata"]
        assert parent["annotations"][GROUP_KINDS] == "ConfigMap,Namespace"
    finally:
        kube.request("DELETE", f"/api/v1/namespaces/{other}") if exists(
            kube, f"/api/v1/namespaces/{other}") else None


def test_dry_run_applies_nothing(kube, ns, applyset):
    result = apply_set(kube, [namespace(ns), configmap(ns, "app")], applyset=applyset, dry_run=True)
    assert [str(ref) for ref in result.applied] == [f"Namespace {ns}"]
    assert [str(ref) for ref in result.deferred] == [f"ConfigMap {ns}/app"]  # its namespace is new
    assert not exists(kube, f"/api/v1/namespaces/{ns}")


def test_nothing_is_applied_when_the_dry_run_of_the_set_fails(kube, ns, applyset):
    apply_set(kube, [namespace(ns)], applyset=applyset)
    bad = deployment(ns, "web")
    bad["spec"]["replicas"] = -1
    with pytest.raises(InvalidObject) as info:
        apply_set(kube, [namespace(ns), configmap(ns, "app"), bad], applyset=applyset)
    assert info.value.code == "invalid"
    assert f"Deployment.apps {ns}/web" in str(info.value)
    assert "spec.replicas" in str(info.value)  # the API server's own message
    assert not exists(kube, cm_path(ns, "app"))


def test_objects_without_identity_fail_before_any_request(kube, ns, applyset):
    with pytest.raises(InvalidObject, match=r"object #1 \(ConfigMap\) has no metadata.name"):
        apply_set(kube, [namespace(ns), {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}],
                  applyset=applyset)
    assert not exists(kube, f"/api/v1/namespaces/{ns}")


def test_a_set_validated_by_the_caller_is_not_dry_run_again(kube, ns, applyset, monkeypatch):
    apply_set(kube, [namespace(ns)], applyset=applyset)
    objects = [namespace(ns), configmap(ns, "app"), configmap(ns, "other")]
    dry_runs = []
    original = kube.request
    monkeypatch.setattr(kube, "request", lambda method, path, **kw: (
        dry_runs.append(path) if (kw.get("query") or {}).get("dryRun") else None) or original(method, path, **kw))
    apply_set(kube, objects, applyset=applyset, dry_run=True)
    assert len(dry_runs) == 3
    apply_set(kube, objects, applyset=applyset, validated=True)  # the pipeline, right after its dry-run
    assert len(dry_runs) == 3 and exists(kube, cm_path(ns, "other"))
    apply_set(kube, objects, applyset=applyset)  # on its own, apply still dry-runs the set first
    assert len(dry_runs) == 6


def test_an_apply_after_a_diff_of_the_same_set_reads_nothing_again(kube, ns, applyset):
    """What the diff read (the parent, which Namespaces exist, the members to prune) the
    apply uses as it is; the objects live as desired are not dry-run; all are applied."""
    apply_set(kube, [namespace(ns), configmap(ns, "same"), configmap(ns, "edited"), configmap(ns, "dropped")],
              applyset=applyset)
    objects = [namespace(ns), configmap(ns, "same"), configmap(ns, "edited", key="new"), configmap(ns, "new")]
    observed = diff_set(kube, objects, applyset=applyset).observed
    kube.counts.reset()
    preview = apply_set(kube, objects, applyset=applyset, dry_run=True, prune_missing=False, observed=observed)
    assert sorted(ref.name for ref in preview.unchanged) == sorted([ns, "same"])
    assert sorted(ref.name for ref in preview.applied) == ["edited", "new"]
    assert kube.counts.reset() == {"patch dry-run": 2}
    result = apply_set(kube, objects, applyset=applyset, validated=True, observed=observed)
    assert kube.counts.reset() == {"patch": 4, "delete": 1}
    assert [ref.name for ref in result.pruned] == ["dropped"] and not exists(kube, cm_path(ns, "dropped"))
    assert kube.get(cm_path(ns, "edited"))["data"] == {"key": "new"}
    assert result.live[configmap_key(ns, "new")]["metadata"]["uid"] == kube.get(cm_path(ns, "new"))["metadata"]["uid"]


def test_a_reading_of_another_set_is_not_used(kube, ns, applyset):
    apply_set(kube, [namespace(ns), configmap(ns, "app")], applyset=applyset)
    observed = diff_set(kube, [namespace(ns), configmap(ns, "app")], applyset=applyset).observed
    kube.counts.reset()
    apply_set(kube, [namespace(ns), configmap(ns, "app"), configmap(ns, "more")], applyset=applyset,
              observed=observed)
    counts = kube.counts.reset()
    assert counts["patch dry-run"] == 3 and counts["list"] == 1 + 1 * 2  # dry-run and listed anew
