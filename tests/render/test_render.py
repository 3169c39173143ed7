"""Rendering: real kustomize and plain directories, validated objects, a stable hash,
limits, and the refused inputs of the safety checks."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import yaml

from fleet.dev.testrepo import create_primary_repo
from fleet.gitops.git import Git
from fleet.gitops.mirror import render_ref
from fleet.render.errors import RenderError
from fleet.render.limits import RenderLimits
from fleet.render.safety import check_kustomization_tree
from fleet.render.services import render_dir
from fleet.toolchain.errors import ToolchainError

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]
LIMITS = RenderLimits(max_file_bytes=64 * 1024, max_total_bytes=1024 * 1024, max_files=200,
                      max_output_bytes=1024 * 1024, max_objects=100, timeout_seconds=20)


def obj(kind: str, name: str, namespace: str = "", api: str = "v1", **extra) -> dict:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": api, "kind": kind, "metadata": metadata, **extra}


def write(root: Path, files: dict[str, object]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, list):
            content = yaml.safe_dump_all(content)
        elif isinstance(content, dict):
            content = yaml.safe_dump(content)
        path.write_text(content)
    return root


@pytest.fixture(scope="module")
def vendor(tmp_path_factory):
    root = tmp_path_factory.mktemp("render-vendor")
    repo = create_primary_repo(root / "platform.git")
    Git(root).run("clone", "--quiet", "--branch", "release-1.1", repo.url, str(root / "checkout"))
    return repo, root / "checkout"


def test_kustomize_renders_the_vendor_release(vendor):
    _, checkout = vendor
    result = render_dir(checkout / "base", root=checkout, limits=LIMITS)
    assert result.renderer == "kustomize" and result.kustomize_seconds > 0
    kinds = [o["kind"] for o in result.objects]
    assert kinds[:2] == ["Namespace", "CustomResourceDefinition"]  # kustomize's apply order is kept
    assert sorted(kinds) == sorted(["Namespace", "CustomResourceDefinition", "ServiceAccount", "Role",
                                    "RoleBinding", "ConfigMap", "Deployment", "Service", "Widget"])
    assert result.content_hash.startswith("sha256:")
    assert render_dir(checkout / "base", root=checkout, limits=LIMITS).content_hash == result.content_hash


def test_plain_directory_and_hash_independent_of_layout(tmp_path):
    a = write(tmp_path / "a", {"all.yaml": [obj("Namespace", "apps"), obj("ConfigMap", "c", "apps",
                                                                            data={"k": "v"})]})
    b = write(tmp_path / "b", {"nested/cm.json": json.dumps(obj("ConfigMap", "c", "apps", data={"k": "v"})),
                               "ns.yml": obj("Namespace", "apps"), "README.md": "not a manifest"})
    first, second = render_dir(a, limits=LIMITS), render_dir(b, limits=LIMITS)
    assert first.renderer == second.renderer == "plain"
    assert first.content_hash == second.content_hash
    changed = write(tmp_path / "c", {"all.yaml": [obj("Namespace", "apps"), obj("ConfigMap", "c", "apps",
                                                                                  data={"k": "w"})]})
    assert render_dir(changed, limits=LIMITS).content_hash != first.content_hash


def test_a_plain_directory_with_kustomizations_below_it_says_where_to_render(vendor):
    """Platform 1.2's root holds no kustomization, only manifests/ and components/: read
    as plain manifests, a Component's kustomization failed as an object with no name."""
    _, checkout = vendor
    Git(checkout).run("checkout", "--quiet", "release-1.2")
    try:
        with pytest.raises(RenderError, match=r"^\.: has no kustomization of its own, but "
                                              r"components/ingress/kustomization.yaml is one") as raised:
            render_dir(checkout, limits=LIMITS)
        assert raised.value.code == "no-kustomization"
        assert render_dir(checkout / "manifests", root=checkout, limits=LIMITS).renderer == "kustomize"
    finally:
        Git(checkout).run("checkout", "--quiet", "release-1.1")


@pytest.mark.parametrize("document, message", [
    (obj("ConfigMap", ""), r"\(ConfigMap\) has no metadata.name"),
    ({"kind": "ConfigMap", "metadata": {"name": "x"}}, "has no apiVersion"),
    ({"apiVersion": "v1", "metadata": {"name": "x"}}, "has no kind"),
    ("just a string", "is not a mapping"),
])
def test_objects_must_be_named_kubernetes_objects(tmp_path, document, message):
    write(tmp_path, {"bad.yaml": [document]})
    with pytest.raises(RenderError, match=message) as raised:
        render_dir(tmp_path, limits=LIMITS)
    assert raised.value.code == "invalid-object" and raised.value.path == "bad.yaml"


def test_duplicates_are_refused_but_same_name_in_other_namespaces_or_groups_is_not(tmp_path):
    write(tmp_path, {"one.yaml": [obj("ConfigMap", "c", "a"), obj("ConfigMap", "c", "b"),
                                  obj("Thing", "c", "a", api="x.example.com/v1")],
                     "two.yaml": [obj("ConfigMap", "c", "a")]})
    with pytest.raises(RenderError, match=r"duplicate object ConfigMap a/c \(also in one.yaml\)"):
        render_dir(tmp_path, limits=LIMITS)


def test_invalid_yaml_names_file_and_line(tmp_path):
    write(tmp_path, {"broken.yaml": "apiVersion: v1\nkind: [unclosed\n"})
    with pytest.raises(RenderError, match="broken.yaml: invalid YAML: .* at line 3"):
        render_dir(tmp_path, limits=LIMITS)


def test_kustomize_failure_is_reported_without_host_paths(tmp_path):
    write(tmp_path, {"kustomization.yaml": {"resources": ["cm.yaml"], "patches": [{"path": "patch.yaml"}]},
                     "cm.yaml": obj("ConfigMap", "x"), "patch.yaml": "not: a patch"})
    with pytest.raises(RenderError, match="kustomize build failed") as raised:
        render_dir(tmp_path, limits=LIMITS)
    assert raised.value.code == "kustomize" and str(tmp_path) not in str(raised.value)


# -- refused input -----------------------------------------------------------------------


def test_symlink_outside_the_repo(tmp_path):
    write(tmp_path, {"cm.yaml": obj("ConfigMap", "c")})
    os.symlink("/etc/hostname", tmp_path / "leak.yaml")
    with pytest.raises(RenderError, match="leak.yaml: symlink points outside the repository") as raised:
        render_dir(tmp_path, limits=LIMITS)
    assert raised.value.code == "symlink"


def test_symlink_inside_the_repo_is_fine(tmp_path):
    write(tmp_path, {"real/cm.yaml": obj("ConfigMap", "c")})
    os.symlink("real", tmp_path / "alias")
    check_kustomization_tree(tmp_path, tmp_path, LIMITS)
    render_dir(tmp_path / "real", root=tmp_path, limits=LIMITS)


@pytest.mark.parametrize("field, value, code", [
    ("resources", ["../../outside"], "path-escape"),
    ("resources", ["/etc/kubernetes"], "path-escape"),
    ("resources", ["https://github.com/evil/x//base?ref=main"], "remote-base"),
    ("components", ["github.com/evil/x/comp"], "remote-base"),
    ("patches", [{"path": "../../../etc/passwd"}], "path-escape"),
    ("configMapGenerator", [{"name": "x", "files": ["key=/etc/shadow"]}], "path-escape"),
    ("helmCharts", [{"name": "x"}], "plugin"),
    ("transformers", [{"apiVersion": "v1", "kind": "Fn", "metadata": {"name": "x", "annotations": {
        "config.kubernetes.io/function": "container:\n  image: evil\n"}}}], "plugin"),
    ("generators", [{"apiVersion": "example.com/v1", "kind": "Exec", "metadata": {"name": "x"}}], "plugin"),
])
def test_refused_kustomizations(tmp_path, field, value, code):
    overlay = write(tmp_path / "repo", {"overlay/kustomization.yaml": {field: value}}) / "overlay"
    with pytest.raises(RenderError) as raised:
        render_dir(overlay, root=tmp_path / "repo", limits=LIMITS)
    assert raised.value.code == code, raised.value
    assert str(tmp_path) not in str(raised.value)


def test_builtin_transformers_are_allowed(tmp_path):
    write(tmp_path, {"kustomization.yaml": {"resources": ["cm.yaml"], "transformers": ["prefix.yaml"]},
                     "cm.yaml": obj("ConfigMap", "c"),
                     "prefix.yaml": {"apiVersion": "builtin", "kind": "PrefixSuffixTransformer",
                                     "metadata": {"name": "p"}, "prefix": "site-",
                                     "fieldSpecs": [{"path": "metadata/name"}]}})
    assert render_dir(tmp_path, limits=LIMITS).objects[0]["metadata"]["name"] == "site-c"


def test_remote_bases_pass_the_checks_when_allowed(tmp_path):
    write(tmp_path, {"kustomization.yaml": {"resources": ["https://github.com/org/repo//base?ref=v1"]}})
    check_kustomization_tree(tmp_path, tmp_path, dataclasses.replace(LIMITS, allow_remote_bases=True))


def test_size_limits(tmp_path):
    write(tmp_path, {"big.yaml": "# " + "x" * (LIMITS.max_file_bytes + 1)})
    with pytest.raises(RenderError, match="big.yaml: file is .* the limit is 65536") as raised:
        render_dir(tmp_path, limits=LIMITS)
    assert raised.value.code == "too-large"
    many = write(tmp_path / "many", {f"cm{i}.yaml": obj("ConfigMap", f"c{i}") for i in range(5)})
    with pytest.raises(RenderError, match="more than 3 objects"):
        render_dir(many, limits=dataclasses.replace(LIMITS, max_objects=3))


def test_kustomize_output_limit(vendor):
    _, checkout = vendor
    with pytest.raises(RenderError, match="kustomize output exceeds 2048 bytes"):
        render_dir(checkout / "base", root=checkout, limits=dataclasses.replace(LIMITS, max_output_bytes=2048))


def test_kustomize_timeout(tmp_path, monkeypatch):
    slow = tmp_path / "slow-kustomize"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    monkeypatch.setenv("FLEET_KUSTOMIZE_BIN", str(slow))
    write(tmp_path / "k", {"kustomization.yaml": {"resources": []}})
    with pytest.raises(RenderError, match="took longer than 1s") as raised:
        render_dir(tmp_path / "k", limits=dataclasses.replace(LIMITS, timeout_seconds=1))
    assert raised.value.code == "timeout"


def test_a_missing_kustomize_is_named_with_its_install_command_and_never_built(tmp_path, monkeypatch):
    """Rendering only locates kustomize: a build takes minutes and must not start in a request."""
    cache = tmp_path / "bin"
    monkeypatch.setenv("FLEET_BIN_CACHE", str(cache))
    monkeypatch.delenv("FLEET_KUSTOMIZE_BIN", raising=False)
    write(tmp_path / "k", {"kustomization.yaml": {"resources": []}})
    with pytest.raises(ToolchainError) as raised:
        render_dir(tmp_path / "k", limits=LIMITS)
    assert raised.value.key == "toolchain.missing"
    assert "kustomize" in str(raised.value) and "python -m fleet.toolchain kustomize" in str(raised.value)
    assert not cache.exists()


@pytest.mark.django_db
def test_render_ref_matches_a_checkout(vendor, settings, tmp_path):
    settings.FLEET_WORKSPACE_DIR = tmp_path / "ws"
    repo, checkout = vendor
    expected = render_dir(checkout / "base", root=checkout, limits=LIMITS).content_hash
    assert render_ref(repo.url, "release-1.1", "base", limits=LIMITS).content_hash == expected
    assert render_ref(repo.url, repo.head("release-1.1"), "base", limits=LIMITS).content_hash == expected
    with pytest.raises(RenderError, match="outside the repository"):
        render_ref(repo.url, "release-1.1", "../..", limits=LIMITS)
