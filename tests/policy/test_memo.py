"""Findings reused across decisions (``MemoEngine``) and large decisions split across
concurrent OPA requests: both must give exactly the hits of one plain evaluation."""

from __future__ import annotations

import copy

import pytest

from fleet.policy import gate
from fleet.policy.bundle import load_bundle
from fleet.policy.engines.memo import MemoEngine
from fleet.policy.engines.opa_engine import OpaEngine
from fleet.policy.errors import PolicyError
from fleet.policy.inputs import build_input
from tests.policy.objects import deployment, namespace, release, service

pytestmark = pytest.mark.embedded
PROD = {"name": "c1", "labels": {"env": "prod"}, "channel": "stable"}


def objects() -> list[dict]:
    return release(60, broken_every=2) + [service("np", type_="NodePort"), deployment("bare", replicas=None)]


def decide(engine, bundle, objects, cluster=PROD, deployed=()):
    data = build_input(objects, cluster=cluster, deployed=list(deployed))
    reviews = gate.reviews_of(data)
    return [h.key() for h in engine.evaluate(bundle, data, reviews, gate.constraint_matches(bundle, data))]


def test_memo_gives_the_engines_hits_and_evaluates_only_what_changed(engine, baseline):
    memo, release_ = MemoEngine(engine, 10_000), objects()
    deployed = [namespace("gone"), *release_[:10]]
    first = decide(memo, baseline, release_, deployed=deployed)
    assert first == decide(engine, baseline, release_, deployed=deployed)
    assert (memo.hits, memo.misses) == (0, len(release_) + 1)  # every object, and the release

    assert decide(memo, baseline, release_, deployed=deployed) == first
    assert (memo.hits, memo.misses) == (len(release_) + 1, len(release_) + 1)

    changed = copy.deepcopy(release_)
    changed[4]["spec"]["replicas"] = 1  # now breaks replicas >= 2 in prod
    assert decide(memo, baseline, changed, deployed=deployed) == decide(engine, baseline, changed,
                                                                        deployed=deployed)
    # That object only: the rule over the release reads the change's removals (and the
    # cluster's env and name), none of which an edited object changes.
    assert memo.misses == len(release_) + 1 + 1

    dev = {**PROD, "labels": {"env": "dev"}}  # the baseline reads the cluster: nothing carries over
    assert decide(memo, baseline, changed, cluster=dev) == decide(engine, baseline, changed, cluster=dev)
    assert memo.misses == 2 * (len(release_) + 1) + 1


UPDATES_ONLY = """apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8snoupdates
spec:
  crd:
    spec:
      names:
        kind: K8sNoUpdates
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: Rego
          source:
            version: v1
            rego: |
              package k8snoupdates

              violation contains {"msg": "no updates"} if input.review.operation == "UPDATE"
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sNoUpdates
metadata:
  name: no-updates
spec:
  match:
    kinds:
      - apiGroups: [""]
        kinds: ["Service"]
"""


def test_a_gatekeeper_review_is_part_of_the_key(engine, baseline):
    """The same object is a CREATE on one cluster and an UPDATE of another object on the
    next: a constraint reading the operation judges the two differently. The baseline's
    templates read neither the operation nor the old object: there the two share."""
    nodeport = service("np", type_="NodePort")
    memo = MemoEngine(engine, 10_000)
    bundle = load_bundle({"updates.yaml": UPDATES_ONLY})
    assert decide(memo, bundle, [nodeport]) == []
    assert [s for s, _, _ in decide(memo, bundle, [nodeport], deployed=[service("np")])] == ["gk::0"]
    assert memo.hits == 0

    memo = MemoEngine(engine, 10_000)
    created = decide(memo, baseline, [nodeport])
    assert decide(memo, baseline, [nodeport], deployed=[service("np")]) == created == decide(
        engine, baseline, [nodeport], deployed=[service("np")])
    assert (memo.hits, memo.misses) == (2, 2)  # the object and the rule over the release


def test_policies_that_read_the_clock_are_never_memoised(engine):
    bundle = load_bundle({"t.rego": "package t\nimport rego.v1\n"
                                    "deny contains \"late\" if time.now_ns() < 0\n"})
    memo = MemoEngine(engine, 10_000)
    for _ in range(2):
        assert decide(memo, bundle, [deployment()]) == []
    assert memo.hits == memo.misses == 0


def test_a_failed_evaluation_leaves_nothing_behind(engine):
    bundle = load_bundle({"f.rego": "package f\nimport rego.v1\n"
                                    "deny contains msg if { input.kind == \"Service\"; msg := 1 / 0 }\n"})
    memo = MemoEngine(engine, 10_000)
    for _ in range(2):
        with pytest.raises(PolicyError):
            decide(memo, bundle, [deployment(), service()])
    assert memo.hits == 0
    assert decide(memo, bundle, [deployment()]) == []


def test_the_memo_holds_at_most_its_bound(embedded_engine, baseline):
    memo, release_ = MemoEngine(embedded_engine, 5), objects()
    for _ in range(2):
        decide(memo, baseline, release_)
    assert memo.hits <= 5


@pytest.mark.slow
def test_a_large_decision_split_across_opa_requests_gives_the_same_hits(opa_url, baseline):
    many = release(1_200, broken_every=2) + [service("np", type_="NodePort"), namespace("orphan", owner=None)]
    single, split = OpaEngine(opa_url, parallelism=1), OpaEngine(opa_url, parallelism=4)
    try:
        whole = decide(single, baseline, many, deployed=[namespace("gone")])
        assert decide(split, baseline, many, deployed=[namespace("gone")]) == whole
        assert max(index for _, index, _ in whole) == len(many) - 1  # the last shard's hits, re-indexed
        assert any(source == "baseline/namespaces.rego::deny" for source, _, _ in whole)  # the set rule ran
    finally:
        single.close()
        split.close()


def test_a_rule_over_the_release_that_reads_its_objects_sees_every_change(engine):
    bundle = load_bundle({"n.rego": "# fleet:scope set\npackage n\nimport rego.v1\n"
                                    "deny contains \"too many\" if count(input.objects) > 2\n",
                          "ns.rego": "# fleet:scope set\npackage ns\nimport rego.v1\n"
                                     "warn contains input.cluster.name if count(input.change.removed) > 0\n"})
    assert bundle.set_input_keys == ("objects", "cluster", "change")
    memo = MemoEngine(engine, 10_000)
    assert decide(memo, bundle, [deployment("a"), deployment("b")]) == []
    assert [source for source, _, _ in decide(memo, bundle, [deployment("a"), deployment("b"),
                                                             deployment("c")])] == ["n.rego::deny"]
    assert decide(memo, bundle, [deployment("a")], deployed=[namespace("x")]) == [("ns.rego::warn", -1, '"c1"')]


def test_the_release_input_holds_only_what_its_rules_read(baseline):
    assert "objects" not in baseline.set_input_keys  # the Namespace-removal rule reads the change
