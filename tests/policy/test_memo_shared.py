"""Findings shared across the fleet: keyed on exactly what of ``data.fleet`` a bundle
reads (found in its Rego), and shared across processes through the database.

Two MemoEngines over one engine stand for two workers: each has its own LRU, both the
one database store. Whatever is shared, the hits must be those of a plain evaluation.
"""

from __future__ import annotations

import pytest

from fleet.core import context
from fleet.policy import gate
from fleet.policy.bundle import load_bundle
from fleet.policy.engines.memo import MemoEngine
from fleet.policy.memo_store import DatabaseMemoStore
from fleet.policy.models import MemoEntry
from fleet.policy.rego import inspect_module
from fleet.policy.services import evaluate, import_policy_set
from tests.factories import ClusterFactory
from tests.policy.conftest import POLICIES_DIR
from tests.policy.objects import deployment, namespace, release, service

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def cluster(name: str, env: str, **extra) -> dict:
    return {"name": name, "labels": {"env": env, **extra}, "channel": "stable"}


def decide(engine, bundle, objects, context, deployed=()):
    from fleet.policy.inputs import build_input

    data = build_input(objects, cluster=context, deployed=list(deployed))
    reviews = gate.reviews_of(data)
    return [h.key() for h in engine.evaluate(bundle, data, reviews, gate.constraint_matches(bundle, data))]


def workers(engine, count: int = 2) -> list[MemoEngine]:
    store = DatabaseMemoStore()
    return [MemoEngine(engine, 10_000, store) for _ in range(count)]


def test_the_context_read_is_found_path_by_path():
    info = inspect_module("package p\nimport rego.v1\nimport data.fleet.release as r\n"
                          'deny contains m if { data.fleet.cluster.labels["team.example/env"] == "x"; '
                          "m := r.version }\n"
                          "warn contains k if { some k, _ in data.fleet.cluster.labels }\n")
    assert info.context_paths == {("release",), ("cluster", "labels", "team.example/env"), ("cluster", "labels")}
    assert inspect_module("package p\nx := data.lib.y\n").context_paths == frozenset()  # not the context
    for whole in ("package p\nx := data.fleet\n", 'package p\nk := "fleet"\nx := data[k]\n',
                  "package p\nx := data\n"):
        assert inspect_module(whole).context_paths == {()}  # may be all of it: key on all of it


def test_clusters_with_the_same_env_share_one_cold_decision(engine, baseline):
    """Through the gate, as the pipeline calls it, on inventory clusters: the second
    prod cluster, on another worker, evaluates nothing; a dev cluster does."""
    objects = release(30, broken_every=3) + [service("np", type_="NodePort")]
    with context.activate(source="cli", actor="setup"):
        import_policy_set("baseline", POLICIES_DIR)
    first, second = workers(engine)
    verdicts = {}
    for name, env, memo in (("prod-a", "prod", first), ("prod-b", "prod", second), ("dev-a", "dev", second)):
        target = ClusterFactory(name=name, labels={"env": env})
        verdict, _ = evaluate(objects, cluster=target, engine=memo, record=False)
        plain, _ = evaluate(objects, cluster=target, engine=engine, record=False)
        assert verdict.as_dict()["violations"] == plain.as_dict()["violations"]
        verdicts[name] = verdict
    assert (first.cold_decisions, first.decisions) == (1, 1)
    # prod-b: every object from prod-a's findings, through the database; dev-a: cold.
    assert (second.cold_decisions, second.decisions) == (1, 2)
    assert second.shared_hits >= len(objects)
    assert MemoEntry.objects.count() > 0
    assert not verdicts["prod-a"].allowed  # findings were shared, not only empty ones


def test_one_object_in_a_namespace_per_cluster_shares_its_findings(engine, baseline):
    """The baseline never reads an object's namespace: per-object rules share across
    namespaces; a Gatekeeper constraint's subjects (Services, Namespaces here) are keyed
    on the paths of their review the templates read, which do not include it either."""
    first, second = workers(engine)
    one = release(20, broken_every=3)
    other = [{**obj, "metadata": {**obj["metadata"], "namespace": "elsewhere"}} if obj["kind"] != "Namespace"
             else obj for obj in one]
    assert decide(first, baseline, one, cluster("a", "prod")) == decide(engine, baseline, one, cluster("a", "prod"))
    assert decide(second, baseline, other, cluster("b", "prod")) == decide(engine, baseline, other,
                                                                           cluster("b", "prod"))
    # Every object from the first cluster's findings; the Namespace-removal rule over the
    # release reads the cluster's name: evaluated again (without objects).
    assert second.cold_decisions == 0 and second.shared_hits == len(one) and second.set_misses == 1


def test_a_bundle_that_reads_the_cluster_name_does_not_share(engine):
    bundle = load_bundle({"n.rego": "package n\nimport rego.v1\n"
                                    'deny contains "canary only" if { input.kind == "Deployment"; '
                                    'data.fleet.cluster.name == "prod-a" }\n'})
    first, second = workers(engine)
    objects = [deployment("web"), service()]
    assert decide(first, bundle, objects, cluster("prod-a", "prod")) == [("n.rego::deny", 0, '"canary only"')]
    assert decide(second, bundle, objects, cluster("prod-b", "prod")) == []
    assert second.shared_hits == 0 and second.cold_decisions == 1


def test_a_changed_bundle_never_reuses_old_findings(engine):
    files = {"r.rego": "package r\nimport rego.v1\n"
                       'deny contains "one replica" if { input.kind == "Deployment"; input.spec.replicas < 2 }\n'}
    first, second = workers(engine)
    objects = [deployment("web", replicas=1)]
    assert decide(first, load_bundle(files), objects, cluster("a", "prod")) == [("r.rego::deny", 0, '"one replica"')]
    changed = {"r.rego": files["r.rego"].replace("< 2", "< 1")}
    assert decide(second, load_bundle(changed), objects, cluster("a", "prod")) == []
    assert second.shared_hits == 0 and second.cold_decisions == 1


# Bundles that read the context in every way Rego allows: by import alias, through a
# variable, by string keys, through a dynamic key, passed whole to a function, and in
# rules over the release (which read it from their input). With the memo shared (any
# order of clusters), each must give exactly the plain engine's hits.
TRICKY = {
    "import.rego": "package a\nimport rego.v1\nimport data.fleet.cluster as c\n"
                   'deny contains c.name if { input.kind == "Deployment"; c.labels.env == "prod" }\n',
    "alias.rego": "package b\nimport rego.v1\nctx := data.fleet\n"
                  'warn contains ctx.cluster.name if input.kind == "Service"\n',
    "strings.rego": "package c\nimport rego.v1\n"
                    'deny contains "team" if data["fleet"]["cluster"]["labels"]["team"] == "red"\n',
    "dynamic.rego": 'package d\nimport rego.v1\nroot := "fleet"\n'
                    'warn contains data[root].cluster.channel if input.kind == "Namespace"\n',
    "function.rego": "package e\nimport rego.v1\nname_of(c) := c.name\n"
                     'deny contains name_of(data.fleet.cluster) if input.metadata.name == "web"\n',
    "labels.rego": "package f\nimport rego.v1\n"
                   'warn contains k if { input.kind == "Deployment"; some k, _ in data.fleet.cluster.labels }\n',
    "namespace.rego": "package h\nimport rego.v1\n"
                      'warn contains input.metadata.namespace if input.kind == "Service"\n',
    "whole-input.rego": "package i\nimport rego.v1\nobj := input\n"
                        'deny contains "in shop" if obj.metadata.namespace == "shop"\n',
    "dynamic-input.rego": 'package j\nimport rego.v1\nfield := "metadata"\n'
                          'warn contains input[field].namespace if input.kind == "Deployment"\n',
    "object-get.rego": "package k\nimport rego.v1\n"
                       'deny contains "shop" if object.get(input, ["metadata", "namespace"], "") == "shop"\n',
    "review.rego": "package l\nimport rego.v1\n"
                   'warn contains input.review.object.metadata.namespace if input.review.kind.kind == "Service"\n',
    "set.rego": "# fleet:scope set\npackage g\nimport rego.v1\n"
                'deny contains input.cluster.name if { input.cluster.labels.env == "prod"; '
                "count(input.change.removed) > 0 }\n",
}
CONTEXTS = [cluster("a", "prod"), cluster("b", "prod"), cluster("a", "dev"), cluster("b", "prod", team="red"),
            {**cluster("a", "prod"), "channel": "beta"}]


@pytest.mark.parametrize("module", sorted(TRICKY))
def test_the_memo_never_changes_a_verdict(engine, module):
    bundle = load_bundle({module: TRICKY[module]})
    memos = workers(engine, 3)
    for round_ in range(2):  # the second round finds everything remembered, somewhere
        for number, fleet_context in enumerate(CONTEXTS):
            for deployed, ns in (((), "shop"), ([namespace("gone")], "shop"), ((), "other")):
                objects = [namespace(ns), deployment("web", namespace=ns), service(namespace=ns)]
                memo = memos[(number + round_) % len(memos)]
                assert decide(memo, bundle, objects, fleet_context, deployed) == decide(
                    engine, bundle, objects, fleet_context, deployed), (fleet_context, deployed)
    assert sum(m.hits for m in memos) > 0  # and it did remember


def test_a_failing_store_only_costs_an_evaluation(engine, baseline, monkeypatch):
    from django.db import DatabaseError

    def broken(*args, **kwargs):
        raise DatabaseError("connection lost")

    store = DatabaseMemoStore()
    monkeypatch.setattr(MemoEntry.objects, "bulk_create", broken)
    monkeypatch.setattr(MemoEntry.objects, "filter", broken)
    memo = MemoEngine(engine, 10_000, store)
    objects = release(5)
    assert decide(memo, baseline, objects, cluster("a", "prod")) == decide(engine, baseline, objects,
                                                                           cluster("a", "prod"))


def test_the_shared_table_is_bounded():
    store = DatabaseMemoStore()
    store.put_many({f"{n:032x}": (("s", n),) for n in range(30)})
    assert store.prune(10) >= 20
    assert MemoEntry.objects.count() <= 10
