"""The gate: policy sets × rendered objects → a verdict. No database, no request.

Each policy set is evaluated on its own (its bundle, its mode, its fail-open choice),
then the findings are merged. ``enforce`` keeps a rule's own effect (deny/violation
block, warn warns, a Gatekeeper constraint's enforcementAction applies), ``warn``
turns blocks into warnings, ``dry-run`` keeps every finding out of the verdict. A
waiver turns one finding into ``waived``. A set that cannot be evaluated blocks the
apply (fail closed) unless it is in enforce mode *and* configured to fail open, or
is not enforcing at all. Nothing a policy or an engine does escapes as an exception.

Gatekeeper constraints are matched here (``gatekeeper/match.py``) against one admission
review per object, and per object the apply prunes when the set reviews deletes (as a
Gatekeeper whose webhook lists DELETE); a namespace the set's Gatekeeper ``Config``
exempts from the webhook is never reviewed. The enforcement point is the pipeline's
``validation.gatekeeper.sh`` or CI's ``gator.gatekeeper.sh`` (for ``scoped`` actions).
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from fleet.core.errors import FleetError
from fleet.core.labels import LabelError, parse_selector
from fleet.core.objects import ObjectRef
from fleet.policy.bundle import Bundle
from fleet.policy.choices import Enforcement, Mode, Severity
from fleet.policy.engines.base import SET_INDEX, Engine, Hit
from fleet.policy.errors import PolicyError
from fleet.policy.gatekeeper import review as gk_review
from fleet.policy.gatekeeper.match import namespace_excluded, review_matches
from fleet.policy.gatekeeper.templates import GATOR_POINT
from fleet.policy.inputs import EvaluationInput, placed

logger = logging.getLogger(__name__)
_EFFECT = {"deny": Enforcement.DENY, "violation": Enforcement.DENY, "warn": Enforcement.WARN,
           "dryrun": Enforcement.DRY_RUN}


@dataclass(frozen=True)
class PolicySetSpec:
    """What the gate needs of a policy set; ``bundle`` is None when it failed to load."""

    name: str
    mode: str
    fail_open: bool
    bundle: Bundle | None
    load_error: PolicyError | None = None
    review_deletes: bool = False  # send pruned objects to its constraints as DELETE reviews


@dataclass(frozen=True)
class WaiverSpec:
    name: str
    rule: str            # glob on the rule name, e.g. "baseline.images.*"
    object_pattern: str  # glob on Kind/namespace/name (Kind/name when cluster-scoped)
    cluster_selector: str
    expires_at: datetime
    policy_set: str = ""  # empty: any set

    def applies(self, policy_set: str, rule: str, obj: str, cluster_labels: dict[str, str],
                now: datetime) -> bool:
        if self.expires_at <= now or (self.policy_set and self.policy_set != policy_set):
            return False
        if not fnmatch.fnmatchcase(rule, self.rule) or not fnmatch.fnmatchcase(obj, self.object_pattern or "*"):
            return False
        try:
            return parse_selector(self.cluster_selector).matches(cluster_labels)
        except LabelError:
            return False  # validated on save; an unreadable selector waives nothing


@dataclass
class Violation:
    policy_set: str
    rule: str
    message: str
    object: str           # Kind/namespace/name, or "" for a finding about the release
    severity: str
    enforcement: str
    waiver: str = ""
    details: Any = None


@dataclass
class SetOutcome:
    name: str
    mode: str
    bundle_hash: str
    elapsed_ms: float
    error: dict[str, Any] | None = None
    failed_open: bool = False


@dataclass
class Verdict:
    allowed: bool
    engine: str
    bundle_hash: str
    elapsed_ms: float
    violations: list[Violation] = field(default_factory=list)
    sets: list[SetOutcome] = field(default_factory=list)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [dict(s.error, policy_set=s.name, failed_open=s.failed_open) for s in self.sets if s.error]

    def counts(self) -> dict[str, int]:
        counts = {e.value: 0 for e in Enforcement}
        for violation in self.violations:
            counts[violation.enforcement] += 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "engine": self.engine, "bundle_hash": self.bundle_hash,
                "elapsed_ms": round(self.elapsed_ms, 3), "counts": self.counts(),
                "violations": [asdict(v) for v in self.violations],
                "errors": self.errors, "sets": [asdict(s) for s in self.sets]}


def combined_hash(hashes: Iterable[str]) -> str:
    hashes = sorted(hashes)
    if len(hashes) == 1:
        return hashes[0]
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


def _message(value: Any) -> tuple[str, Any]:
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict) and isinstance(value.get("msg"), str):
        return value["msg"], value.get("details")
    return str(value), None


def _finding(spec: PolicySetSpec, hit: Hit, subjects: list[dict[str, Any]], point: str) -> Violation | None:
    bundle = spec.bundle
    obj = "" if hit.index == SET_INDEX else ObjectRef.of(subjects[hit.index]).path
    message, details = _message(hit.value)
    if hit.source.startswith("gk::"):
        constraint = bundle.constraints[int(hit.source[4:])]
        action = constraint.action(point)
        if action is None:
            return None  # scoped to other enforcement points
        rule, effect = constraint.id, _EFFECT[action]
    else:
        module_id, _, rule_name = hit.source.partition("::")
        module = bundle.module(module_id)
        rule = f"{module.written_package}.{rule_name}"
        effect = _EFFECT[rule_name.split("_", 1)[0]]
    severity = Severity.ERROR if effect == Enforcement.DENY else Severity.WARNING
    if spec.mode == Mode.WARN and effect == Enforcement.DENY:
        effect = Enforcement.WARN
    elif spec.mode == Mode.DRY_RUN:
        effect = Enforcement.DRY_RUN
    return Violation(policy_set=spec.name, rule=rule, message=message, object=obj,
                     severity=severity.value, enforcement=effect.value, details=details)


@dataclass(frozen=True)
class Subject:
    """What a constraint is matched on: the object as the apply places it, the live
    object it replaces (or deletes), and its namespace's name."""

    obj: dict[str, Any]
    old: dict[str, Any] | None
    namespace: str
    deleted: bool = False


def subjects_of(data: EvaluationInput, reviews: list[dict[str, Any] | None] | None = None) -> list[Subject]:
    """The subjects of ``data`` (objects, then pruned ones), or of given ``reviews``."""
    if reviews is not None:
        return [Subject(review.get("object") or obj, review.get("oldObject"), str(review.get("namespace") or ""))
                for obj, review in zip(data.subjects, reviews, strict=True)]
    count, found = len(data.objects), []
    for index, subject in enumerate(data.subjects):
        deleted = index >= count
        obj = subject if deleted else placed(subject, data.admission.namespaced)
        old = subject if deleted else (data.old[index] if data.old else None)
        found.append(Subject(obj, old, str((obj.get("metadata") or {}).get("namespace") or ""), deleted))
    return found


def reviews_of(data: EvaluationInput, indexes: Iterable[int] | None = None,
               subjects: list[Subject] | None = None) -> list[dict[str, Any] | None]:
    """Gatekeeper's ``input.review`` of the subjects at ``indexes`` (all by default; None
    for the others). A review holds ``object`` only where it differs from the object in
    ``data.objects`` (a pruned object, or a namespaced one the apply puts in ``default``)."""
    admission = data.admission
    subjects = subjects or subjects_of(data)
    wanted = set(range(len(subjects))) if indexes is None else set(indexes)
    reviews: list[dict[str, Any] | None] = []
    for index, (subject, original) in enumerate(zip(subjects, data.subjects, strict=True)):
        if index not in wanted:
            reviews.append(None)
            continue
        ref = ObjectRef.of(subject.obj)
        operation = "DELETE" if subject.deleted else ("UPDATE" if subject.old is not None else "CREATE")
        review = gk_review.review(subject.obj, subject.old, operation=operation,
                                  namespace=admission.namespaces.get(subject.namespace) if subject.namespace else None,
                                  user_info=admission.user_info, plural=admission.plurals.get(ref.group_kind, ""),
                                  dry_run=admission.dry_run)
        if subject.deleted or subject.obj is not original:
            review["object"] = subject.obj
        reviews.append(review)
    return reviews


def constraint_matches(bundle: Bundle, data: EvaluationInput, subjects: list[Subject] | None = None, *,
                       deletes: bool = False) -> dict[int, list[int]]:
    """For each constraint (by position), the subjects it matches (pruned ones only when
    ``deletes``); raises PolicyError where Gatekeeper's matcher errs."""
    subjects = subjects or subjects_of(data)
    excluded = bundle.sync.excluded_from("webhook")
    count = len(subjects) if deletes else len(data.objects)
    namespaces = data.admission.namespaces
    candidates = [i for i in range(count) if not (excluded and namespace_excluded(excluded, subjects[i].obj))]
    matches = {}
    for number, constraint in enumerate(bundle.constraints):
        found = []
        for index in candidates:
            subject = subjects[index]
            try:
                if review_matches(constraint.match, (subject.obj, subject.old), namespaces.get(subject.namespace)):
                    found.append(index)
            except PolicyError as exc:
                raise PolicyError(f"constraint {constraint.id}: {exc.message}", code="constraint",
                                  file=constraint.path) from None
        matches[number] = found
    return matches


def evaluate_set(spec: PolicySetSpec, data: EvaluationInput, engine: Engine, reviews: list[dict[str, Any] | None],
                 matches: dict[int, list[int]] | PolicyError, point: str = GATOR_POINT,
                 ) -> tuple[list[Violation], SetOutcome]:
    started = time.perf_counter()
    outcome = SetOutcome(spec.name, spec.mode, spec.bundle.hash if spec.bundle else "", 0.0)
    try:
        if spec.load_error is not None:
            raise spec.load_error
        if isinstance(matches, PolicyError):
            raise matches
        hits = engine.evaluate(spec.bundle, data, reviews, matches, slot=spec.name)
        subjects = data.subjects
        findings = [f for f in (_finding(spec, hit, subjects, point) for hit in hits) if f is not None]
    except FleetError as exc:  # a policy's or engine's own error (or a missing tool): its reason
        outcome.error, findings = exc.as_dict(), []
    except Exception as exc:  # the gate must answer; an engine bug becomes a reasoned deny
        logger.exception("policy set %s: unexpected engine failure", spec.name)
        outcome.error, findings = PolicyError(f"internal error in the {engine.name} engine: {exc}",
                                              code="engine").as_dict(), []
    outcome.failed_open = bool(outcome.error) and spec.fail_open
    outcome.elapsed_ms = (time.perf_counter() - started) * 1000
    return findings, outcome


def _matches(specs: Sequence[PolicySetSpec], data: EvaluationInput,
             subjects: list[Subject]) -> list[dict[int, list[int]] | PolicyError]:
    found: list[dict[int, list[int]] | PolicyError] = []
    for spec in specs:
        try:
            found.append(constraint_matches(spec.bundle, data, subjects, deletes=spec.review_deletes)
                         if spec.bundle is not None else {})
        except PolicyError as exc:
            found.append(exc)
    return found


def evaluate(specs: Sequence[PolicySetSpec], data: EvaluationInput, engine: Engine, *,
             waivers: Sequence[WaiverSpec] = (), now: datetime, point: str = GATOR_POINT,
             reviews: list[dict[str, Any]] | None = None) -> Verdict:
    """Evaluate every set and merge the findings into one verdict; ``point`` is the
    Gatekeeper enforcement point this decision stands for; ``reviews`` replace the
    admission reviews of the subjects (``policy verify`` builds them as gator does)."""
    started = time.perf_counter()
    subjects = subjects_of(data, reviews)
    matches = _matches(specs, data, subjects)
    if reviews is None:  # only matched subjects are reviewed: the others cost nothing
        needed = {i for found in matches if isinstance(found, dict) for indexes in found.values() for i in indexes}
        reviews = reviews_of(data, needed, subjects)
    labels = dict(data.cluster.get("labels") or {})
    violations: list[Violation] = []
    outcomes: list[SetOutcome] = []
    for spec, found in zip(specs, matches, strict=True):
        findings, outcome = evaluate_set(spec, data, engine, reviews, found, point)
        outcomes.append(outcome)
        for finding in findings:
            waiver = next((w for w in waivers if w.applies(spec.name, finding.rule, finding.object,
                                                           labels, now)), None)
            if waiver is not None and finding.enforcement != Enforcement.DRY_RUN:
                finding.enforcement, finding.waiver = Enforcement.WAIVED.value, waiver.name
            violations.append(finding)
    blocked = any(v.enforcement == Enforcement.DENY for v in violations) or any(
        o.error and o.mode == Mode.ENFORCE and not o.failed_open for o in outcomes)
    return Verdict(allowed=not blocked, engine=engine.name,
                   bundle_hash=combined_hash(o.bundle_hash for o in outcomes if o.bundle_hash),
                   elapsed_ms=(time.perf_counter() - started) * 1000, violations=violations,
                   sets=outcomes)
