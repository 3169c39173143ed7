"""Fleet's gate against the reference: the conformance suites in ``gatekeeper/`` (one per
library policy kind, and one of Gatekeeper's matching rules), written for Fleet and
checked by Gatekeeper's own ``gator`` (built from its Go module), pass through
``policy verify`` on every engine Fleet ships; the same templates judge one release
exactly as ``gator test`` does; and all of them load together into one set.

The suites hold the cases the issue found broken: ``namespaces: [default]`` and objects
without a namespace (allowedrepos, disallowedtags, imagedigests), v0 function heads
(requiredlabels, users-and-groups), two templates sharing a package and a lib package
(allowedrepos, disallowedrepos), ``data.inventory`` (unique ingress host, unique service
selector, storage class, HPA), ``[_]`` in a function's argument (allowed repos,
capabilities), ``sprintf("%v")`` of strings and objects (procmount, seccomp,
storageclass), ``not f(x, undefined)`` (users-and-groups), and Rego v1 by ``code``
(seccomp).
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from fleet.policy import gate, verify
from fleet.policy.bundle import load_bundle
from fleet.policy.gatekeeper.templates import is_constraint, is_template
from fleet.policy.inputs import build_input
from fleet.toolchain.build import ensure_binaries

SUITES = Path(__file__).parent / "gatekeeper"
SUITE_FILES = sorted(SUITES.glob("*/suite.yaml"))
pytestmark = pytest.mark.embedded


@pytest.fixture(scope="session")
def gator() -> Path:
    return ensure_binaries(["gator"])["gator"]


@pytest.mark.parametrize("suite", SUITE_FILES, ids=[p.parent.name for p in SUITE_FILES])
def test_suite_passes_through_fleet(engine, suite):
    results = list(verify.run_suite(engine, suite))
    assert results and not any(r.skipped for r in results)
    assert [f"{r.test} / {r.case}: {r.error}" for r in results if r.error] == []


@pytest.mark.slow
def test_the_suites_pass_on_gatekeepers_own_gator(gator):
    run = subprocess.run([str(gator), "verify", f"{SUITES}/..."], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("\nok\t") + run.stdout.startswith("ok\t") == len(SUITE_FILES)


def _policies_and_objects() -> tuple[dict[str, str], list[dict]]:
    """Every template and valid constraint of the suites as one set, and as a release
    every namespaced case object (with its Namespace) and every Namespace case: gator
    test gives objects without a namespace, and cluster-scoped ones, an empty Namespace
    (so it disagrees with gator verify and the webhook there); Fleet follows the latter."""
    files, objects, seen = {}, [], set()
    for suite_file in SUITE_FILES:
        suite = yaml.safe_load(suite_file.read_text())
        base = suite_file.parent
        files[f"{base.name}/template.yaml"] = (base / "template.yaml").read_text()
        for test in suite["tests"]:
            if test.get("invalid"):
                continue
            files[f"{base.name}/{test['constraint']}"] = (base / test["constraint"]).read_text()
            for case in test["cases"]:
                for path in [case["object"], *case.get("inventory", [])]:
                    for obj in yaml.safe_load_all((base / path).read_text()):
                        meta = obj["metadata"]
                        key = (obj["kind"], meta.get("namespace"), meta["name"])
                        if key not in seen and (meta.get("namespace") or obj["kind"] == "Namespace"):
                            seen.add(key)
                            objects.append(obj)
    namespaces = {o["metadata"].get("namespace") for o in objects} - {None}
    objects += [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"env": "prod"}}}
                for name in sorted(namespaces) if ("Namespace", None, name) not in seen]
    return files, objects


def _key(constraint: str, obj: dict, message: str) -> tuple[str, str, str]:
    meta = obj["metadata"]
    where = f"{obj['kind']}/{meta['namespace']}/{meta['name']}" if meta.get("namespace") else \
        f"{obj['kind']}/{meta['name']}"
    return constraint, where, message


@pytest.mark.slow
def test_one_release_judged_as_gator_test_judges_it(engine, gator, tmp_path):
    files, objects = _policies_and_objects()
    for name, text in files.items():
        (tmp_path / name.replace("/", "__")).write_text(text)
    (tmp_path / "release.yaml").write_text(yaml.safe_dump_all(objects))
    run = subprocess.run([str(gator), "test", "-f", str(tmp_path), "-o", "json"], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode in (0, 1), run.stderr
    expected = sorted(_key(f"{r['constraint']['kind']}/{r['constraint']['metadata']['name']}",
                           r["violatingObject"], r["msg"]) for r in json.loads(run.stdout) or []
                      if not is_template(r["violatingObject"]) and not is_constraint(r["violatingObject"]))
    bundle = load_bundle(files)
    verdict = gate.evaluate([gate.PolicySetSpec("all", "enforce", False, bundle)], build_input(objects), engine,
                            now=datetime.now(UTC))
    assert not verdict.errors, verdict.errors
    by_path = {_key("", o, "")[1]: o for o in objects}
    got = sorted(_key(v.rule, by_path[v.object], v.message) for v in verdict.violations)
    assert len(expected) > 40
    assert got == expected


def test_every_template_loads_into_one_set(engine):
    """Sixteen unchanged templates, two of them sharing a package: one set, and a verdict."""
    files, objects = _policies_and_objects()
    bundle = load_bundle(files)
    assert len(bundle.templates) == len(SUITE_FILES) and len(bundle.constraints) > 20
    verdict = gate.evaluate([gate.PolicySetSpec("all", "enforce", False, bundle)], build_input(objects), engine,
                            now=datetime.now(UTC))
    assert not verdict.errors and not verdict.allowed
    assert {"K8sAllowedRepos/repo-is-ours", "K8sDisallowedRepos/no-docker-hub"} <= {v.rule for v in verdict.violations}
