"""Reading Rego without an engine: packages, imports, data references, namespacing; and
that Fleet hands OPA v0 and v1 modules as written (no syntax is rewritten)."""

from __future__ import annotations

import subprocess

import pytest

from fleet.policy.rego import RegoSyntaxError, inspect_module, namespace_module, with_v1_import

pytestmark = pytest.mark.embedded

V0 = '''package k8s.example # a Gatekeeper-style v0 module

import data.lib.helpers
import future.keywords.in

get_profile(c) = {"type": "RuntimeDefault"} {
  not c.securityContext
}
violation[{"msg": msg}] {
  some c in input.review.object.spec.containers
  get_profile(c).type != "Localhost"
  data.inventory.namespace[ns]
  msg := helpers.name(c)
}
contains(items, x) { items[_] == x }
'''


def test_what_is_read_of_a_v0_module():
    info = inspect_module(V0)
    assert (info.package, info.package_line) == ("k8s.example", 1)
    assert info.rules == {"get_profile", "violation", "contains"}
    assert [path for path, _ in info.imports] == ["data.lib.helpers", "future.keywords.in"]
    assert info.data_refs == (("lib", 3), ("inventory", 12))
    assert not info.has_v1_import and info.set_rules == set()


def test_v1_modules_get_the_v1_import_on_their_package_line():
    source = 'package p\n\ndeny contains msg if { msg := "x" }\n'
    marked = with_v1_import(source, inspect_module(source))
    assert marked.splitlines()[0] == "package p import rego.v1" and marked.count("\n") == source.count("\n")
    already = 'package p\nimport rego.v1\ndeny contains 1 if true\n'
    assert with_v1_import(already, inspect_module(already)) == already
    assert inspect_module(source).set_rules == {"deny"}


def test_both_versions_compile_as_written_in_a_v0_compatible_opa(opa_binary, tmp_path):
    (tmp_path / "v0.rego").write_text(V0.replace("import data.lib.helpers\n", "").replace(
        "msg := helpers.name(c)", "msg := c.name"))
    v1 = 'package p\n\ndeny contains msg if { some msg in input.names }\n'
    (tmp_path / "v1.rego").write_text(with_v1_import(v1, inspect_module(v1)))
    check = subprocess.run([str(opa_binary), "check", "--v0-compatible", str(tmp_path)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_namespacing_moves_package_and_data_refs_but_not_the_global_ones():
    source = ('package a.b\nimport data.lib.k8s\nx := data.c.d\ny := data.fleet.cluster\nz := input.data.q\n'
              'w := data["lib"].k\nv := data.inventory.cluster\n')
    moved = namespace_module(source, "fleet_bundles.b1", frozenset({"fleet", "inventory"}))
    assert moved == ("package fleet_bundles.b1.a.b\nimport data.fleet_bundles.b1.lib.k8s\n"
                     "x := data.fleet_bundles.b1.c.d\ny := data.fleet.cluster\nz := input.data.q\n"
                     'w := data.fleet_bundles.b1["lib"].k\nv := data.inventory.cluster\n')


@pytest.mark.parametrize("source", ["x := 1\n", "package p\nx := 1 \x00\n"])
def test_unreadable_source(source):
    with pytest.raises(RegoSyntaxError):
        inspect_module(source)
