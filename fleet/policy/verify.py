"""``policy verify``: a team's existing policy tests, run through Fleet's own gate.

Two kinds, found in the paths given (files, or directories searched recursively):

- **Gatekeeper suites** (``kind: Suite``, ``test.gatekeeper.sh``), read as ``gator
  verify`` reads them (open-policy-agent/gatekeeper ``pkg/gator/verify``): each test
  names a ``template`` and a ``constraint`` file (relative to the suite) and has cases,
  each an ``object`` file holding exactly one object (or an ``AdmissionReview``), optional
  ``inventory`` files (``data.inventory``, and the Namespaces ``namespaceSelector`` sees),
  and ``assertions``: ``violations`` ``yes`` (the default), ``no`` or a count, optionally
  of only the results whose message matches the regular expression ``message``. A test
  with ``invalid: true`` passes when its constraint is refused by the template's
  schema. Reviews are built as gator builds them (no operation, no user), results
  counted as gator counts them (a runtime error is one result carrying its message),
  so a suite that passes on gator passes here. ``expansion`` (ExpansionTemplates) is
  not supported and fails its test saying so.
- **Rego unit tests** (``*_test.rego``, conftest's and OPA's ``test_`` rules): run by the
  pinned OPA (``opa test``) on the directory that holds them, honouring its ``.manifest``.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fleet.core import yaml
from fleet.policy import gate
from fleet.policy.bundle import MANIFEST, load_bundle
from fleet.policy.engines.base import Engine
from fleet.policy.engines.managed import opa_binary
from fleet.policy.errors import PolicyError
from fleet.policy.gatekeeper import review as gk_review
from fleet.policy.gatekeeper.match import SCHEMA_ERROR
from fleet.policy.gatekeeper.templates import GATOR_POINT
from fleet.policy.inputs import Admission, build_input, check_objects, namespaces_of

SUITE_GROUP = "test.gatekeeper.sh"


@dataclass
class CaseResult:
    """One case (or Rego test): ``error`` is why it failed, empty when it passed."""

    suite: str
    test: str
    case: str
    error: str = ""
    skipped: bool = False
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.error and not self.skipped


def _documents(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read {path}: {exc}", code="input", file=str(path)) from None
    try:
        return [d for d in yaml.load_all(text, source=str(path)) if isinstance(d, dict)]
    except yaml.YamlError as exc:
        raise PolicyError(f"cannot read {exc.where()}: {exc}", code="input", file=str(path)) from None


def _is_suite(doc: dict[str, Any]) -> bool:
    return doc.get("kind") == "Suite" and str(doc.get("apiVersion", "")).startswith(SUITE_GROUP + "/")


def find(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """The suite files under ``paths``, and the paths holding ``*_test.rego`` files (a
    directory given is tested whole, so its tests see the policies and libraries in it)."""
    suites, rego_dirs = [], []
    for path in paths:
        if not path.exists():
            raise PolicyError("no such file or directory", code="input", file=str(path))
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if file.suffix in (".yaml", ".yml") and any(_is_suite(d) for d in _documents(file)):
                suites.append(file)
        root = path.parent if path.is_file() else path
        if any(f.name.endswith("_test.rego") for f in files) and root not in rego_dirs:
            rego_dirs.append(root)
    return suites, rego_dirs


def _one_object(path: Path) -> dict[str, Any]:
    docs = _documents(path)
    if len(docs) != 1:
        raise PolicyError(f"{path} defines {len(docs)} objects; a case reviews exactly one", code="input",
                          file=str(path))
    return docs[0]


def _case(engine: Engine, spec: gate.PolicySetSpec, base: Path, case: dict[str, Any]) -> str:
    """Run one case; its failure, or ""."""
    if not case.get("object"):
        return "the case must name an object"
    assertions = case.get("assertions") or []
    if not assertions:
        return "assertions must be non-empty"
    obj = _one_object(base / case["object"])
    inventory = [o for path in case.get("inventory") or [] for o in _documents(base / path)]
    check_objects(inventory, "inventory")
    request = obj.get("request") if obj.get("kind") == "AdmissionReview" else None
    if request is not None:
        obj = request.get("object") or request.get("oldObject") or {}
    data = build_input(check_objects([obj], "object"), admission=Admission(
        inventory=tuple(inventory), namespaces=namespaces_of(inventory)))
    verdict = gate.evaluate([spec], data, engine, now=datetime.now().astimezone(), point=GATOR_POINT,
                            reviews=[gk_review.gator_review(obj, request)])
    messages = [v.message for v in verdict.violations] + [e["message"] for e in verdict.errors]
    for number, assertion in enumerate(assertions):
        failure = _assert(assertion, messages)
        if failure:
            return f"assertion {number + 1}: {failure}; got messages {messages}"
    return ""


def _assert(assertion: dict[str, Any], messages: list[str]) -> str:
    pattern = assertion.get("message")
    try:
        matching = sum(1 for m in messages if pattern is None or re.search(str(pattern), m))
    except re.error as exc:
        return f"invalid message regular expression {pattern!r}: {exc}"
    want = assertion.get("violations", "yes")
    about = f" containing {pattern!r}" if pattern is not None else ""
    if want == "yes":
        return "" if matching else f"got 0 violations{about} but want at least 1"
    if want == "no":
        return "" if not matching else f"got {matching} violations{about} but want none"
    if isinstance(want, int) and not isinstance(want, bool) and want >= 0:
        return "" if matching == want else f"got {matching} violations{about} but want exactly {want}"
    return f'violations, if set, must be a nonnegative integer, "yes", or "no" (got {want!r})'


def _test_spec(base: Path, test: dict[str, Any]) -> tuple[gate.PolicySetSpec | None, str]:
    """The test's template and constraint as a set; (None, why) when they do not load."""
    if test.get("expansion"):
        return None, "expansion (ExpansionTemplate) is not supported by Fleet"
    if not test.get("template") or not test.get("constraint"):
        return None, "a test needs a template and a constraint"
    files = {}
    for key in ("template", "constraint"):
        path = base / test[key]
        try:
            files[test[key]] = path.read_text()
        except OSError as exc:
            return None, f"cannot read {key} {path}: {exc.strerror}"
    try:
        bundle = load_bundle(files)
    except PolicyError as exc:
        return None, str(exc) if not exc.code == "constraint" else f"constraint refused: {exc}"
    return gate.PolicySetSpec(test.get("name") or "test", "enforce", False, bundle), ""


def run_suite(engine: Engine, path: Path) -> Iterator[CaseResult]:
    base = path.parent
    for suite in (d for d in _documents(path) if _is_suite(d)):
        name = str(path)
        for test in suite.get("tests") or []:
            test_name = str(test.get("name") or "")
            if suite.get("skip") or test.get("skip"):
                yield CaseResult(name, test_name, "", skipped=True)
                continue
            started = time.perf_counter()
            spec, problem = _test_spec(base, test)
            if test.get("invalid"):
                refused = problem.startswith("constraint refused") and SCHEMA_ERROR in problem
                failure = f"the constraint should be refused by its schema; {problem or 'it loaded'}"
                yield CaseResult(name, test_name, "(invalid constraint)", "" if refused else failure,
                                 seconds=time.perf_counter() - started)
                continue
            if spec is None:
                yield CaseResult(name, test_name, "", problem, seconds=time.perf_counter() - started)
                continue
            for case in test.get("cases") or []:
                if case.get("skip"):
                    yield CaseResult(name, test_name, str(case.get("name") or ""), skipped=True)
                    continue
                started = time.perf_counter()
                try:
                    error = _case(engine, spec, base, case)
                except PolicyError as exc:
                    error = str(exc)
                yield CaseResult(name, test_name, str(case.get("name") or ""), error,
                                 seconds=time.perf_counter() - started)


def run_rego_tests(directory: Path) -> Iterator[CaseResult]:
    """``opa test`` on ``directory`` (as a bundle when it has a ``.manifest``)."""
    command = [str(opa_binary()), "test", "--format", "json", "--ignore", "*.yaml", "--ignore", "*.yml"]
    command += ["-b", str(directory)] if (directory / MANIFEST).is_file() else [str(directory)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    try:
        results = json.loads(run.stdout or "[]")
    except ValueError:
        yield CaseResult(str(directory), "opa test", "", (run.stderr or run.stdout).strip()[:2000])
        return
    if not results and run.returncode:
        yield CaseResult(str(directory), "opa test", "", (run.stderr or run.stdout).strip()[:2000])
    for result in results:
        location = result.get("location") or {}
        error = result.get("error", {}).get("message", "") if isinstance(result.get("error"), dict) else ""
        yield CaseResult(f"{location.get('file', directory)}", str(result.get("package", "")),
                         str(result.get("name", "")), "failed" if result.get("fail") else error,
                         skipped=bool(result.get("skip")), seconds=(result.get("duration") or 0) / 1e9)


def verify(engine: Engine, paths: list[Path]) -> list[CaseResult]:
    suites, rego_dirs = find(paths)
    if not suites and not rego_dirs:
        raise PolicyError("no Gatekeeper suite (kind: Suite) and no *_test.rego file found", code="input",
                          file=", ".join(map(str, paths)))
    results = [r for path in suites for r in run_suite(engine, path)]
    return results + [r for directory in rego_dirs for r in run_rego_tests(directory)]
