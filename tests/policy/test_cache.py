"""Policies are compiled once and reused; a policy change invalidates the cache."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from fleet.policy import gate, services
from fleet.policy.bundle import load_bundle
from fleet.policy.engines.opa_engine import OpaEngine
from fleet.policy.inputs import build_input
from tests.policy.objects import deployment

NOW = datetime.now(UTC)
V1 = {"p.rego": 'package p\nimport rego.v1\ndeny contains "v1" if input.kind == "Deployment"\n'}
V2 = {"p.rego": 'package p\nimport rego.v1\ndeny contains "v2" if input.kind == "Deployment"\n'}

pytestmark = pytest.mark.embedded


def messages(engine, files, **context):
    data = build_input([deployment()], **context)
    verdict = gate.evaluate([gate.PolicySetSpec("s", "enforce", False, services.bundle_of(files))], data,
                            engine, now=NOW)
    return [v.message for v in verdict.violations]


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


def policy_ids(opa_url: str) -> list[str]:
    return [p["id"] for p in requests.get(f"{opa_url}/v1/policies", timeout=5).json()["result"]]


def test_a_changed_set_replaces_its_bundle_in_place(opa_url):
    """OPA recompiles everything it holds on each PUT: a set's old versions must go."""
    engine = OpaEngine(opa_url)
    first, second = load_bundle(V1), load_bundle(V2)
    try:
        for bundle in (first, second, first):
            engine.prepare(bundle, slot="s")
            held = policy_ids(opa_url)
            assert any(bundle.prefix.replace(".", "/") in i for i in held)
            other = second if bundle is first else first
            assert not any(other.prefix.replace(".", "/") in i for i in held)
        engine.prepare(second, slot="t")  # another set: both stay
        held = policy_ids(opa_url)
        assert all(any(b.prefix.replace(".", "/") in i for i in held) for b in (first, second))
    finally:
        engine.close()
