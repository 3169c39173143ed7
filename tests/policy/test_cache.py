"""Policies are compiled once and reused; a policy change invalidates the cache."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests

from fleet.policy import gate, services
from fleet.policy.bundle import load_bundle
from fleet.policy.engines.opa_engine import OpaEngine
from fleet.policy.engines.regopy_engine import RegopyEngine
from fleet.policy.inputs import build_input
from tests.policy.objects import deployment, namespace

NOW = datetime.now(timezone.utc)
V1 = {"p.rego": 'package p\nimport rego.v1\ndeny contains "v1" if input.kind == "Deployment"\n'}
V2 = {"p.rego": 'package p\nimport rego.v1\ndeny contains "v2" if input.kind == "Deployment"\n'}

pytestmark = pytest.mark.embedded


def messages(engine, files, **context):
    data = build_input([deployment()], **context)
    verdict = gate.evaluate([gate.PolicySetSpec("s", "enforce", False, services.bundle_of(files))], data,
                            engine, now=NOW)
    return [v.message for v in verdict.violations]


def test_regopy_compiles_once_per_bundle_and_context_it_reads(baseline, monkeypatch):
    engine, compiled = RegopyEngine(), []
    original = engine._compile
    monkeypatch.setattr(engine, "_compile", lambda b, c: compiled.append(c) or original(b, c))
    spec = gate.PolicySetSpec("baseline", "enforce", False, baseline)
    for deployed in ([], [namespace("old")], [deployment(replicas=9)]):  # the change differs each time
        data = build_input([deployment()], cluster={"name": "c1", "labels": {"env": "dev"}}, deployed=deployed)
        assert gate.evaluate([spec], data, engine, now=NOW).allowed
    assert len(compiled) == 1  # the baseline reads only data.fleet.cluster
    assert messages(engine, V1) == ["v1"] and messages(engine, V1, cluster={"name": "other"}) == ["v1"]
    assert len(compiled) == 2  # V1 never reads data.fleet: one compile for every cluster


def test_a_policy_change_is_a_new_bundle_everywhere(engine):
    assert services.bundle_of(V1) is services.bundle_of(dict(V1))  # parsed once per content
    assert messages(engine, V1) == ["v1"]
    assert messages(engine, V2) == ["v2"]
    assert messages(engine, V1) == ["v1"]


def test_opa_loads_once_evicts_old_bundles_and_recovers_from_a_restart(opa_url):
    engine = OpaEngine(opa_url, max_bundles=1)
    first, second = load_bundle(V1), load_bundle(V2)
    puts = []
    original = engine._client.update_policy_from_string
    engine._client.update_policy_from_string = lambda *a, **k: puts.append(a[1]) or original(*a, **k)
    assert messages(engine, V1) == messages(engine, V1) == ["v1"]
    assert len(puts) == 2  # the module and the driver, once
    assert messages(engine, V2) == ["v2"]
    ids = [p["id"] for p in requests.get(f"{opa_url}/v1/policies", timeout=5).json()["result"]]
    assert not any(first.prefix.replace(".", "/") in i for i in ids)  # evicted from OPA
    assert any(second.prefix.replace(".", "/") in i for i in ids)
    for policy_id in [i for i in ids if second.prefix.replace(".", "/") in i]:
        requests.delete(f"{opa_url}/v1/policies/{policy_id}", timeout=5)  # as if OPA restarted
    assert messages(engine, V2) == ["v2"]
    engine.close()
