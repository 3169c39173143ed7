"""Building a report: the one entry point the API, the CLI (and later the console) call.

Each kind says what it proves and to whom, the role it needs (access shows who did
what with their accounts, so admins only) and how it is built. The service checks the
role, so every interface refuses the same people.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from fleet.accounts.roles import Role, role_of
from fleet.audit.models import AuditArchive
from fleet.audit.services import chain_head
from fleet.reports import access, changes, clusteraudit, compliance, delivery, drift
from fleet.reports.document import Report, Table
from fleet.reports.gitfacts import commit_times
from fleet.reports.scope import ReportError, ReportScope, scope_from


class ReportForbidden(ReportError):
    code = "forbidden"


class UnknownReport(ReportError):
    code = "unknown"


@dataclass(frozen=True)
class Kind:
    title: str
    purpose: str
    role: Role
    build: Callable[[ReportScope, Mapping[str, str]], tuple[dict[str, Any], list[Table]]]


def _int(params: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    raw = params.get(name)
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) <= maximum:
        raise ReportError(f"{name} must be a whole number from 1 to {maximum}", field=name)
    return int(raw)


KINDS: dict[str, Kind] = {
    "changes": Kind(
        "Change report",
        "Every deployment in the period: what changed, who made and who approved it, the policy verdict and "
        "waivers used, how it was verified and how to roll it back; emergency changes flagged. Evidence for "
        "SOC 2 CC8.1, ISO 27001 A.8.32 and PCI DSS 6.5.1 (change control), for auditors sampling changes.",
        Role.VIEWER, lambda scope, params: changes.build(scope)),
    "compliance": Kind(
        "Compliance posture",
        "Each cluster's latest policy verdict at the end of the period, violations in force by rule and "
        "severity, waivers in effect and expiring, and clusters never gated. For security officers and "
        "auditors checking that changes are gated (PCI DSS 6.5.1, SOC 2 CC8.1).",
        Role.VIEWER, lambda scope, params: compliance.build(
            scope, _int(params, "expiring_days", compliance.DEFAULT_EXPIRING_DAYS, 365))),
    "access": Kind(
        "Access report",
        "Sign-ins and failed sign-ins, role changes, API tokens created and revoked, and refused requests, "
        "from the audit log. For access reviews (SOC 2 CC6.1-CC6.3, PCI DSS 10.2.1, ISO 27001 A.5.18).",
        Role.ADMIN, lambda scope, params: access.build(scope)),
    "delivery": Kind(
        "Delivery metrics (DORA)",
        "Deployment frequency, lead time for changes, change failure rate and time to restore, with the Four "
        "Keys formulas, per channel and label, as trends. For engineering leadership, and for auditors as "
        "evidence that changes are tested and reversible.",
        Role.VIEWER, lambda scope, params: delivery.build(
            scope, commit_times, delivery.parse_group_by(params.get("group_by", "")))),
    "drift": Kind(
        "Drift report",
        "Which clusters ran something other than git said in the period: each drifted object with the fields "
        "that changed, the field manager that changed them, when, how long it stayed and whether it was "
        "healed; heals asked for; clusters contested. Evidence that configuration is monitored and "
        "unauthorised changes are found and reverted (PCI DSS 11.5.2, SOC 2 CC7.1, ISO 27001 A.8.9).",
        Role.VIEWER, lambda scope, params: drift.build(scope)),
    "outside-gitops": Kind(
        "Changes outside GitOps",
        "Every change made to the clusters in the period by someone other than Fleet and Kubernetes' own "
        "components, from the API servers' audit events: who (and as whom), what, from where, with which "
        "client. For change-control evidence (SOC 2 CC8.1, PCI DSS 6.5.1) and incident review.",
        Role.VIEWER, lambda scope, params: clusteraudit.build(scope)),
}


def kind_of(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownReport(f"no report {name!r}: choose one of {', '.join(KINDS)}", field="kind") from None


def build(name: str, params: Mapping[str, str], *, user=None, generated_by: str = "") -> Report:
    """The report ``name`` over the scope ``params`` give (``since``, ``until``, ``selector``
    and the kind's own). ``user`` is checked against the kind's role; the CLI, run by
    whoever has a shell on the control plane, may pass none."""
    kind = kind_of(name)
    if user is not None and (role_of(user) or 0) < kind.role:
        raise ReportForbidden(f"the {name} report needs the {kind.role.group_name} role")
    scope = scope_from(params)
    head = chain_head()  # before reading: the records the report shows are at most this new
    summary, tables = kind.build(scope, params)
    notes = []
    archived = AuditArchive.objects.filter(until__gt=scope.since).order_by("-until").first()
    if archived is not None:
        notes.append(f"Audit events before {archived.until:%Y-%m-%d %H:%M} UTC are archived ({archived}); what this "
                     "report reads from the audit log (sign-ins, waivers created) covers only the events kept.")
    if name == "access" and scope.selector_text:
        notes.append("The cluster selector does not apply to access events: they concern the whole control plane.")
    return Report(kind=name, title=kind.title, purpose=kind.purpose, scope=scope, generated_at=timezone.now(),
                  generated_by=generated_by or (user.get_username() if user is not None else "system"),
                  chain_head=head, summary=summary, tables=tables, notes=notes)
