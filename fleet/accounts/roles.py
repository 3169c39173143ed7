"""The three roles, as Django groups: viewer < operator < admin.

A superuser is an admin. A user in no role group can authenticate but is refused
everywhere, which is what "deny by default" means for people too.
"""

from __future__ import annotations

from enum import IntEnum

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


class Role(IntEnum):
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def group_name(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown role {name!r}: expected viewer, operator or admin") from None


def role_of(user: AbstractBaseUser | AnonymousUser | None) -> Role | None:
    """The user's highest role, cached on the user object for the request."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    cached = getattr(user, "_fleet_role", False)
    if cached is not False:
        return cached
    if user.is_superuser:
        role: Role | None = Role.ADMIN
    else:
        names = set(user.groups.values_list("name", flat=True))
        role = max((r for r in Role if r.group_name in names), default=None)
    user._fleet_role = role
    return role
