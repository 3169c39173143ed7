"""Reading Rego without an engine: v0 → v1 upgrade, namespacing, rule discovery."""

from __future__ import annotations

import subprocess

import pytest

from fleet.policy.rego import RegoSyntaxError, inspect_module, namespace_module

pytestmark = pytest.mark.embedded

V0 = '''package k8s.example

# deny[x] { in a comment stays as it is
message(parameters, fallback) = msg {
  msg := object.get(parameters, "message", fallback)
}
allowed = {"a", "b"}
violation[{"msg": msg, "details": {"missing": missing}}] {
  missing := {"x"} - {k | input.review.object.metadata.labels[k]}
  count(missing) > 0
  msg := message(input.parameters, "missing")
}
allow {
  true
} else = false {
  false
}
deny[msg] { msg := "s{" }
default ok = true
'''


def test_v0_heads_become_v1_on_the_same_lines():
    info = inspect_module(V0)
    assert info.was_v0 and info.package == "k8s.example"
    assert info.rules == {"message", "allowed", "violation", "allow", "deny", "ok"}
    lines = info.source.splitlines()
    assert len(lines) == len(V0.splitlines())
    assert lines[3] == "message(parameters, fallback) = msg if {"
    assert lines[7].startswith('violation contains {"msg": msg, "details": {"missing": missing}} if')
    assert lines[12] == "allow if {" and lines[14] == "} else = false if {"
    assert lines[17] == 'deny contains msg if  { msg := "s{" }'
    assert lines[2] == "# deny[x] { in a comment stays as it is" and lines[6] == 'allowed = {"a", "b"}'
    assert info.set_rules == {"violation", "deny"}


def test_upgraded_v0_is_valid_for_opa(opa_binary, tmp_path):
    (tmp_path / "m.rego").write_text(inspect_module(V0).source)
    check = subprocess.run([str(opa_binary), "check", str(tmp_path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_v1_is_left_alone():
    source = 'package p\nimport rego.v1\ndeny contains msg if { msg := "x" }\n'
    info = inspect_module(source)
    assert not info.was_v0 and info.source == source
    assert info.rules == info.set_rules == {"deny"}
    mixed = inspect_module('package p\nimport rego.v1\nwarn contains 1 if true\nwarn := {2}\ndeny[k] := 1 if k := "a"\n')
    assert mixed.set_rules == set()


def test_namespacing_moves_package_and_data_refs_but_not_context():
    source = "package a.b\nimport data.lib.k8s\nx := data.c.d\ny := data.fleet.cluster\nz := input.data.q\n"
    moved = namespace_module(source, "fleet_bundles.b1")
    assert moved == ("package fleet_bundles.b1.a.b\nimport data.fleet_bundles.b1.lib.k8s\n"
                     "x := data.fleet_bundles.b1.c.d\ny := data.fleet.cluster\nz := input.data.q\n")


def test_uses_with_is_detected():
    assert inspect_module("package p\nx := data.q with input as {}\n").uses_with
    assert not inspect_module('package p\nx := "with"\n').uses_with


@pytest.mark.parametrize("source", ["x := 1\n", "package p\nx := 1 \x00\n"])
def test_unreadable_source(source):
    with pytest.raises(RegoSyntaxError):
        inspect_module(source)
