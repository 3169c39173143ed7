"""Object identity, validation and ApplySet naming: no cluster needed."""

import base64
import hashlib

import pytest

from fleet.core.objects import ObjectRef
from fleet.kube.applyset import ApplySet, applyset_id, format_group_kind, parse_group_kind
from fleet.kube.errors import InvalidObject
from fleet.kube.objects import is_first_phase, ref_of, refs_of

pytestmark = pytest.mark.embedded


def cm(name="app", namespace="web"):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}}


def test_ref_of_reads_group_version_kind_namespace_name():
    ref = ref_of({"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "web", "namespace": "shop"}})
    assert ref == ObjectRef("apps", "v1", "Deployment", "shop", "web")
    assert str(ref) == "Deployment.apps shop/web"
    assert str(ObjectRef("", "v1", "Namespace", "", "shop")) == "Namespace shop"


@pytest.mark.parametrize("obj, expected", [
    ({"kind": "ConfigMap", "metadata": {"name": "a"}}, "object #3 (ConfigMap a) has no apiVersion"),
    ({"apiVersion": "v1", "metadata": {"name": "a", "namespace": "x"}}, "object #3 (x a) has no kind"),
    ({"apiVersion": "v1", "kind": "ConfigMap"}, "object #3 (ConfigMap) has no metadata.name"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ""}}, "has no metadata.name"),
])
def test_objects_missing_identity_are_named_in_the_error(obj, expected):
    with pytest.raises(InvalidObject, match=expected.replace("(", r"\(").replace(")", r"\)")) as info:
        ref_of(obj, position=3, cluster="edge-1")
    assert info.value.code == "invalid"
    assert str(info.value).startswith("cluster edge-1: ")


def test_duplicates_in_a_set_are_refused():
    with pytest.raises(InvalidObject, match="ConfigMap web/app: appears twice"):
        refs_of([cm(), cm()])


def test_crds_and_namespaces_go_first():
    assert is_first_phase(ObjectRef("", "v1", "Namespace", "", "x"))
    assert is_first_phase(ObjectRef("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "", "x"))
    assert not is_first_phase(ObjectRef("apps", "v1", "Deployment", "x", "y"))


def test_applyset_id_is_kubectls():
    # kubectl: base64url(sha256("<name>.<namespace>.<kind>.<group>")), no padding.
    digest = hashlib.sha256(b"applyset-fleet.fleet-system.Secret.").digest()
    expected = "applyset-" + base64.urlsafe_b64encode(digest).decode().rstrip("=") + "-v1"
    assert ApplySet().id == expected == applyset_id("applyset-fleet", "fleet-system", "Secret", "")
    # A known value computed with kubectl's algorithm for Secret default/my-set.
    assert applyset_id("my-set", "default", "Secret", "") == (
        "applyset-" + base64.urlsafe_b64encode(hashlib.sha256(b"my-set.default.Secret.").digest())
        .decode().rstrip("=") + "-v1")
    assert len(ApplySet().id) <= 63  # a label value


def test_group_kinds_format_like_kubectl():
    assert format_group_kind(("apps", "Deployment")) == "Deployment.apps"
    assert format_group_kind(("", "ConfigMap")) == "ConfigMap"
    assert parse_group_kind("Certificate.cert-manager.io") == ("cert-manager.io", "Certificate")
    assert parse_group_kind("Secret") == ("", "Secret")


def test_label_adds_part_of_and_refuses_another_sets_label():
    applyset, ref = ApplySet(), ObjectRef("", "v1", "ConfigMap", "web", "app")
    labelled = applyset.label(cm(), ref)
    assert labelled["metadata"]["labels"] == {"applyset.kubernetes.io/part-of": applyset.id}
    other = cm()
    other["metadata"]["labels"] = {"applyset.kubernetes.io/part-of": "applyset-other-v1"}
    with pytest.raises(InvalidObject, match="another tool's ApplySet"):
        applyset.label(other, ref)
