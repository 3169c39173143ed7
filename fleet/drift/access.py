"""The role a drift request needs, checked in the service as well as the view (the API's
``required_roles`` is the first gate; the console, admin and CLI reach only this one)."""

from __future__ import annotations

from fleet.accounts import rules
from fleet.accounts.roles import Role, role_of


def require(role: Role, what: str, user=None) -> None:
    """Raise ``AccessDenied`` unless ``user`` (default: whoever is acting) has ``role``;
    the machine (CLI, tasks, system) passes."""
    user = user if user is not None else rules.acting_user()
    if user is None:
        return
    if (role_of(user) or 0) < role:
        name = user.get_username() if user.is_authenticated else "anonymous"
        raise rules.AccessDenied(f"{what} needs the {role.group_name} role; {name} does not have it",
                                 detail={"act": what, "needs": role.group_name})
