"""``manage.py policy check`` (the CI gate) and ``manage.py policy import``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml
from django.core.management import CommandError, call_command

from fleet.audit.models import AuditEvent
from fleet.policy.models import PolicyDecision, PolicySet
from tests.factories import ClusterFactory
from tests.policy.conftest import POLICIES_DIR
from tests.policy.objects import container, deployment, namespace, service

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.embedded


def write(tmp_path: Path, objects, name="app") -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "all.yaml").write_text(yaml.safe_dump_all(objects))
    return directory


def policy(subcommand: str, *args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("policy", subcommand, *args, stdout=out)
        return 0, out.getvalue()
    except CommandError as exc:
        return exc.returncode, out.getvalue()


def check(*args: str) -> tuple[int, str]:
    return policy("check", *args)


BAD = [namespace(), deployment(containers=[container(image="registry.example.com/a:latest")]), service()]


def test_check_against_a_policy_directory_needs_no_database(tmp_path):
    code, out = check(str(write(tmp_path, BAD)), "--policies", str(POLICIES_DIR), "--labels", "env=prod")
    assert code == 1
    assert "DENY     Deployment/shop/web  baseline.images.deny" in out and out.splitlines()[-1].startswith("DENIED")
    code, out = check(str(write(tmp_path, [namespace(), deployment()], "ok")), "--policies", str(POLICIES_DIR))
    assert code == 0 and "ALLOWED" in out


def test_a_kustomization_without_kustomize_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEET_BIN_CACHE", str(tmp_path / "bin"))
    monkeypatch.delenv("FLEET_KUSTOMIZE_BIN", raising=False)
    app = write(tmp_path, [namespace()])
    (app / "kustomization.yaml").write_text("resources: [all.yaml]\n")
    with pytest.raises(CommandError, match="python -m fleet.toolchain kustomize") as raised:
        call_command("policy", "check", str(app), "--policies", str(POLICIES_DIR), stdout=StringIO())
    assert raised.value.returncode == 2 and not (tmp_path / "bin").exists()


def test_json_and_junit_output(tmp_path):
    app = str(write(tmp_path, BAD))
    code, out = check(app, "--policies", str(POLICIES_DIR), "--output", "json")
    assert code == 1 and json.loads(out)["counts"]["deny"] == 1
    code, out = check(app, "--policies", str(POLICIES_DIR), "--output", "junit")
    suites = ET.fromstring(out.split("?>", 1)[1])
    assert suites.find("testsuite").get("failures") == "1"
    assert suites.find("testsuite/testcase/failure").get("type") == "baseline.images.deny"


def test_usage_errors_exit_2(tmp_path):
    assert check(str(tmp_path / "missing"), "--policies", str(POLICIES_DIR))[0] == 2
    assert check(str(write(tmp_path, BAD)), "--policies", str(POLICIES_DIR), "--labels", "env in (a)")[0] == 2


@pytest.mark.django_db
def test_check_with_stored_sets_and_a_cluster_records_a_decision(tmp_path):
    call_command("policy", "import", "baseline", str(POLICIES_DIR), "--selector", "env=prod", stdout=StringIO())
    assert AuditEvent.objects.filter(action="policyset.create", source="cli").exists()
    ClusterFactory(name="eu-prod-1", labels={"env": "prod"})
    code, out = check(str(write(tmp_path, BAD)), "--cluster", "eu-prod-1")
    assert code == 1
    decision = PolicyDecision.objects.get()
    assert (decision.cluster_name, decision.source, decision.allowed) == ("eu-prod-1", "cli", False)
    assert check(str(tmp_path / "app"), "--cluster", "nope")[0] == 2


@pytest.mark.django_db
def test_import_updates_in_place(tmp_path):
    policies = tmp_path / "p"
    policies.mkdir()
    (policies / "a.rego").write_text("package a\nimport rego.v1\ndeny contains 1 if false\n")
    call_command("policy", "import", "mine", str(policies), stdout=StringIO())
    first = PolicySet.objects.get(name="mine").bundle_hash
    (policies / "a.rego").write_text("package a\nimport rego.v1\ndeny contains 2 if false\n")
    call_command("policy", "import", "mine", str(policies), "--mode", "warn", stdout=StringIO())
    updated = PolicySet.objects.get(name="mine")
    assert updated.bundle_hash != first and updated.mode == "warn"
    (policies / "a.rego").write_text("package a\ndeny if {\n")
    with pytest.raises(CommandError, match="a.rego:"):
        call_command("policy", "import", "mine", str(policies), stdout=StringIO())


@pytest.mark.slow
def test_exit_status_of_the_real_command(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/unused.sqlite3", "FLEET_DATA_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "manage.py", "policy", "check", str(write(tmp_path, BAD)),
                          "--policies", str(POLICIES_DIR), "--output", "json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    assert json.loads(run.stdout)["allowed"] is False


def run_verify(*args: str) -> tuple[int, str]:
    return policy("verify", *args)


SUITES = Path(__file__).parent / "gatekeeper"


def test_verify_runs_gatekeeper_suites_and_rego_unit_tests(tmp_path):
    code, out = run_verify(str(SUITES / "allowedrepos"), str(POLICIES_DIR))
    assert code == 0, out
    summary = out.splitlines()[-1]
    assert summary.startswith("PASSED: ") and " 0 failed" in summary
    code, out = run_verify(str(SUITES / "match" / "suite.yaml"), "--output", "junit")
    suites = ET.fromstring(out.split("?>", 1)[1])
    assert code == 0 and int(suites.find("testsuite").get("tests")) > 30


def test_verify_fails_a_wrong_assertion_and_names_it(tmp_path):
    suite = tmp_path / "suite"
    shutil.copytree(SUITES / "imagedigests", suite)
    text = (suite / "suite.yaml").read_text().replace("violations: 1", "violations: 2")
    (suite / "suite.yaml").write_text(text)
    code, out = run_verify(str(suite))
    assert code == 1
    assert "FAIL" in out and "got 1 violations but want exactly 2" in out
    code, out = run_verify(str(tmp_path / "nothing-here"))
    assert code == 2


def test_check_with_an_inventory_file(tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    base = SUITES / "uniqueserviceselector"
    (policies / "t.yaml").write_text((base / "template.yaml").read_text() + "---\n"
                                     + (base / "constraint-unique-selector.yaml").read_text())
    app = write(tmp_path, [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
                            "spec": {"selector": {"app": "web"}}}])
    assert check(str(app), "--policies", str(policies))[0] == 0
    live = tmp_path / "live.yaml"
    live.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Service",
                                    "metadata": {"name": "web-old", "namespace": "shop"},
                                    "spec": {"selector": {"app": "web"}}}))
    code, out = check(str(app), "--policies", str(policies), "--inventory", str(live))
    assert code == 1 and "same selector as service <web-old>" in out
