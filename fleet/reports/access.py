"""The access report: sign-ins and failed sign-ins, role changes, API tokens created
and revoked, and refused requests, from the audit log (SOC 2 CC6.1-CC6.3 and PCI DSS
10.2.1: who got in, who was refused, who was given what power)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fleet.audit.models import AuditEvent
from fleet.reports.document import Table, iso
from fleet.reports.scope import ReportScope

ROLE_ACTIONS = ("user.roles", "user.create")
TOKEN_ACTIONS = ("apitoken.create", "apitoken.update", "apitoken.delete")
REFUSALS = ("auth.denied", "auth.unauthenticated")
SIGN_INS = ("auth.login", "auth.login_failed", "auth.logout")


def _events(scope: ReportScope, actions: tuple[str, ...]):
    return (AuditEvent.objects.filter(timestamp__gte=scope.since, timestamp__lt=scope.until, action__in=actions)
            .order_by("sequence"))


def _role_change(event: AuditEvent) -> list[Any]:
    if event.action == "user.create":
        return [iso(event.timestamp), event.actor, event.target_repr, "(new user)",
                (event.metadata or {}).get("role", ""), event.sequence]
    before = ", ".join((event.before or {}).get("groups", [])) or "(none)"
    after = ", ".join((event.after or {}).get("groups", [])) or "(none)"
    return [iso(event.timestamp), event.actor, event.target_repr, before, after, event.sequence]


def _token(event: AuditEvent) -> list[Any] | None:
    if event.action == "apitoken.update":
        if "revoked" not in (event.metadata or {}).get("changed", []) or not (event.after or {}).get("revoked"):
            return None
        what = "revoked"
    else:
        what = "created" if event.action == "apitoken.create" else "deleted"
    return [iso(event.timestamp), what, event.target_repr, event.actor, event.sequence]


def build(scope: ReportScope) -> tuple[dict[str, Any], list[Table]]:
    sign_ins: Counter[tuple[str, str]] = Counter()
    for action, actor, target in _events(scope, SIGN_INS).values_list("action", "actor", "target_repr"):
        who = target if action == "auth.login_failed" else actor
        sign_ins[(who, action.removeprefix("auth."))] += 1
    users = sorted({who for who, _ in sign_ins})
    logins = Table("sign_ins", "Sign-ins by user", ["user", "sign_ins", "failed", "sign_outs"],
                   [[u, sign_ins[(u, "login")], sign_ins[(u, "login_failed")], sign_ins[(u, "logout")]]
                    for u in users], note="Failed sign-ins are counted under the user name that was tried.")
    roles = Table("role_changes", "Role changes", ["at", "by", "user", "before", "after", "audit_event"],
                  [_role_change(e) for e in _events(scope, ROLE_ACTIONS)])
    tokens = Table("tokens", "API tokens created and revoked", ["at", "what", "token", "by", "audit_event"],
                   [row for e in _events(scope, TOKEN_ACTIONS) if (row := _token(e))])
    refused: Counter[tuple[str, str, str]] = Counter()
    for action, actor, metadata in _events(scope, REFUSALS).values_list("action", "actor", "metadata"):
        refused[(actor, action.removeprefix("auth."), f"{metadata.get('method', '')} {metadata.get('path', '')}")] += 1
    refusals = Table("refused", "Refused requests", ["actor", "why", "request", "count"],
                     [[*key, n] for key, n in sorted(refused.items(), key=lambda kv: (-kv[1], kv[0]))])
    summary = {"sign_ins": sum(n for (_, what), n in sign_ins.items() if what == "login"),
               "failed_sign_ins": sum(n for (_, what), n in sign_ins.items() if what == "login_failed"),
               "role_changes": len(roles.rows),
               "tokens_created": sum(1 for r in tokens.rows if r[1] == "created"),
               "tokens_revoked": sum(1 for r in tokens.rows if r[1] == "revoked"),
               "refused_requests": sum(refused.values())}
    return summary, [logins, roles, tokens, refusals]
