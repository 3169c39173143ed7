"""Who may do what in the console: the one table of the role each page and action
needs, the check every view goes through, and the audited refusal.

The roles are the API's own for the same operation (its views' ``required_roles``), so
the console is never a weaker way in; what a page shows or hides is a courtesy, this
check is the rule. The services already check what is theirs (a protected cluster
needs an admin, nobody approves their own rollout); the checks in :data:`ACTIONS` are
the ones that live in the API's permission class today, and move into the services
with the security issue.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from fleet.accounts.roles import Role, role_of
from fleet.audit import services as audit
from fleet.audit.api import AuditEventViewSet
from fleet.drift.api import ClusterDriftViewSet, SelectorScanView
from fleet.inventory.api import ClusterViewSet
from fleet.policy.api import EvaluateView
from fleet.rollouts.api import RolloutViewSet

# Console action -> the role it needs, read from the API view doing the same thing.
ACTIONS: dict[str, Role] = {
    "read": AuditEventViewSet.required_roles["read"],
    "cluster.pause": ClusterViewSet.required_roles["write"],  # PATCH /clusters/{id}/ {"paused": …}
    "cluster.pin": ClusterViewSet.required_roles["write"],  # PATCH /clusters/{id}/ {"pinned": …}
    "rollout.preview": RolloutViewSet.required_roles["write"],
    "rollout.create": RolloutViewSet.required_roles["write"],
    "rollout.start": RolloutViewSet.required_roles["write"],
    "rollout.pause": RolloutViewSet.required_roles["write"],
    "rollout.resume": RolloutViewSet.required_roles["write"],
    "rollout.abort": RolloutViewSet.required_roles["write"],
    "rollout.approve": RolloutViewSet.required_roles["write"],
    "rollout.rollback": RolloutViewSet.required_roles["write"],
    "policy.check": EvaluateView.required_roles["write"],
    "drift.scan": SelectorScanView.required_roles["write"],  # POST /drift/clusters/{name}/scan/, /drift/scan/
    "drift.heal": ClusterDriftViewSet.required_roles["write"],
    "drift.acknowledge": ClusterDriftViewSet.required_roles["acknowledge"],
}


def allowed(user, action: str) -> bool:
    role = role_of(user)
    return role is not None and role >= ACTIONS[action]


def allowed_actions(user) -> frozenset[str]:
    """Every action ``user`` may take, for templates to decide which buttons to show."""
    role = role_of(user)
    return frozenset(name for name, needed in ACTIONS.items() if role is not None and role >= needed)


def refuse(request: HttpRequest, reason: str) -> HttpResponse:
    """A 403 page, recorded in the audit log as the API records its refusals."""
    audit.record("auth.denied", target_type="endpoint", target_repr=f"{request.method} {request.path}"[:255],
                 metadata={"method": request.method, "path": request.path[:500], "reason": reason[:500]})
    return render(request, "console/403.html", {"reason": reason}, status=403)


def why_not(user, action: str) -> str:
    role = role_of(user)
    if role is None:
        return "Your account has no role in Fleet; ask an admin to give you one."
    return f"This needs the {ACTIONS[action].group_name} role; you have {role.group_name}."


def check(request: HttpRequest, action: str) -> HttpResponse | None:
    """None when the signed-in user may take ``action``, else the audited refusal."""
    if allowed(request.user, action):
        return None
    return refuse(request, why_not(request.user, action))


def requires(action: str = "read") -> Callable:
    """Decorate a view: signed in (else to the sign-in page) and allowed ``action``
    (else an audited 403), whatever the page that sent the request showed."""
    ACTIONS[action]  # a typo fails at import, not at the first request

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            return check(request, action) or view(request, *args, **kwargs)
        return wrapped
    return decorate
