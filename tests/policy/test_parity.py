"""Both engines give the same verdicts on the same inputs: the whole library over a
release that breaks every rule, in several cluster contexts."""

from __future__ import annotations

import pytest

from fleet.policy import gate
from fleet.policy.inputs import build_input
from tests.policy.objects import deployment, namespace, release, service

pytestmark = [pytest.mark.slow, pytest.mark.embedded]


@pytest.mark.parametrize("env", ["prod", "dev", "unknown"])
def test_whole_library_same_hits_on_both_engines(regopy_engine, opa_engine, baseline, env):
    objects = release(300, broken_every=2) + [namespace("orphan", owner=None), service("np", type_="NodePort"),
                                              deployment("bare", replicas=None)]
    data = build_input(objects, cluster={"name": "c1", "labels": {"env": env}, "channel": "stable"},
                       deployed=[namespace("gone")])
    reviews, matches = gate.reviews_of(data), gate.constraint_matches(baseline, data)
    from_regopy = regopy_engine.evaluate(baseline, data, reviews, matches)
    from_opa = opa_engine.evaluate(baseline, data, reviews, matches)
    assert len(from_opa) > 50
    assert [h.key() for h in from_regopy] == [h.key() for h in from_opa]
    expected = {"baseline/images.rego", "baseline/resources.rego", "baseline/security.rego", "gk"}
    if env != "dev":
        expected.add("baseline/registries.rego")
    if env == "prod":
        expected |= {"baseline/replicas.rego", "baseline/namespaces.rego"}
    assert {h.source.split("::")[0] for h in from_opa} >= expected
