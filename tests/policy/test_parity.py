"""Every shipped engine gives the same verdicts on the same inputs: the whole library
over a release that breaks every rule, in several cluster contexts."""

from __future__ import annotations

import pytest

from fleet.policy import gate
from fleet.policy.bundle import load_bundle
from fleet.policy.inputs import build_input
from tests.policy.objects import configmap, deployment, namespace, release, service

pytestmark = [pytest.mark.slow, pytest.mark.embedded]


@pytest.mark.parametrize("env", ["prod", "dev", "unknown"])
def test_whole_library_same_hits_on_both_engines(embedded_engine, opa_engine, baseline, env):
    objects = release(300, broken_every=2) + [namespace("orphan", owner=None), service("np", type_="NodePort"),
                                              deployment("bare", replicas=None)]
    data = build_input(objects, cluster={"name": "c1", "labels": {"env": env}, "channel": "stable"},
                       deployed=[namespace("gone")])
    reviews = gate.reviews_of(data)
    matches = gate.constraint_matches(baseline, data)
    from_embedded = embedded_engine.evaluate(baseline, data, reviews, matches)
    from_opa = opa_engine.evaluate(baseline, data, reviews, matches)
    assert len(from_opa) > 50
    assert [h.key() for h in from_embedded] == [h.key() for h in from_opa]
    expected = {"baseline/images.rego", "baseline/resources.rego", "baseline/security.rego", "gk"}
    if env != "dev":
        expected.add("baseline/registries.rego")
    if env == "prod":
        expected |= {"baseline/replicas.rego", "baseline/namespaces.rego"}
    assert {h.source.split("::")[0] for h in from_opa} >= expected


def test_rules_that_are_not_partial_sets_same_hits_on_both_engines(embedded_engine, opa_engine):
    """OPA's driver references a partial set directly but wraps any other rule, which
    may be undefined: an undefined ``deny`` must hide neither an object's other rules
    nor other objects."""
    bundle = load_bundle({"complete.rego": 'package complete\nimport rego.v1\n'
                                           'deny := ["a ConfigMap"] if input.kind == "ConfigMap"\n'
                                           'warn contains "any object" if input.metadata.name\n'})
    assert bundle.modules[0].set_rules == {"warn"}
    data = build_input([deployment("web"), configmap("settings")], cluster={"name": "c1", "labels": {}})
    from_opa = opa_engine.evaluate(bundle, data, gate.reviews_of(data), {})
    assert [h.key() for h in embedded_engine.evaluate(bundle, data, gate.reviews_of(data), {})] == \
        [h.key() for h in from_opa]
    assert sorted((h.index, h.source, h.value) for h in from_opa) == [
        (0, "complete.rego::warn", "any object"), (1, "complete.rego::deny", "a ConfigMap"),
        (1, "complete.rego::warn", "any object")]
