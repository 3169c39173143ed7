"""A verdict for people (terminal), for programs (JSON) and for CI dashboards (JUnit)."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from fleet.policy.choices import Enforcement
from fleet.policy.gate import Verdict
from fleet.policy.verify import CaseResult

_MARK = {Enforcement.DENY: "DENY", Enforcement.WARN: "WARN", Enforcement.DRY_RUN: "DRY-RUN",
         Enforcement.WAIVED: "WAIVED"}


def human(verdict: Verdict) -> str:
    lines = []
    for v in verdict.violations:
        where = v.object or "(release)"
        waived = f" [waiver {v.waiver}]" if v.waiver else ""
        lines.append(f"{_MARK[Enforcement(v.enforcement)]:8} {where}  {v.rule}  {v.message}{waived}")
    for error in verdict.errors:  # the message already says where (file:line)
        state = "failed open" if error["failed_open"] else "blocks"
        lines.append(f"ERROR    set {error['policy_set']} ({state}): {error['message']}")
    counts = verdict.counts()
    lines.append(f"{'ALLOWED' if verdict.allowed else 'DENIED'}: {counts['deny']} denied, {counts['warn']} "
                 f"warnings, {counts['waived']} waived, {counts['dryrun']} dry-run, "
                 f"{len(verdict.errors)} errors; {len(verdict.sets)} policy set(s), engine "
                 f"{verdict.engine}, {verdict.elapsed_ms:.1f} ms, bundle {verdict.bundle_hash[:12]}")
    return "\n".join(lines)


def as_json(verdict: Verdict) -> str:
    return json.dumps(verdict.as_dict(), indent=2, sort_keys=True)


def junit(verdict: Verdict) -> str:
    """One testsuite per policy set; each finding is a testcase (failure when it blocks),
    a set that could not run is an error, and a clean set one passing testcase."""
    suites = ET.Element("testsuites", name="fleet-policy", time=f"{verdict.elapsed_ms / 1000:.3f}")
    for outcome in verdict.sets:
        findings = [v for v in verdict.violations if v.policy_set == outcome.name]
        suite = ET.SubElement(suites, "testsuite", name=outcome.name, time=f"{outcome.elapsed_ms / 1000:.3f}")
        failures = errors = 0
        for v in findings:
            case = ET.SubElement(suite, "testcase", classname=v.rule, name=v.object or "(release)")
            if v.enforcement == Enforcement.DENY:
                failures += 1
                ET.SubElement(case, "failure", message=v.message, type=v.rule).text = v.message
            else:
                ET.SubElement(case, "system-out").text = f"{v.enforcement}: {v.message}"
        if outcome.error:
            errors += 1
            case = ET.SubElement(suite, "testcase", classname=outcome.name, name="evaluation")
            ET.SubElement(case, "error", message=outcome.error["message"],
                          type=outcome.error["code"]).text = json.dumps(outcome.error)
        if not findings and not outcome.error:
            ET.SubElement(suite, "testcase", classname=outcome.name, name="all objects")
        suite.set("tests", str(max(len(findings) + errors, 1)))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def verify_human(results: list[CaseResult]) -> str:
    """One line per failed case, then the summary."""
    lines = [f"FAIL     {r.suite}  {r.test}  {r.case}: {r.error}" for r in results if r.error]
    passed, failed = sum(r.passed for r in results), sum(bool(r.error) for r in results)
    skipped = sum(r.skipped for r in results)
    lines.append(f"{'PASSED' if not failed else 'FAILED'}: {passed} passed, {failed} failed, {skipped} skipped "
                 f"({len(results)} cases, {sum(r.seconds for r in results):.2f}s)")
    return "\n".join(lines)


def verify_junit(results: list[CaseResult]) -> str:
    """One testsuite per suite file (or Rego test file), one testcase per case."""
    suites = ET.Element("testsuites", name="fleet-policy-verify")
    by_suite: dict[str, list[CaseResult]] = {}
    for result in results:
        by_suite.setdefault(result.suite, []).append(result)
    for name, cases in by_suite.items():
        suite = ET.SubElement(suites, "testsuite", name=name, tests=str(len(cases)),
                              failures=str(sum(bool(c.error) for c in cases)),
                              skipped=str(sum(c.skipped for c in cases)),
                              time=f"{sum(c.seconds for c in cases):.3f}")
        for result in cases:
            case = ET.SubElement(suite, "testcase", classname=result.test, name=result.case or result.test,
                                 time=f"{result.seconds:.3f}")
            if result.error:
                ET.SubElement(case, "failure", message=result.error[:500]).text = result.error
            elif result.skipped:
                ET.SubElement(case, "skipped")
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)
