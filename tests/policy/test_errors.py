"""Bad input gets a clear error with file and line, and the gate fails closed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleet.dev.opa_process import free_port
from fleet.policy import gate
from fleet.policy.bundle import load_bundle
from fleet.policy.engines.base import Engine
from fleet.policy.engines.opa_engine import OpaEngine
from fleet.policy.errors import PolicyError
from fleet.policy.inputs import build_input
from tests.policy.objects import deployment

NOW = datetime.now(UTC)
TEMPLATE = """apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {{name: k8sthing}}
spec:
  crd: {{spec: {{names: {{kind: K8sThing}}}}}}
  targets:
    - target: {target}
      rego: |
        package k8sthing
        violation[{{"msg": "x"}}] {{
          input.review.object.kind ==
        }}
"""

pytestmark = pytest.mark.embedded


def evaluate(engine, files, *, mode="enforce", fail_open=False):
    try:
        spec = gate.PolicySetSpec("s", mode, fail_open, load_bundle(files))
    except PolicyError as exc:
        spec = gate.PolicySetSpec("s", mode, fail_open, None, exc)
    return gate.evaluate([spec], build_input([deployment()]), engine, now=NOW)


def only_error(verdict) -> dict:
    assert len(verdict.errors) == 1, verdict.errors
    return verdict.errors[0]


def test_invalid_rego_names_file_and_line(engine):
    verdict = evaluate(engine, {"ok.rego": "package ok\n", "bad.rego": "package x\n\ndeny if {\n  input.x ==\n}\n"})
    error = only_error(verdict)
    assert not verdict.allowed
    assert (error["code"], error["file"]) == ("policy.syntax", "bad.rego")
    assert error["line"] in (4, 5)  # the dangling operator; OPA reports the token after it


def test_invalid_rego_in_a_template_points_into_the_yaml(engine):
    error = only_error(evaluate(engine, {"t.yaml": TEMPLATE.format(target="admission.k8s.gatekeeper.sh")}))
    assert error["file"] == "t.yaml"
    assert error["line"] in (11, 12)


def test_template_for_another_target_or_without_rego():
    with pytest.raises(PolicyError) as caught:
        load_bundle({"t.yaml": TEMPLATE.format(target="audit.example.com")})
    assert caught.value.code == "template" and caught.value.file == "t.yaml"
    assert "target 'audit.example.com' is not admission.k8s.gatekeeper.sh" in caught.value.message
    without = TEMPLATE.format(target="admission.k8s.gatekeeper.sh").split("      rego:")[0]
    with pytest.raises(PolicyError, match="no Rego for target admission.k8s.gatekeeper.sh"):
        load_bundle({"t.yaml": without})


def test_constraint_naming_a_missing_template():
    constraint = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sNope\nmetadata: {name: n}\n"
    with pytest.raises(PolicyError) as caught:
        load_bundle({"c.yaml": constraint})
    assert (caught.value.code, caught.value.file) == ("constraint", "c.yaml")
    assert "no ConstraintTemplate defines kind 'K8sNope'" in caught.value.message


def test_invalid_yaml_has_a_line():
    with pytest.raises(PolicyError) as caught:
        load_bundle({"c.yaml": "a: [1, 2\nb: c\n"})
    assert caught.value.file == "c.yaml" and caught.value.line


def test_reserved_package():
    with pytest.raises(PolicyError, match="reserved"):
        load_bundle({"f.rego": "package fleet.mine\n"})


def test_policy_failing_at_run_time(engine):
    files = {"rt.rego": 'package rt\nimport rego.v1\n\n'
                       'deny contains m if {\n  m := sprintf("%d", [to_number(input.kind)])\n}\n',
             "a_ok.rego": 'package ok\nimport rego.v1\n\ndeny contains "fine" if false\n'}
    verdict = evaluate(engine, files)
    error = only_error(verdict)
    assert (error["code"], error["file"]) == ("policy.runtime", "rt.rego")
    assert not verdict.allowed


def test_conflicting_rule_values_fail_at_run_time(engine):
    files = {"c.rego": "package c\nimport rego.v1\n\nx := 1 if input.kind\nx := 2 if input.kind\n"
                       "deny contains x if true\n"}
    assert only_error(evaluate(engine, files))["code"] == "policy.runtime"


def test_unreachable_opa_fails_closed():
    engine = OpaEngine(f"http://127.0.0.1:{free_port()}", timeout=1)
    verdict = evaluate(engine, {"ok.rego": "package ok\nimport rego.v1\ndeny contains 1 if false\n"})
    error = only_error(verdict)
    assert not verdict.allowed and error["code"] == "policy.engine" and "cannot be reached" in error["message"]


def test_fail_open_is_explicit_and_recorded():
    engine = OpaEngine(f"http://127.0.0.1:{free_port()}", timeout=1)
    verdict = evaluate(engine, {"ok.rego": "package ok\n"}, fail_open=True)
    assert verdict.allowed and only_error(verdict)["failed_open"] is True


def test_errors_of_a_warn_or_dry_run_set_do_not_block(engine):
    for mode in ("warn", "dry-run"):
        verdict = evaluate(engine, {"bad.rego": "package x\ndeny if {\n"}, mode=mode)
        assert verdict.allowed and verdict.errors


class ExplodingEngine(Engine):
    name = "exploding"

    def prepare(self, bundle, slot=""):
        raise RuntimeError("boom")

    def evaluate(self, bundle, data, reviews, matches, **options):
        raise RuntimeError("boom")


def test_an_engine_bug_is_a_reasoned_deny_not_an_exception():
    verdict = evaluate(ExplodingEngine(), {"ok.rego": "package ok\n"})
    assert not verdict.allowed and "internal error" in only_error(verdict)["message"]


def test_parameters_a_template_does_not_declare_are_refused():
    """As Gatekeeper's constraint CRD (structural, pruning): an undeclared parameter, or
    any parameters for a v1 template with no schema, is refused; a v1beta1 template
    keeps unknown fields (its legacy schema)."""
    base = Path(__file__).parent / "gatekeeper" / "requiredlabels"
    files = {"t.yaml": (base / "template.yaml").read_text(),
             "c.yaml": (base / "constraint-extra-param.yaml").read_text()}
    with pytest.raises(PolicyError, match=r"unknown fields: \['spec.parameters.extra'\]") as caught:
        load_bundle(files)
    assert (caught.value.code, caught.value.file) == ("constraint", "c.yaml")
    bare = TEMPLATE.format(target="admission.k8s.gatekeeper.sh").replace("input.review.object.kind ==", "true")
    constraint = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sThing\nmetadata: {name: n}\nspec:\n"
    with pytest.raises(PolicyError, match=r"unknown fields: \['spec.parameters'\]"):
        load_bundle({"t.yaml": bare, "c.yaml": constraint + "  parameters: {}\n"})
    assert load_bundle({"t.yaml": bare, "c.yaml": constraint})
    legacy = bare.replace("templates.gatekeeper.sh/v1\n", "templates.gatekeeper.sh/v1beta1\n")
    assert load_bundle({"t.yaml": legacy, "c.yaml": constraint + "  parameters: {any: thing}\n"})


def test_a_namespace_selector_without_the_namespace_is_an_error_naming_it(engine):
    files = {"t.yaml": (Path(__file__).parent / "gatekeeper" / "match" / "template.yaml").read_text(),
             "c.yaml": "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sMatchProbe\nmetadata: {name: sel}\n"
                       "spec:\n  match: {namespaceSelector: {matchLabels: {env: prod}}}\n"}
    error = only_error(evaluate(engine, files))
    assert (error["code"], error["file"]) == ("policy.constraint", "c.yaml")
    assert "K8sMatchProbe/sel" in error["message"] and "the Namespace 'shop'" in error["message"]


def test_a_template_failing_at_run_time_names_its_file_and_line(engine):
    template = TEMPLATE.format(target="admission.k8s.gatekeeper.sh").replace(
        "input.review.object.kind ==", "x := to_number(input.review.object.kind)")
    constraint = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sThing\nmetadata: {name: n}\n"
    error = only_error(evaluate(engine, {"t.yaml": template + "---\n" + constraint}))
    assert (error["code"], error["file"], error["line"]) == ("policy.runtime", "t.yaml", 11)
    assert "to_number" in error["message"]


V0_REGO = 'package legacy\n\ndeny[msg] {\n  input.kind == "Deployment"\n  msg := "v0 rule"\n}\n'


def test_a_v0_file_compiles_as_v0_where_the_manifest_says_so(engine):
    error = only_error(evaluate(engine, {"legacy/old.rego": V0_REGO}))  # Rego v1 by default, as in OPA
    assert (error["code"], error["file"], error["line"]) == ("policy.syntax", "legacy/old.rego", 3)
    assert "declare a Rego v0 file in the set's .manifest" in error["message"]
    for manifest in ('{"rego_version": 0}', '{"file_rego_versions": {"/legacy/*.rego": 0}}'):
        verdict = evaluate(engine, {"legacy/old.rego": V0_REGO, ".manifest": manifest,
                                    "new.rego": 'package new\n\ndeny contains "v1 rule" if input.kind == "Deployment"\n'
                                    if "file_rego" in manifest else "package new\n"})
        assert not verdict.errors, verdict.errors
        assert "v0 rule" in {v.message for v in verdict.violations}
    with pytest.raises(PolicyError, match="rego_version and file_rego_versions take 0 or 1"):
        load_bundle({"a.rego": "package a\n", ".manifest": '{"rego_version": 2}'})
