"""Modes, enforcement actions and waivers; the verdict's shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fleet.policy import gate
from fleet.policy.bundle import load_bundle
from fleet.policy.inputs import build_input
from tests.policy.objects import container, deployment, service

NOW = datetime.now(UTC)
LATEST = deployment(containers=[container(image="registry.example.com/a:latest")])
RULES = {
    "r.rego": 'package r\nimport rego.v1\n\ndeny contains "denied" if input.kind == "Deployment"\n'
              'warn contains "warned" if input.kind == "Deployment"\n'
              'deny_extra contains {"msg": "extra", "details": {"k": 1}} if input.kind == "Service"\n',
}
pytestmark = pytest.mark.embedded


def run(engine, mode="enforce", waivers=(), objects=None, labels=None, files=None):
    spec = gate.PolicySetSpec("set-a", mode, False, load_bundle(files or RULES))
    data = build_input(objects or [deployment(), service()],
                       cluster={"name": "c1", "labels": labels or {"env": "prod"}})
    return gate.evaluate([spec], data, engine, waivers=waivers, now=NOW)


def effects(verdict):
    return sorted((v.rule, v.enforcement, v.severity) for v in verdict.violations)


def test_enforce_mode(embedded_engine):
    verdict = run(embedded_engine)
    assert not verdict.allowed
    assert effects(verdict) == [("r.deny", "deny", "error"), ("r.deny_extra", "deny", "error"),
                                ("r.warn", "warn", "warning")]
    extra = next(v for v in verdict.violations if v.rule == "r.deny_extra")
    assert (extra.message, extra.details, extra.object) == ("extra", {"k": 1}, "Service/shop/web")


def test_warn_mode_records_without_blocking(embedded_engine):
    verdict = run(embedded_engine, mode="warn")
    assert verdict.allowed
    assert {v.enforcement for v in verdict.violations} == {"warn"}
    assert verdict.counts()["warn"] == 3


def test_dry_run_is_stored_but_left_out(embedded_engine):
    verdict = run(embedded_engine, mode="dry-run")
    assert verdict.allowed and {v.enforcement for v in verdict.violations} == {"dryrun"}


def test_constraint_enforcement_action(embedded_engine, baseline_files):
    files = {k: v for k, v in baseline_files.items() if k.startswith("gatekeeper/")}
    files["gatekeeper/blocknodeport.yaml"] = files["gatekeeper/blocknodeport.yaml"].replace(
        "enforcementAction: deny", "enforcementAction: warn")
    verdict = run(embedded_engine, files=files, objects=[service(type_="NodePort")])
    assert verdict.allowed and effects(verdict) == [("K8sBlockNodePort/no-nodeport", "warn", "warning")]


def waiver(name="w", rule="r.deny", pattern="Deployment/shop/*", selector="env=prod", expires=timedelta(days=1),
           policy_set=""):
    return gate.WaiverSpec(name, rule, pattern, selector, NOW + expires, policy_set)


def test_waiver_turns_a_deny_into_waived(embedded_engine):
    verdict = run(embedded_engine, waivers=[waiver()], objects=[deployment()])
    assert verdict.allowed
    assert [(v.rule, v.enforcement, v.waiver) for v in verdict.violations if v.rule == "r.deny"] == [
        ("r.deny", "waived", "w")]


@pytest.mark.parametrize("bad", [
    waiver(expires=timedelta(seconds=-1)),     # expired: stops applying
    waiver(selector="env=dev"),                # another cluster
    waiver(pattern="Deployment/other/*"),      # another object
    waiver(rule="r.warn"),                     # another rule
    waiver(policy_set="set-b"),                # another policy set
], ids=["expired", "cluster", "object", "rule", "set"])
def test_waiver_that_does_not_apply(embedded_engine, bad):
    verdict = run(embedded_engine, waivers=[bad], objects=[deployment()])
    assert not verdict.allowed


def test_waiver_globs_on_rules(embedded_engine):
    assert run(embedded_engine, waivers=[waiver(rule="r.*", pattern="*")]).allowed


def test_verdict_as_dict(embedded_engine):
    result = run(embedded_engine).as_dict()
    assert result["allowed"] is False and result["engine"] == "embedded"
    assert len(result["bundle_hash"]) == 64 and result["elapsed_ms"] > 0
    assert result["counts"] == {"deny": 2, "warn": 1, "dryrun": 0, "waived": 0}
    assert set(result["violations"][0]) == {"policy_set", "rule", "message", "object", "severity",
                                            "enforcement", "waiver", "details"}


def test_the_change_and_release_reach_set_scoped_policies(engine):
    files = {"s.rego": "# fleet:scope set\npackage s\nimport rego.v1\n\n"
                       "deny contains sprintf(\"%s %s->%s +%d ~%d -%d\", "
                       "[input.cluster.name, input.release.from.version, input.release.to.version, "
                       "count(input.change.added), count(input.change.changed), "
                       "count(input.change.removed)]) if true\n"}
    old = deployment(replicas=2)
    data = build_input([deployment(replicas=3), service()], cluster={"name": "c1"},
                       release_from={"version": "1.0"}, release_to={"version": "1.1"},
                       deployed=[old, deployment("gone")])
    verdict = gate.evaluate([gate.PolicySetSpec("s", "enforce", False, load_bundle(files))], data, engine, now=NOW)
    assert [v.message for v in verdict.violations] == ["c1 1.0->1.1 +1 ~1 -1"]
