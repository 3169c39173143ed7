"""The shipped library: its Rego unit tests on the real OPA, and the same cases through
the gate on both engines."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import pytest

from fleet.policy import gate
from fleet.policy.inputs import build_input
from tests.policy.conftest import POLICIES_DIR
from tests.policy.objects import container, deployment, namespace, service

NOW = datetime.now(UTC)

pytestmark = pytest.mark.embedded


def run(engine, bundle, objects, env="prod", deployed=()):
    data = build_input(objects, cluster={"name": "c1", "labels": {"env": env}, "channel": "stable"},
                       deployed=list(deployed))
    verdict = gate.evaluate([gate.PolicySetSpec("baseline", "enforce", False, bundle)], data, engine, now=NOW)
    assert not verdict.errors, verdict.errors
    return verdict


def rules(verdict) -> list[tuple[str, str]]:
    return sorted((v.rule, v.object) for v in verdict.violations)


def test_opa_test_passes_on_the_library(opa_binary):
    result = subprocess.run([str(opa_binary), "test", str(POLICIES_DIR / "baseline"),
                             str(POLICIES_DIR / "lib"), "-v"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout


def test_compliant_release_is_allowed(engine, baseline):
    verdict = run(engine, baseline, [namespace(), deployment(), service()])
    assert verdict.allowed and verdict.violations == []


CASES = [
    ("latest tag", deployment(containers=[container(image="registry.example.com/a:latest")]), "prod",
     [("baseline.images.deny", "Deployment/shop/web")]),
    ("untagged", deployment(containers=[container(image="registry.example.com/a")]), "prod",
     [("baseline.images.deny", "Deployment/shop/web")]),
    ("no resources", deployment(containers=[container(resources={})]), "prod",
     [("baseline.resources.deny", "Deployment/shop/web")] * 4),
    ("privileged", deployment(containers=[container(securityContext={"privileged": True})]), "prod",
     [("baseline.security.deny", "Deployment/shop/web")]),
    ("hostPath", deployment(pod_spec={"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}), "prod",
     [("baseline.security.deny", "Deployment/shop/web")]),
    ("hostNetwork", deployment(pod_spec={"hostNetwork": True}), "prod",
     [("baseline.security.deny", "Deployment/shop/web")]),
    ("docker hub in prod", deployment(containers=[container(image="docker.io/library/nginx:1.27")]), "prod",
     [("baseline.registries.deny", "Deployment/shop/web")]),
    ("docker hub in dev", deployment(containers=[container(image="docker.io/library/nginx:1.27")]), "dev", []),
    ("one replica in prod", deployment(replicas=1), "prod", [("baseline.replicas.deny", "Deployment/shop/web")]),
    ("replicas unset in prod", deployment(replicas=None), "prod", [("baseline.replicas.deny", "Deployment/shop/web")]),
    ("one replica in dev", deployment(replicas=1), "dev", []),
    ("missing labels", {**service(), "metadata": {"name": "web", "namespace": "shop"}}, "prod",
     [("baseline.labels.deny", "Service/shop/web")] * 2),
    ("namespace without owner (Gatekeeper v0)", namespace("shop", owner=None), "prod",
     [("K8sRequiredLabels/namespaces-have-owner", "Namespace/shop")]),
    ("bad owner value", namespace("shop", owner="Not_Valid"), "prod",
     [("K8sRequiredLabels/namespaces-have-owner", "Namespace/shop")]),
    ("excluded namespace", namespace("kube-system", owner=None), "prod", []),
    ("NodePort (Gatekeeper v1)", service(type_="NodePort"), "prod",
     [("K8sBlockNodePort/no-nodeport", "Service/shop/web")]),
]


@pytest.mark.parametrize("obj,env,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(engine, baseline, obj, env, expected):
    verdict = run(engine, baseline, [obj], env=env)
    assert rules(verdict) == sorted(expected)
    assert verdict.allowed == (not expected)


def test_removing_a_namespace_in_prod_is_denied(engine, baseline):
    deployed = [namespace("shop"), namespace("legacy")]
    verdict = run(engine, baseline, [namespace("shop")], deployed=deployed)
    assert rules(verdict) == [("baseline.namespaces.deny", "")]
    assert "Namespace legacy" in verdict.violations[0].message
    assert run(engine, baseline, [namespace("shop")], env="dev", deployed=deployed).allowed
