"""The roles the cluster audit's services check (the API checks them first as well):
reading events is a viewer's, issuing credentials and saying who Fleet is an admin's.
``user=None`` is the machine (CLI, tasks), which holds the database anyway."""

from __future__ import annotations

from fleet.accounts.roles import Role, role_of
from fleet.accounts.rules import AccessDenied


def require(user, role: Role, what: str) -> None:
    if user is None or (role_of(user) or 0) >= role:
        return
    name = user.get_username() if getattr(user, "is_authenticated", False) else "anonymous"
    has = role_of(user)
    raise AccessDenied(f"{what} needs the {role.group_name} role; {name} has "
                       f"{f'the {has.group_name} role' if has else 'none'}", detail={"needs": role.group_name})
