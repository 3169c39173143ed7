"""Who may do what to what: the role rules of Fleet's acts, in one place.

The API's views declare the role each endpoint needs (``required_roles``, checked by
``permissions.RolePermission`` before anything runs); that is the first gate. The acts
below depend on the object, not only the endpoint, so the services check them, and
every interface (API, console, admin, CLI) reaches them through the services:

- approving a wave is an admin's act, by someone other than the rollout's author;
- only an admin changes a cluster's ``protected`` flag;
- a protected cluster is edited only by an admin: every field but the toggles that only
  stop work (``paused``, ``pinned``), its credentials, its repository's commits, delete;
- a rollout that deploys to a protected cluster is an admin's: its author must be one
  (checked when it is created, started, and as each deployment is claimed), and so must
  whoever starts it.

Who is acting comes from the active context (``fleet.core.context``): in a request, its
authenticated user; a management command, a task or the system acts as the machine's
operator, who holds the database credentials anyway, and passes (a task acting for a
rollout checks the rollout's author instead).
"""

from __future__ import annotations

from enum import Enum

from fleet.accounts.roles import Role, role_of
from fleet.core import context
from fleet.core.errors import FleetError

TRUSTED_SOURCES = ("cli", "task", "system")
# Changing these on a protected cluster needs no admin: they only stop rollouts.
PROTECTED_CLUSTER_TOGGLES = frozenset({"paused", "pinned"})


class Act(Enum):
    """An act whose role depends on its object; the value says it for people."""

    APPROVE = "approving a wave"
    CHANGE_PROTECTION = "changing whether a cluster is protected"
    EDIT_PROTECTED_CLUSTER = "editing a protected cluster"
    DEPLOY_PROTECTED = "deploying to a protected cluster"


RULES: dict[Act, Role] = {
    Act.APPROVE: Role.ADMIN,
    Act.CHANGE_PROTECTION: Role.ADMIN,
    Act.EDIT_PROTECTED_CLUSTER: Role.ADMIN,
    Act.DEPLOY_PROTECTED: Role.ADMIN,
}


class AccessDenied(FleetError):
    """The actor's role does not allow the act (the API answers 403)."""

    domain = "access"
    code = "forbidden"


_CONTEXT = object()  # "whoever the active context says is acting"


def acting_user():
    """The user of the active request, or ``None`` when the machine acts (CLI, task, system)."""
    current = context.current()
    if current.source in TRUSTED_SOURCES:
        return None
    return getattr(current.request, "user", None)


def allows(act: Act, user=_CONTEXT) -> bool:
    """Whether ``user`` (default: whoever is acting) may do ``act``."""
    if user is _CONTEXT:
        if context.current().source in TRUSTED_SOURCES:
            return True
        user = acting_user()
    return (role_of(user) or 0) >= RULES[act]


def require(act: Act, user=_CONTEXT, *, subject: str = "") -> None:
    """Raise :class:`AccessDenied` unless ``user`` (default: whoever is acting) may do ``act``."""
    if allows(act, user):
        return
    if user is _CONTEXT:
        user = acting_user()
    role = role_of(user)
    name = user.get_username() if user is not None and user.is_authenticated else "anonymous"
    has = f"{name} has the {role.group_name} role" if role else f"{name} has no role"
    about = f" ({subject})" if subject else ""
    raise AccessDenied(f"{act.value}{about} needs the {RULES[act].group_name} role; {has}",
                       detail={"act": act.name.lower(), "needs": RULES[act].group_name})


def require_cluster_edit(cluster, changed: set[str], *, deleting: bool = False) -> None:
    """The rules for changing ``changed`` fields of ``cluster`` (a saved one, as it is now;
    ``None`` for a new one), or deleting it."""
    if "protected" in changed:
        require(Act.CHANGE_PROTECTION, subject=getattr(cluster, "name", ""))
    if cluster is not None and cluster.protected and (deleting or changed - PROTECTED_CLUSTER_TOGGLES):
        what = "delete it" if deleting else ", ".join(sorted(changed - PROTECTED_CLUSTER_TOGGLES))
        require(Act.EDIT_PROTECTED_CLUSTER, subject=f"{cluster.name}: {what}")


def require_not_author(user, author_id: int | None, what: str) -> None:
    """Four eyes: the one who asked for an act may not also approve it."""
    if user is not None and user.pk == author_id:
        raise AccessDenied(f"{what} must be approved by someone other than its author",
                           detail={"act": "approve", "reason": "author"})
