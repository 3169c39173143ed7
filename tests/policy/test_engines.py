"""The engines themselves: the embedded OPA is private to its process, supervised and
restarted; an OPA that reads only Rego v1 is named as the cause, not the template."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime

import pytest
import requests

from fleet.dev.opa_process import free_port
from fleet.policy import gate
from fleet.policy.bundle import load_bundle
from fleet.policy.engines.managed import ManagedOpaEngine
from fleet.policy.engines.opa_engine import OpaEngine
from fleet.policy.inputs import build_input
from tests.policy.conftest import POLICIES_DIR
from tests.policy.objects import deployment, namespace

pytestmark = pytest.mark.embedded
NOW = datetime.now(UTC)
V1 = {"p.rego": 'package p\n\ndeny contains "no" if input.kind == "Deployment"\n'}


def verdict(engine, files, objects=None):
    spec = gate.PolicySetSpec("s", "enforce", False, load_bundle(files))
    return gate.evaluate([spec], build_input(objects or [deployment()]), engine, now=NOW)


@pytest.fixture
def private_engine(opa_binary):
    engine = ManagedOpaEngine(binary=opa_binary)
    yield engine
    engine.close()


def test_the_embedded_opa_answers_only_its_own_process(private_engine):
    url = private_engine.server.url
    assert requests.get(f"{url}/v1/policies", timeout=5).status_code == 401
    assert requests.put(f"{url}/v1/policies/x", data="package x\n", timeout=5).status_code == 401
    assert verdict(private_engine, V1).violations[0].message == "no"


def test_a_dead_opa_is_restarted_and_the_policies_reloaded(private_engine):
    assert not verdict(private_engine, V1).allowed
    first = private_engine.server.pid
    private_engine.server.kill()
    result = verdict(private_engine, V1)  # the decision waits for the restart, then reloads
    assert not result.errors and [v.message for v in result.violations] == ["no"]
    assert private_engine.server.pid != first and private_engine.server.starts == 2


def test_stopping_the_engine_stops_its_opa(opa_binary):
    engine = ManagedOpaEngine(binary=opa_binary)
    pid = engine.server.pid
    engine.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(")")[1].split()[0] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"opa (pid {pid}) still runs")


def test_an_opa_that_reads_only_v1_is_named_as_the_cause(opa_binary, tmp_path):
    port = free_port()
    process = subprocess.Popen([str(opa_binary), "run", "--server", "--addr", f"127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if requests.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.05)
        engine = OpaEngine(url)
        files = {"gatekeeper/requiredlabels.yaml": (POLICIES_DIR / "gatekeeper/requiredlabels.yaml").read_text()}
        error = verdict(engine, files, [namespace("shop", owner=None)]).errors[0]
        assert error["code"] == "policy.engine" and error["file"] == "gatekeeper/requiredlabels.yaml"
        assert "reads only Rego v1: start it with --v0-compatible" in error["message"]
        assert not verdict(engine, V1).allowed  # Rego v1 still works there
        engine.close()
    finally:
        process.terminate()
        process.wait(10)
